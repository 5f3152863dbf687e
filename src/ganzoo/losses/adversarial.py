"""Adversarial losses: small named functions and a registry of the kinds.

Each kind is three functions of one scale's discriminator logits (any shape, e.g. (N, 1, h, w)
patch logits or (N, 1) image logits), each the mean over all elements:

| kind          | D, real term          | D, fake term         | G                     |
| ------------- | --------------------- | -------------------- | --------------------- |
| hinge         | mean(relu(1 - real))  | mean(relu(1 + fake)) | -mean(fake)           |
| lsgan         | mean((real - 1)^2)    | mean(fake^2)         | mean((fake - 1)^2)    |
| nonsaturating | mean(softplus(-real)) | mean(softplus(fake)) | mean(softplus(-fake)) |
| vanilla       | BCE(real, 1)          | BCE(fake, 0)         | BCE(fake, 1)          |
| wgan          | -mean(real)           | mean(fake)           | -mean(fake)           |

Sources: hinge - SPADE models/networks/loss.py GANLoss 'hinge' (also BigGAN-PyTorch losses.py);
lsgan - pix2pixHD models/networks.py GANLoss (MSELoss, the default; SPADE 'ls');
nonsaturating - stylegan2-ada-pytorch training/loss.py; vanilla - SPADE GANLoss 'original' and
pix2pixHD --no_lsgan; wgan - SPADE GANLoss 'w' (add a gradient penalty separately for WGAN-GP).

BCE is ``binary_cross_entropy_with_logits``, so "vanilla" equals "nonsaturating" in value
(both G losses are the non-saturating -log D(G(z))); the two names follow their sources.
pix2pixHD's --no_lsgan puts a Sigmoid in D and uses BCELoss; on logits that is "vanilla".

`d_loss` returns the real and fake terms separately, as the official trainers log them; the
caller combines them:
- SPADE: D = D_fake + D_real (no 1/2; trainers/pix2pix_trainer.py:45); BigGAN and StyleGAN2
  also sum them;
- pix2pixHD: D = 0.5 * (D_fake + D_real) (train.py:78-79).

Multi-scale discriminators: logits may be a list with one tensor per scale (the final output
of each scale; the caller drops the intermediate features). ``scale_reduction`` combines the
per-scale losses: SPADE averages over the D scales (GANLoss.__call__ divides by len(input)),
pix2pixHD sums them (its GANLoss accumulates without dividing).

Losses are computed in float32 even when the logits are bf16 / fp16 (they are cast up first).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, TypedDict

import torch.nn.functional as F
from torch import Tensor

from ganzoo.core.errors import ConfigError

Logits = Tensor | Sequence[Tensor]  # one tensor, or one per discriminator scale
ScaleReduction = Literal["mean", "sum"]
LossTerm = Callable[[Tensor], Tensor]


class DLossTerms(TypedDict):
    """The discriminator's two terms, each already reduced over scales; the caller combines."""

    real: Tensor  # scalar, float32
    fake: Tensor  # scalar, float32


# ----- hinge (SPADE, BigGAN) ------------------------------------------------------------
def hinge_d_real(real: Tensor) -> Tensor:
    """mean(relu(1 - D(x))); SPADE writes it -mean(min(D(x) - 1, 0))."""
    return F.relu(1.0 - real).mean()


def hinge_d_fake(fake: Tensor) -> Tensor:
    """mean(relu(1 + D(G(z))))."""
    return F.relu(1.0 + fake).mean()


def hinge_g(fake: Tensor) -> Tensor:
    """-mean(D(G(z)))."""
    return -fake.mean()


# ----- least squares (pix2pixHD LSGAN) ----------------------------------------------------
def lsgan_d_real(real: Tensor) -> Tensor:
    """MSE of D(x) to the real label 1."""
    return F.mse_loss(real, real.new_ones(()).expand_as(real))


def lsgan_d_fake(fake: Tensor) -> Tensor:
    """MSE of D(G(z)) to the fake label 0."""
    return F.mse_loss(fake, fake.new_zeros(()).expand_as(fake))


def lsgan_g(fake: Tensor) -> Tensor:
    """MSE of D(G(z)) to the real label 1."""
    return F.mse_loss(fake, fake.new_ones(()).expand_as(fake))


# ----- non-saturating logistic (StyleGAN2) ------------------------------------------------
def nonsaturating_d_real(real: Tensor) -> Tensor:
    """mean(softplus(-D(x))) = -mean(log sigmoid(D(x)))."""
    return F.softplus(-real).mean()


def nonsaturating_d_fake(fake: Tensor) -> Tensor:
    """mean(softplus(D(G(z)))) = -mean(log(1 - sigmoid(D(G(z)))))."""
    return F.softplus(fake).mean()


def nonsaturating_g(fake: Tensor) -> Tensor:
    """mean(softplus(-D(G(z)))) = -mean(log sigmoid(D(G(z))))."""
    return F.softplus(-fake).mean()


# ----- binary cross-entropy on logits (SPADE 'original', pix2pixHD --no_lsgan) ------------
def vanilla_d_real(real: Tensor) -> Tensor:
    """BCE-with-logits of D(x) against the real label 1."""
    return F.binary_cross_entropy_with_logits(real, real.new_ones(()).expand_as(real))


def vanilla_d_fake(fake: Tensor) -> Tensor:
    """BCE-with-logits of D(G(z)) against the fake label 0."""
    return F.binary_cross_entropy_with_logits(fake, fake.new_zeros(()).expand_as(fake))


def vanilla_g(fake: Tensor) -> Tensor:
    """BCE-with-logits of D(G(z)) against the real label 1."""
    return F.binary_cross_entropy_with_logits(fake, fake.new_ones(()).expand_as(fake))


# ----- Wasserstein (SPADE 'w'; add a gradient penalty separately for WGAN-GP) --------------
def wgan_d_real(real: Tensor) -> Tensor:
    """-mean(D(x))."""
    return -real.mean()


def wgan_d_fake(fake: Tensor) -> Tensor:
    """mean(D(G(z)))."""
    return fake.mean()


def wgan_g(fake: Tensor) -> Tensor:
    """-mean(D(G(z)))."""
    return -fake.mean()


@dataclass(frozen=True)
class AdversarialLoss:
    """One kind of adversarial loss: its three per-scale terms."""

    d_real: LossTerm  # D's loss on real logits
    d_fake: LossTerm  # D's loss on fake logits
    g: LossTerm  # G's loss on fake logits


ADVERSARIAL_LOSSES: dict[str, AdversarialLoss] = {
    "hinge": AdversarialLoss(hinge_d_real, hinge_d_fake, hinge_g),
    "lsgan": AdversarialLoss(lsgan_d_real, lsgan_d_fake, lsgan_g),
    "nonsaturating": AdversarialLoss(nonsaturating_d_real, nonsaturating_d_fake, nonsaturating_g),
    "vanilla": AdversarialLoss(vanilla_d_real, vanilla_d_fake, vanilla_g),
    "wgan": AdversarialLoss(wgan_d_real, wgan_d_fake, wgan_g),
}


def get_loss(kind: str) -> AdversarialLoss:
    """The registered loss ``kind``; an unknown name raises ConfigError listing the valid ones."""
    if kind not in ADVERSARIAL_LOSSES:
        valid = ", ".join(ADVERSARIAL_LOSSES)
        raise ConfigError(f"unknown adversarial loss {kind!r}; valid: {valid}")
    return ADVERSARIAL_LOSSES[kind]


def _over_scales(term: LossTerm, logits: Logits, scale_reduction: ScaleReduction) -> Tensor:
    """Apply ``term`` to each scale's logits (cast to float32) and reduce over the scales."""
    if scale_reduction not in ("mean", "sum"):
        raise ConfigError(f"unknown scale_reduction {scale_reduction!r}; valid: mean, sum")
    scales = [logits] if isinstance(logits, Tensor) else list(logits)
    if not scales:
        raise ValueError("adversarial loss: no discriminator outputs were given")
    total = sum((term(x.float()) for x in scales[1:]), term(scales[0].float()))
    return total / len(scales) if scale_reduction == "mean" else total


def d_loss(
    kind: str, real_logits: Logits, fake_logits: Logits, scale_reduction: ScaleReduction
) -> DLossTerms:
    """The discriminator's real and fake terms, each reduced over the D scales.

    Args:
        kind: a name in `ADVERSARIAL_LOSSES` (hinge, lsgan, nonsaturating, vanilla, wgan).
        real_logits: D's output on real data: a tensor (N, ...) or a list, one per scale.
        fake_logits: D's output on generated data, same structure.
        scale_reduction: "mean" over scales (SPADE) or "sum" (pix2pixHD).

    Returns:
        {"real": scalar, "fake": scalar} in float32; SPADE's D loss is real + fake,
        pix2pixHD's 0.5 * (real + fake).
    """
    loss = get_loss(kind)
    return {
        "real": _over_scales(loss.d_real, real_logits, scale_reduction),
        "fake": _over_scales(loss.d_fake, fake_logits, scale_reduction),
    }


def g_loss(kind: str, fake_logits: Logits, scale_reduction: ScaleReduction) -> Tensor:
    """The generator's adversarial loss on D's output for generated data (scalar, float32).

    Args:
        kind: a name in `ADVERSARIAL_LOSSES`.
        fake_logits: a tensor (N, ...) or a list, one per D scale.
        scale_reduction: "mean" over scales (SPADE) or "sum" (pix2pixHD).
    """
    return _over_scales(get_loss(kind).g, fake_logits, scale_reduction)
