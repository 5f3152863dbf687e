"""Exponential moving average of a network's weights (the "EMA generator").

Karras et al. (StyleGAN2-ADA, training_loop.py) give the decay as a half-life in
images: beta = 0.5 ** (batch / (half_life_kimg * 1000)), with an optional ramp-up
that caps the half-life at rampup * images_seen early in training. BigGAN uses a
fixed decay (0.9999) that starts at a given iteration, copying the weights before.

Buffers: StyleGAN2-ADA copies them from the network (`buffers="copy"`, the default); BigGAN's
utils.ema averages every state-dict entry, BatchNorm running statistics and spectral-norm
vectors included (`buffers="average"`), with its own arithmetic ema * beta + x * (1 - beta).
"""

from __future__ import annotations

import copy
from typing import Literal

import torch
from torch import nn

EmaBuffers = Literal["copy", "average"]


def ema_beta(
    decay: float,  # fixed decay per update (BigGAN 0.9999); used when half_life_kimg is None
    half_life_kimg: float | None,  # StyleGAN2: half-life in thousands of images (config F: 10)
    rampup: float | None,  # StyleGAN2-ADA ramp-up ratio (0.05), None = off
    batch_size: int,  # global batch size of one update
    images_seen: int,  # images the generator has been trained on so far
) -> float:
    """The EMA coefficient for one update: new = beta * ema + (1 - beta) * weights."""
    if half_life_kimg is None:
        return decay
    half_life = half_life_kimg * 1000.0
    if rampup is not None:
        half_life = min(half_life, images_seen * rampup)
    if half_life <= 0:
        return 0.0
    return 0.5 ** (batch_size / half_life)


def make_ema_copy(module: nn.Module) -> nn.Module:
    """A frozen deep copy of `module` that follows it through `update_ema`."""
    ema = copy.deepcopy(module)
    ema.requires_grad_(False)
    return ema


@torch.no_grad()
def update_ema(
    ema: nn.Module, module: nn.Module, beta: float, buffers: EmaBuffers = "copy"
) -> None:
    """One EMA step.

    "copy": ema_param <- lerp(param, ema_param, beta); buffers (BN statistics, SN vectors)
    copied (StyleGAN2-ADA). "average": BigGAN-PyTorch utils.ema.update, every floating-point
    state-dict entry (parameters and buffers) <- entry_ema * beta + entry * (1 - beta);
    integer buffers (BatchNorm's num_batches_tracked, which the official BN lacks) copied.
    """
    # Written in place (out=, mul_/add_): the same operations element by element as
    # `t.copy_(t * beta + value * (1 - beta))` and `p_ema.copy_(p.lerp(p_ema, beta))`, so the
    # same values bit for bit, with one pass over memory and no temporaries for the results.
    if buffers == "average":
        target = ema.state_dict(keep_vars=True)
        for key, value in module.state_dict(keep_vars=True).items():
            t = target[key]
            if not t.is_floating_point():
                t.copy_(value)
            elif t.dtype == value.dtype:
                torch.mul(t, beta, out=t).add_(value.detach() * (1 - beta))
            else:
                t.copy_(t * beta + value.detach() * (1 - beta))
        return
    if buffers != "copy":
        raise ValueError(f"ema buffers={buffers!r}; valid: copy, average")
    for p_ema, p in zip(ema.parameters(), module.parameters(), strict=True):
        if p_ema.dtype == p.dtype:
            torch.lerp(p.detach(), p_ema, beta, out=p_ema)
        else:
            p_ema.copy_(p.detach().lerp(p_ema, beta))
    for b_ema, b in zip(ema.buffers(), module.buffers(), strict=True):
        b_ema.copy_(b)
