"""Discriminator feature matching (pix2pixHD Sec. 3.2, Eq. 4; kept by SPADE).

For every D scale i and every intermediate output j of that scale (all but the last, which is
the prediction), the L1 distance between D's features of the generated and the real image,
the real side detached, each term times ``weight``:

    loss = sum_i sum_{j < last} weight * mean |D_i^j(fake) - D_i^j(real).detach()|

The official weights per term (the caller also multiplies by lambda_feat, 10 in both):
- SPADE: ``weight = 1 / num_D`` (models/pix2pix_model.py:147-157);
- pix2pixHD: ``weight = (1 / num_D) * 4 / (n_layers_D + 1)`` (models/pix2pixHD_model.py:177-185).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor


def pix2pixhd_weight(num_d: int, n_layers_d: int) -> float:
    """pix2pixHD's per-term weight: D_weights (1/num_D) times feat_weights (4/(n_layers_D+1))."""
    return (1.0 / num_d) * 4.0 / (n_layers_d + 1)


def feature_matching(
    fake_features: Sequence[Sequence[Tensor]],
    real_features: Sequence[Sequence[Tensor]],
    weight: float,
) -> Tensor:
    """L1 feature matching summed over D scales and intermediate layers (scalar, float32).

    Args:
        fake_features: per scale, D's outputs on the generated image, layer by layer, the
            final prediction last (it is excluded); each (N, C_j, H_j, W_j).
        real_features: the same for the real image (detached here: G's loss only).
        weight: the factor on every (scale, layer) term: SPADE 1/num_D, pix2pixHD
            `pix2pixhd_weight(num_D, n_layers_D)`.

    Raises:
        ValueError: the two structures do not have the same number of scales and layers.
    """
    if len(fake_features) != len(real_features) or not fake_features:
        raise ValueError(
            f"feature matching: {len(fake_features)} fake vs {len(real_features)} real D scales"
        )
    terms: list[Tensor] = []
    for scale, (fake, real) in enumerate(zip(fake_features, real_features, strict=True)):
        if len(fake) != len(real):
            raise ValueError(
                f"feature matching: scale {scale} has {len(fake)} fake vs {len(real)} real outputs"
            )
        for f, r in zip(fake[:-1], real[:-1], strict=True):
            terms.append(F.l1_loss(f.float(), r.detach().float()) * weight)
    if not terms:
        raise ValueError("feature matching: D returned no intermediate features (getIntermFeat)")
    return sum(terms[1:], terms[0])
