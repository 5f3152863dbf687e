"""KL divergence of the VAE image encoder's posterior to N(0, I) (SPADE Sec. 3, Appendix B)."""

from __future__ import annotations

import torch
from torch import Tensor


def kl_divergence(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)), summed over batch and latent dims (scalar, float32).

    -0.5 * sum(1 + logvar - mu^2 - exp(logvar)): a sum, not a mean, as SPADE's KLDLoss
    (models/networks/loss.py:118-120); the caller multiplies by lambda_kld (0.05).

    Args:
        mu: posterior means, (N, z_dim).
        logvar: posterior log-variances, (N, z_dim).
    """
    mu, logvar = mu.float(), logvar.float()
    return -0.5 * torch.sum(1.0 + logvar - mu.pow(2) - logvar.exp())
