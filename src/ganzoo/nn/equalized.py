"""Equalized learning rate layers (Karras et al., ProGAN Sec. 4.1; StyleGAN2 Appendix B).

Weights are stored as N(0, 1) / lr_multiplier and scaled at run time by
lr_multiplier / sqrt(fan_in), so every layer learns at the same speed under Adam; biases are
scaled by lr_multiplier. Activations: leaky ReLU 0.2 followed by the gain sqrt(2), and an
optional clamp of the output (conv_clamp, 256 in stylegan2-ada-pytorch train.py:182).
Sources: stylegan2-ada-pytorch training/networks.py:20-170, 588-610;
torch_utils/ops/bias_act.py (its reference path).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganzoo.nn.resample import conv2d_resample, setup_filter

Activation = Literal["linear", "lrelu"]
ACT_GAIN: dict[str, float] = {"linear": 1.0, "lrelu": math.sqrt(2.0)}  # bias_act.py:24-26


def bias_act(
    x: Tensor,  # (N, C, ...) activations
    b: Tensor | None,  # (C,) bias
    act: Activation = "linear",  # activation function
    gain: float | None = None,  # output scale (None = the activation's default gain)
    clamp: float | None = None,  # clamp the output to [-clamp, clamp] (None = off)
) -> Tensor:
    """x + b, then leaky ReLU (slope 0.2) or identity, times gain, clamped (bias_act.py:93-124)."""
    if b is not None:
        x = x + b.reshape([1, -1] + [1] * (x.ndim - 2))
    if act == "lrelu":
        x = F.leaky_relu(x, 0.2)
    gain = ACT_GAIN[act] if gain is None else gain
    if gain != 1:
        x = x * gain
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return x


def normalize_2nd_moment(x: Tensor, dim: int = 1, eps: float = 1e-8) -> Tensor:
    """x / sqrt(mean(x^2) + eps) along dim (the normalised z of the mapping network)."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


class EqualizedLinear(nn.Module):
    """Fully connected layer with equalized lr (FullyConnectedLayer, networks.py:88-118)."""

    def __init__(
        self,
        in_features: int,  # input features
        out_features: int,  # output features
        bias: bool = True,  # additive bias before the activation
        activation: Activation = "linear",  # 'lrelu' in the mapping network and D's fc
        lr_multiplier: float = 1.0,  # the mapping network uses 0.01
        bias_init: float = 0.0,  # initial bias (1 for the style affines: styles start at 1)
    ) -> None:
        super().__init__()
        self.activation: Activation = activation
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: Tensor) -> Tensor:
        """(N, in_features) -> (N, out_features)."""
        w = self.weight.to(x.dtype) * self.weight_gain
        b = None if self.bias is None else self.bias.to(x.dtype) * self.bias_gain
        if self.activation == "linear" and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return bias_act(x.matmul(w.t()), b, self.activation)


class EqualizedConv2d(nn.Module):
    """Conv with equalized lr and optional FIR 2x up/down-sampling (Conv2dLayer, :122-169)."""

    resample_filter: Tensor

    def __init__(
        self,
        in_channels: int,  # input channels
        out_channels: int,  # output channels
        kernel_size: int,  # square kernel (padding kernel_size // 2)
        bias: bool = True,  # additive bias (D's residual skip has none)
        activation: Activation = "linear",  # 'lrelu' everywhere except skips
        up: int = 1,  # 2 = upsample before the conv
        down: int = 1,  # 2 = downsample (D blocks)
        resample_filter: Sequence[float] = (1, 3, 3, 1),  # FIR low-pass for up/down
        conv_clamp: float | None = None,  # clamp the output to +-conv_clamp (config F: 256)
    ) -> None:
        super().__init__()
        self.activation: Activation = activation
        self.up = up
        self.down = down
        self.conv_clamp = conv_clamp
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.padding = kernel_size // 2
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size**2)
        self.act_gain = ACT_GAIN[activation]
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None

    def forward(self, x: Tensor, gain: float = 1.0) -> Tensor:
        """(N, C_in, H, W) -> (N, C_out, H * up / down, W * up / down); output x gain."""
        w = (self.weight * self.weight_gain).to(x.dtype)
        x = conv2d_resample(
            x,
            w,
            self.resample_filter,
            up=self.up,
            down=self.down,
            padding=self.padding,
            flip_weight=self.up == 1,  # as the official (matters only for ported weights)
        )
        clamp = None if self.conv_clamp is None else self.conv_clamp * gain
        b = None if self.bias is None else self.bias.to(x.dtype)
        return bias_act(x, b, self.activation, gain=self.act_gain * gain, clamp=clamp)


class MinibatchStd(nn.Module):
    """Minibatch standard deviation (ProGAN Sec. 3; MinibatchStdLayer, networks.py:588-610).

    The batch is split into groups of `group_size` (the sample n of a group is rows n, n + N/G,
    n + 2N/G, ... as the official reshape does); per group and per channel slice, the std over
    the group averaged over channels and pixels becomes `num_channels` extra feature maps.
    """

    def __init__(
        self,
        group_size: int,  # samples per group (config F: 4); min(group_size, N) is used
        num_channels: int = 1,  # extra feature maps (config F: 1)
    ) -> None:
        super().__init__()
        self.group_size = group_size
        self.num_channels = num_channels

    def forward(self, x: Tensor) -> Tensor:
        """(N, C, H, W) -> (N, C + num_channels, H, W); N must be a multiple of the group."""
        n, c, h, w = x.shape
        g = min(self.group_size, n)
        f = self.num_channels
        assert n % g == 0, f"minibatch std: batch {n} is not a multiple of the group size {g}"
        y = x.reshape(g, -1, f, c // f, h, w)  # (G, n, F, c, H, W)
        y = y - y.mean(dim=0)
        y = (y.square().mean(dim=0) + 1e-8).sqrt()  # (n, F, c, H, W): std over the group
        y = y.mean(dim=[2, 3, 4]).reshape(-1, f, 1, 1)  # (n, F, 1, 1)
        y = y.repeat(g, 1, h, w)  # (N, F, H, W)
        return torch.cat([x, y], dim=1)
