"""StyleGAN2 generator and discriminator (Karras et al., "Analyzing and Improving the Image
Quality of StyleGAN", CVPR 2020), as in NVlabs/stylegan2-ada-pytorch training/networks.py.

Generator = mapping network (z -> w, 8 equalized-lr FC layers with lr multiplier 0.01, z
normalised to unit second moment, a running w_avg for truncation) + synthesis network (a
learned 4x4 constant; per resolution two modulated, demodulated 3x3 convs, the first
upsampling 2x with the [1, 3, 3, 1] FIR filter; per-layer noise with a learned strength; a
ToRGB per resolution whose outputs are upsampled and summed: the 'skip' architecture, Fig. 7b).
Discriminator = 'resnet' blocks (two 3x3 convs, the second downsampling 2x, plus a 1x1
downsampling skip, both scaled by sqrt(0.5)), then minibatch std, a 3x3 conv and two FC
layers. Class conditioning (c_dim > 0): G embeds c and concatenates it to z before mapping;
D maps c to cmap and outputs <D(x), cmap> / sqrt(cmap_dim) (projection, networks.py:662-665).

Channels at resolution r: min(channel_base // r, channel_max) (config F: 32768, 512).
Mixed precision as the official (networks.py:379-416, 556-584): the blocks of the
`num_fp16_res` highest resolutions of G and of D (config F: 4) compute in float16, with
parameters, styles, the RGB sum and D's epilogue in float32 and activations clamped to
+-conv_clamp (256). That runs on a CUDA device outside autocast (trainer.precision=32-true);
under 16-mixed / bf16-mixed autocast chooses the dtypes, and on the CPU the networks stay
float32 (a warning says so once).
Not implemented: the 'orig' and 'resnet' G / 'orig' and 'skip' D architectures, Freeze-D.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn

from ganzoo.nn.equalized import (
    EqualizedConv2d,
    EqualizedLinear,
    MinibatchStd,
    bias_act,
    normalize_2nd_moment,
)
from ganzoo.nn.modulated_conv import modulated_conv2d
from ganzoo.nn.resample import setup_filter, upsample2d

NoiseMode = Literal["random", "const", "none"]
FIR = (1.0, 3.0, 3.0, 1.0)


def channels_at(res: int, channel_base: int, channel_max: int) -> int:
    """Feature maps at resolution `res` (networks.py:441, 694)."""
    return min(channel_base // res, channel_max)


def fp16_resolutions(img_resolution: int, num_fp16_res: int) -> set[int]:
    """Block resolutions that compute in float16: the num_fp16_res highest, none below 8x8
    (networks.py:442, 695)."""
    lowest = max(2 ** (int(math.log2(img_resolution)) + 1 - num_fp16_res), 8)
    return {2**i for i in range(3, int(math.log2(img_resolution)) + 1) if 2**i >= lowest}


def block_dtype(use_fp16: bool, x: Tensor) -> torch.dtype | None:
    """The dtype a block computes in: float16 for an fp16 block on CUDA outside autocast,
    None (leave it to autocast) under mixed precision, else float32."""
    if x.device.type == "cuda" and torch.is_autocast_enabled("cuda"):
        return None
    return torch.float16 if use_fp16 and x.device.type == "cuda" else torch.float32


def note_float32(num_fp16_res: int, device: torch.device) -> None:
    """Warn (once: one call site, one text) that fp16 blocks asked for run float32 here."""
    if num_fp16_res > 0 and device.type != "cuda":
        warnings.warn(
            "StyleGAN2: num_fp16_res > 0 runs float16 blocks on a CUDA GPU only; "
            "on this device the networks compute in float32",
            stacklevel=1,  # one location, so Python's default filter shows it once
        )


class MappingNetwork(nn.Module):
    """z (and c) -> w, broadcast to num_ws copies (networks.py:173-249)."""

    w_avg: Tensor

    def __init__(
        self,
        z_dim: int,  # latent z size (512; 0 = no z, D's label mapping)
        c_dim: int,  # label size (0 = unconditional)
        w_dim: int,  # intermediate latent w size (512)
        num_ws: int | None,  # copies of w to output (None = (N, w_dim), no broadcast)
        num_layers: int = 8,  # FC layers (paper 8; the ADA 'auto' config 2)
        lr_multiplier: float = 0.01,  # equalized-lr multiplier of the FC layers
        w_avg_beta: float | None = 0.995,  # decay of the tracked w average (None = no tracking)
    ) -> None:
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.num_ws = num_ws
        self.num_layers = num_layers
        self.w_avg_beta = w_avg_beta
        embed = w_dim if c_dim > 0 else 0  # the label embedding has w_dim features
        features = [z_dim + embed] + [w_dim] * num_layers
        if c_dim > 0:
            self.embed = EqualizedLinear(c_dim, embed)
        for idx in range(num_layers):  # fc0, fc1, ...: the official parameter names
            layer = EqualizedLinear(
                features[idx], features[idx + 1], activation="lrelu", lr_multiplier=lr_multiplier
            )
            setattr(self, f"fc{idx}", layer)
        if num_ws is not None and w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(
        self,
        z: Tensor | None,  # (N, z_dim)
        c: Tensor | None,  # (N, c_dim) one-hot labels
        truncation_psi: float = 1.0,  # w = w_avg + psi (w - w_avg); 1 = off
        truncation_cutoff: int | None = None,  # truncate only the first `cutoff` ws (None = all)
        skip_w_avg_update: bool = False,  # the style-mixing second pass does not update w_avg
    ) -> Tensor:
        """-> (N, num_ws, w_dim), or (N, w_dim) when num_ws is None."""
        parts = []
        if self.z_dim > 0:
            assert z is not None and z.shape[1:] == (self.z_dim,)
            parts.append(normalize_2nd_moment(z.float()))
        if self.c_dim > 0:
            assert c is not None and c.shape[1:] == (self.c_dim,)
            parts.append(normalize_2nd_moment(self.embed(c.float())))
        x = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)
        if self.w_avg_beta is not None and self.training and not skip_w_avg_update:
            self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        if self.num_ws is None:
            return x
        x = x.unsqueeze(1).repeat(1, self.num_ws, 1)  # (N, num_ws, w_dim)
        if truncation_psi != 1:
            assert self.w_avg_beta is not None, "truncation needs the tracked w_avg"
            cut = self.num_ws if truncation_cutoff is None else truncation_cutoff
            truncated = self.w_avg.lerp(x[:, :cut], truncation_psi)
            x = torch.cat([truncated, x[:, cut:]], dim=1)
        return x


class SynthesisLayer(nn.Module):
    """Modulated 3x3 conv + noise + bias + lrelu (networks.py:253-305)."""

    noise_const: Tensor
    resample_filter: Tensor

    def __init__(
        self,
        in_channels: int,  # input feature maps
        out_channels: int,  # output feature maps
        w_dim: int,  # w size (the style affine's input)
        resolution: int,  # output resolution (for the noise buffer)
        up: int = 1,  # 2 for the first conv of a block
        use_noise: bool = True,  # per-pixel noise input with a learned strength
        conv_clamp: float | None = None,  # clamp activations to +-conv_clamp
        resample_filter: Sequence[float] = FIR,  # FIR filter of the upsampling
    ) -> None:
        super().__init__()
        self.resolution = resolution
        self.up = up
        self.use_noise = use_noise
        self.conv_clamp = conv_clamp
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.affine = EqualizedLinear(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 3, 3))
        if use_noise:
            self.register_buffer("noise_const", torch.randn(resolution, resolution))
            self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def forward(
        self, x: Tensor, w: Tensor, noise_mode: NoiseMode, fused_modconv: bool, gain: float = 1.0
    ) -> Tensor:
        """(N, C_in, R / up, R / up), w (N, w_dim) -> (N, C_out, R, R)."""
        assert x.shape[2] * self.up == self.resolution, (tuple(x.shape), self.resolution)
        styles = self.affine(w)  # (N, C_in)
        noise = None
        if self.use_noise and noise_mode == "random":
            shape = (x.shape[0], 1, self.resolution, self.resolution)
            noise = torch.randn(shape, device=x.device) * self.noise_strength
        elif self.use_noise and noise_mode == "const":
            noise = self.noise_const * self.noise_strength
        x = modulated_conv2d(
            x,
            self.weight,
            styles,
            noise=noise,
            up=self.up,
            padding=1,
            resample_filter=self.resample_filter,
            flip_weight=self.up == 1,
            fused_modconv=fused_modconv,
        )
        clamp = None if self.conv_clamp is None else self.conv_clamp * gain
        return bias_act(x, self.bias.to(x.dtype), "lrelu", gain=math.sqrt(2) * gain, clamp=clamp)


class ToRGBLayer(nn.Module):
    """Modulated 1x1 conv to RGB, without demodulation (networks.py:309-324)."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, conv_clamp: float | None):
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = EqualizedLinear(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.weight_gain = 1 / math.sqrt(in_channels)

    def forward(self, x: Tensor, w: Tensor, fused_modconv: bool) -> Tensor:
        """(N, C, R, R) -> (N, img_channels, R, R)."""
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(x, self.weight, styles, demodulate=False, fused_modconv=fused_modconv)
        return bias_act(x, self.bias.to(x.dtype), clamp=self.conv_clamp)


class SynthesisBlock(nn.Module):
    """One resolution of the 'skip' generator (networks.py:328-419)."""

    resample_filter: Tensor

    def __init__(
        self,
        in_channels: int,  # feature maps in (0 = the first, 4x4 block with the constant)
        out_channels: int,  # feature maps out
        w_dim: int,  # w size
        resolution: int,  # this block's resolution
        img_channels: int,  # RGB = 3
        conv_clamp: float | None,  # activation clamp
        resample_filter: Sequence[float] = FIR,  # FIR filter
        use_fp16: bool = False,  # compute in float16 on CUDA (one of the num_fp16_res highest)
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.resolution = resolution
        self.use_fp16 = use_fp16
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn(out_channels, resolution, resolution))
        else:
            self.conv0 = SynthesisLayer(
                in_channels, out_channels, w_dim, resolution, up=2, conv_clamp=conv_clamp,
                resample_filter=resample_filter,
            )  # fmt: skip
        self.conv1 = SynthesisLayer(
            out_channels, out_channels, w_dim, resolution, conv_clamp=conv_clamp
        )
        self.torgb = ToRGBLayer(out_channels, img_channels, w_dim, conv_clamp)
        self.num_conv = 1 if in_channels == 0 else 2
        self.num_torgb = 1

    def forward(
        self,
        x: Tensor | None,  # (N, C_in, R/2, R/2), None for the first block
        img: Tensor | None,  # (N, 3, R/2, R/2) RGB so far, None for the first block
        ws: Tensor,  # (N, num_conv + 1, w_dim): this block's ws (its ToRGB shares the next's)
        noise_mode: NoiseMode,
        fused_modconv: bool | None,  # None: fused in eval, unless float16 with a batch > 1
    ) -> tuple[Tensor, Tensor]:
        """-> features (N, C_out, R, R) and RGB (N, 3, R, R), the RGB in float32."""
        w_iter = iter(ws.unbind(dim=1))
        dtype = block_dtype(self.use_fp16, ws)
        if fused_modconv is None:  # networks.py:384-386
            fused_modconv = not self.training and (dtype != torch.float16 or ws.shape[0] == 1)
        if x is None:
            x = self.const.unsqueeze(0).repeat(ws.shape[0], 1, 1, 1)
            x = x if dtype is None else x.to(dtype)
        else:
            x = x if dtype is None else x.to(dtype)
            x = self.conv0(x, next(w_iter), noise_mode, fused_modconv)
        x = self.conv1(x, next(w_iter), noise_mode, fused_modconv)
        y = self.torgb(x, next(w_iter), fused_modconv).float()
        img = y if img is None else upsample2d(img, self.resample_filter) + y
        return x, img


class SynthesisNetwork(nn.Module):
    """ws -> image, 4x4 up to img_resolution (networks.py:423-472)."""

    def __init__(
        self,
        w_dim: int,  # w size
        img_resolution: int,  # output resolution, a power of 2 >= 4
        img_channels: int,  # 3
        channel_base: int,  # channels = min(channel_base // res, channel_max)
        channel_max: int,
        conv_clamp: float | None,  # activation clamp (config F: 256)
        num_fp16_res: int = 0,  # float16 in the blocks of the N highest resolutions (F: 4)
    ) -> None:
        super().__init__()
        log2 = int(math.log2(img_resolution))
        assert img_resolution >= 4 and 2**log2 == img_resolution, img_resolution
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.num_fp16_res = num_fp16_res
        self.block_resolutions = [2**i for i in range(2, log2 + 1)]
        self.num_ws = 0
        fp16 = fp16_resolutions(img_resolution, num_fp16_res)
        for res in self.block_resolutions:
            c_in = channels_at(res // 2, channel_base, channel_max) if res > 4 else 0
            c_out = channels_at(res, channel_base, channel_max)
            block = SynthesisBlock(
                c_in, c_out, w_dim, res, img_channels, conv_clamp, use_fp16=res in fp16
            )
            setattr(self, f"b{res}", block)  # b4, b8, ...: the official parameter names
            self.num_ws += block.num_conv
        self.num_ws += 1  # the last ToRGB: 2 * log2(res) - 2 ws in all (18 at 1024)

    def forward(
        self, ws: Tensor, noise_mode: NoiseMode = "random", fused_modconv: bool | None = None
    ) -> Tensor:
        """(N, num_ws, w_dim) -> (N, img_channels, R, R); fused modconv by default in eval."""
        assert ws.shape[1:] == (self.num_ws, self.w_dim), tuple(ws.shape)
        note_float32(self.num_fp16_res, ws.device)
        x = img = None
        w_idx = 0
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            block_ws = ws.narrow(1, w_idx, block.num_conv + block.num_torgb)
            x, img = block(x, img, block_ws, noise_mode, fused_modconv)
            w_idx += block.num_conv
        assert img is not None
        return img


class Generator(nn.Module):
    """StyleGAN2 G = mapping + synthesis (networks.py:476-500)."""

    def __init__(
        self,
        img_resolution: int,  # output resolution (FFHQ 1024)
        z_dim: int = 512,  # latent z size
        c_dim: int = 0,  # class-label size (0 = unconditional)
        w_dim: int = 512,  # intermediate latent size
        img_channels: int = 3,  # RGB
        mapping_layers: int = 8,  # mapping FC layers (config F: 8)
        mapping_lr_multiplier: float = 0.01,  # equalized-lr multiplier of the mapping network
        w_avg_beta: float = 0.995,  # decay of the tracked w average (truncation centre)
        channel_base: int = 32768,  # config F: 32768 (ADA paper256: 16384)
        channel_max: int = 512,  # cap on the channels of any layer
        conv_clamp: float | None = 256,  # activation clamp (train.py:182; None = off)
        num_fp16_res: int = 0,  # float16 in the N highest-resolution blocks on CUDA (F: 4)
    ) -> None:
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.img_resolution = img_resolution
        self.synthesis = SynthesisNetwork(
            w_dim, img_resolution, img_channels, channel_base, channel_max, conv_clamp,
            num_fp16_res,
        )  # fmt: skip
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(
            z_dim, c_dim, w_dim, self.num_ws, mapping_layers, mapping_lr_multiplier, w_avg_beta
        )

    def forward(
        self,
        z: Tensor,  # (N, z_dim)
        c: Tensor | None = None,  # (N, c_dim) one-hot labels, or None when unconditional
        truncation_psi: float = 1.0,  # truncation trick (1 = off)
        truncation_cutoff: int | None = None,  # truncate only the first ws (None = all)
        noise_mode: NoiseMode = "random",  # random | const | none
    ) -> Tensor:
        """-> images (N, img_channels, R, R), roughly in [-1, 1] (no output nonlinearity)."""
        ws = self.mapping(z, c, truncation_psi, truncation_cutoff)
        return self.synthesis(ws, noise_mode=noise_mode)


class DiscriminatorBlock(nn.Module):
    """One 'resnet' block of D: R -> R/2 (networks.py:504-584)."""

    resample_filter: Tensor

    def __init__(
        self,
        in_channels: int,  # 0 for the first block, which reads RGB through fromrgb
        tmp_channels: int,  # feature maps of this resolution
        out_channels: int,  # feature maps of the next one
        img_channels: int,  # 3
        conv_clamp: float | None,  # activation clamp
        resample_filter: Sequence[float] = FIR,  # FIR filter of the downsampling
        use_fp16: bool = False,  # compute in float16 on CUDA (one of the num_fp16_res highest)
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.use_fp16 = use_fp16
        self.register_buffer("resample_filter", setup_filter(resample_filter))  # as the official
        if in_channels == 0:
            self.fromrgb = EqualizedConv2d(
                img_channels, tmp_channels, 1, activation="lrelu", conv_clamp=conv_clamp
            )
        self.conv0 = EqualizedConv2d(
            tmp_channels, tmp_channels, 3, activation="lrelu", conv_clamp=conv_clamp
        )
        self.conv1 = EqualizedConv2d(
            tmp_channels, out_channels, 3, activation="lrelu", down=2,
            resample_filter=resample_filter, conv_clamp=conv_clamp,
        )  # fmt: skip
        self.skip = EqualizedConv2d(
            tmp_channels, out_channels, 1, bias=False, down=2, resample_filter=resample_filter
        )

    def forward(self, x: Tensor | None, img: Tensor) -> Tensor:
        """(N, C, R, R) features (or None) and the image (N, 3, R, R) -> (N, C', R/2, R/2)."""
        dtype = block_dtype(self.use_fp16, img)
        if x is None:
            x = self.fromrgb(img if dtype is None else img.to(dtype))
        elif dtype is not None:
            x = x.to(dtype)
        y = self.skip(x, gain=math.sqrt(0.5))
        x = self.conv1(self.conv0(x), gain=math.sqrt(0.5))
        return y + x


class DiscriminatorEpilogue(nn.Module):
    """4x4: minibatch std, conv, fc, out (and the label projection) (networks.py:614-668)."""

    def __init__(
        self,
        in_channels: int,  # feature maps at 4x4
        cmap_dim: int,  # mapped-label size (0 = unconditional: one logit)
        resolution: int,  # 4
        mbstd_group_size: int,  # minibatch std group (config F: 4)
        mbstd_num_channels: int,  # minibatch std features (1)
        conv_clamp: float | None,  # activation clamp
    ) -> None:
        super().__init__()
        self.cmap_dim = cmap_dim
        self.mbstd = MinibatchStd(mbstd_group_size, mbstd_num_channels)
        self.conv = EqualizedConv2d(
            in_channels + mbstd_num_channels, in_channels, 3, activation="lrelu",
            conv_clamp=conv_clamp,
        )  # fmt: skip
        self.fc = EqualizedLinear(in_channels * resolution**2, in_channels, activation="lrelu")
        self.out = EqualizedLinear(in_channels, 1 if cmap_dim == 0 else cmap_dim)

    def forward(self, x: Tensor, cmap: Tensor | None) -> Tensor:
        """(N, C, 4, 4) -> logits (N, 1)."""
        x = self.conv(self.mbstd(x.float()))
        x = self.out(self.fc(x.flatten(1)))
        if self.cmap_dim > 0:
            assert cmap is not None
            x = (x * cmap).sum(dim=1, keepdim=True) * (1 / math.sqrt(self.cmap_dim))
        return x


class Discriminator(nn.Module):
    """StyleGAN2 D, 'resnet' architecture (networks.py:672-727)."""

    def __init__(
        self,
        img_resolution: int,  # input resolution (FFHQ 1024)
        c_dim: int = 0,  # class-label size (0 = unconditional)
        img_channels: int = 3,  # RGB
        channel_base: int = 32768,  # config F: 32768
        channel_max: int = 512,  # cap on the channels of any layer
        mbstd_group_size: int = 4,  # minibatch std group (config F: 4)
        mbstd_num_channels: int = 1,  # minibatch std features
        cmap_dim: int | None = None,  # mapped-label size (None = channels at 4x4)
        mapping_layers: int = 8,  # FC layers of the label mapping (the official default, 8)
        conv_clamp: float | None = 256,  # activation clamp (train.py:182)
        num_fp16_res: int = 0,  # float16 in the N highest-resolution blocks on CUDA (F: 4)
    ) -> None:
        super().__init__()
        log2 = int(math.log2(img_resolution))
        assert img_resolution >= 8 and 2**log2 == img_resolution, img_resolution
        self.c_dim = c_dim
        self.img_resolution = img_resolution
        self.num_fp16_res = num_fp16_res
        self.block_resolutions = [2**i for i in range(log2, 2, -1)]
        fp16 = fp16_resolutions(img_resolution, num_fp16_res)
        for res in self.block_resolutions:
            c_in = channels_at(res, channel_base, channel_max) if res < img_resolution else 0
            c_tmp = channels_at(res, channel_base, channel_max)
            c_out = channels_at(res // 2, channel_base, channel_max)
            block = DiscriminatorBlock(
                c_in, c_tmp, c_out, img_channels, conv_clamp, use_fp16=res in fp16
            )
            setattr(self, f"b{res}", block)
        c4 = channels_at(4, channel_base, channel_max)
        cmap_dim = 0 if c_dim == 0 else (c4 if cmap_dim is None else cmap_dim)
        if c_dim > 0:
            self.mapping = MappingNetwork(
                0, c_dim, cmap_dim, None, mapping_layers, lr_multiplier=0.01, w_avg_beta=None
            )
        self.b4 = DiscriminatorEpilogue(
            c4, cmap_dim, 4, mbstd_group_size, mbstd_num_channels, conv_clamp
        )

    def forward(self, img: Tensor, c: Tensor | None = None) -> Tensor:
        """(N, 3, R, R) images (and (N, c_dim) labels) -> logits (N, 1)."""
        assert img.shape[2:] == (self.img_resolution, self.img_resolution), tuple(img.shape)
        note_float32(self.num_fp16_res, img.device)
        x = None
        for res in self.block_resolutions:
            x = getattr(self, f"b{res}")(x, img)
        assert x is not None
        cmap = self.mapping(None, c) if self.c_dim > 0 else None
        return self.b4(x, cmap)
