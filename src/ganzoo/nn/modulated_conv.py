"""Modulated convolution with weight demodulation (StyleGAN2, Karras et al. CVPR 2020, Sec. 2.2).

Each sample i scales the input channels of the shared weight by its style s (from w through an
affine layer): w'_oik = s_i * w_oik, and, with demodulation, divides each output channel by
sqrt(sum_ik w'_oik^2 + 1e-8), so unit-variance inputs give unit-variance outputs (Eq. 1-3).
Source: stylegan2-ada-pytorch training/networks.py:26-84 (modulated_conv2d), with its float16
pre-normalisation: in float16, weight and styles are first divided by their largest magnitudes
(demodulation cancels both scales), so the per-sample weights cannot overflow.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ganzoo.nn.resample import conv2d_resample


def modulated_conv2d(
    x: Tensor,  # (N, C_in, H, W)
    weight: Tensor,  # (C_out, C_in, kh, kw), already times its equalized-lr gain if any
    styles: Tensor,  # (N, C_in) modulation coefficients
    noise: Tensor | None = None,  # added to the output: (N, 1, H', W') or (H', W')
    up: int = 1,  # 2 = FIR upsampling (the first conv of each synthesis block)
    padding: int = 0,  # kernel_size // 2
    resample_filter: Tensor | None = None,  # FIR filter for up
    demodulate: bool = True,  # False for ToRGB
    flip_weight: bool = True,  # as conv2d_resample (the official passes up == 1)
    fused_modconv: bool = True,  # one grouped conv with per-sample weights, or scale x instead
) -> Tensor:
    """(N, C_in, H, W) -> (N, C_out, H * up, W * up).

    The fused path builds per-sample weights and runs one grouped convolution; the other
    scales the activations before (styles) and after (demodulation) a shared-weight conv.
    Both compute the same function; the official fuses in evaluation only.
    """
    n = x.shape[0]
    c_out, c_in, kh, kw = weight.shape
    assert styles.shape == (n, c_in), f"styles {tuple(styles.shape)} != {(n, c_in)}"
    if x.dtype == torch.float16 and demodulate:  # networks.py:46-48
        inf = float("inf")
        weight = weight * (1 / math.sqrt(c_in * kh * kw) / weight.norm(inf, [1, 2, 3], True))
        styles = styles / styles.norm(inf, dim=1, keepdim=True)
    w = weight.unsqueeze(0) * styles.reshape(n, 1, c_in, 1, 1)  # (N, O, I, k, k)
    dcoefs = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt() if demodulate else None  # (N, O)
    if not fused_modconv:
        x = x * styles.to(x.dtype).reshape(n, -1, 1, 1)
        x = conv2d_resample(
            x, weight.to(x.dtype), resample_filter, up=up, padding=padding, flip_weight=flip_weight
        )
        if dcoefs is not None and noise is not None:  # x * d + noise in one rounding: the
            d = dcoefs.to(x.dtype).reshape(n, -1, 1, 1)  # official fma (networks.py:66-67)
            return torch.addcmul(noise.to(x.dtype), x, d)
        if dcoefs is not None:
            x = x * dcoefs.to(x.dtype).reshape(n, -1, 1, 1)
        return x if noise is None else x + noise.to(x.dtype)
    if dcoefs is not None:
        w = w * dcoefs.reshape(n, -1, 1, 1, 1)
    x = x.reshape(1, -1, *x.shape[2:])  # (1, N * C_in, H, W): one group per sample
    w = w.reshape(-1, c_in, kh, kw)  # (N * C_out, C_in, k, k)
    x = conv2d_resample(
        x,
        w.to(x.dtype),
        resample_filter,
        up=up,
        padding=padding,
        groups=n,
        flip_weight=flip_weight,
    )
    x = x.reshape(n, -1, *x.shape[2:])  # (N, C_out, H', W')
    return x if noise is None else x + noise.to(x.dtype)
