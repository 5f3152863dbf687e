"""pix2pixHD networks (Wang et al., "High-Resolution Image Synthesis and Semantic Manipulation
with Conditional GANs", CVPR 2018), faithful to NVIDIA/pix2pixHD models/networks.py.

- `Pix2PixHDGenerator` (Sec. 3.2 "Coarse-to-fine generator", Fig. 3): the global generator G1
  (netG 'global', networks.py GlobalGenerator) or G1 inside the local enhancer G2 (netG 'local',
  networks.py LocalEnhancer), whose front-end output is *added* to G1's last feature map.
- `ResnetBlock` (networks.py ResnetBlock): reflect pad, Conv3, norm, ReLU, reflect pad, Conv3,
  norm, plus the identity (no activation after the sum).
- `FeatureEncoder` (Sec. 3.4 "Using instance maps", Fig. 5; networks.py Encoder): an
  encoder-decoder whose output is averaged over each instance (`instance_average`), giving the
  low-dimensional per-instance features that are concatenated to G's input.

The discriminator is ganzoo.nn.patch_discriminator.MultiscaleDiscriminator, shared with SPADE;
pix2pixHD's (Sec. 3.2 "Multi-scale discriminators") is

    MultiscaleDiscriminator(in_channels=label_nc + 1 + 3, ndf=64, n_layers=4 (n_layers_D 3),
                            num_scales=3 (2 in train_512p.sh), norm="instance",
                            use_spectral_norm=False, use_bias_with_norm=True)

Width convention. Here `ngf` is always G1's width (64 in both official scripts); local enhancer
n of k has ngf / 2^n channels. The official --ngf is the width of the finest enhancer instead
(train_1024p_24G.sh passes --ngf 32 so that G1 runs at 64): ngf 64 with --netG local there
builds a 731M-parameter G. With this convention netG=global and netG=local share ngf: 64.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Norm = Literal["instance", "batch"]
NetG = Literal["global", "local"]


def _norm(kind: Norm, channels: int) -> nn.Module:
    """networks.py get_norm_layer: InstanceNorm2d(affine=False) or BatchNorm2d(affine=True)."""
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False)
    if kind == "batch":
        return nn.BatchNorm2d(channels, affine=True)
    raise ValueError(f"norm must be one of 'instance', 'batch'; got {kind!r}")


def _down(c_in: int, c_out: int, norm: Norm) -> list[nn.Module]:
    """Conv3 stride 2 (padding 1) + norm + ReLU: (N, c_in, H, W) -> (N, c_out, ceil(H/2), ...)."""
    return [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), _norm(norm, c_out), nn.ReLU(True)]


def _up(c_in: int, c_out: int, norm: Norm) -> list[nn.Module]:
    """ConvTranspose3 stride 2, padding 1, output_padding 1 + norm + ReLU: H -> 2H."""
    conv = nn.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1, output_padding=1)
    return [conv, _norm(norm, c_out), nn.ReLU(True)]


def _front(c_in: int, c_out: int, norm: Norm) -> list[nn.Module]:
    """ReflectionPad(3) + Conv7 + norm + ReLU, the first layer of every pix2pixHD network."""
    return [nn.ReflectionPad2d(3), nn.Conv2d(c_in, c_out, 7), _norm(norm, c_out), nn.ReLU(True)]


def _output(c_in: int, c_out: int) -> nn.Sequential:
    """ReflectionPad(3) + Conv7 + Tanh, the last layer of G and E."""
    return nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(c_in, c_out, 7), nn.Tanh())


def input_downsample(x: Tensor) -> Tensor:
    """The input pyramid's step (networks.py:165): avg_pool2d(3, 2, padding 1,
    count_include_pad=False), (N, C, H, W) -> (N, C, ceil(H/2), ceil(W/2))."""
    return F.avg_pool2d(x, kernel_size=3, stride=2, padding=1, count_include_pad=False)


class ResnetBlock(nn.Module):
    """Residual block of G1 and G2 (networks.py:214-253): x + conv_block(x), channels kept."""

    def __init__(
        self,
        dim: int,  # channels in and out (G1: 16 ngf = 1024)
        norm: Norm,  # normalization after each conv (paper: instance)
    ) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, 3),
            _norm(norm, dim),
            nn.ReLU(True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, 3),
            _norm(norm, dim),
        )

    def forward(self, x: Tensor) -> Tensor:
        """x: (N, dim, H, W) -> (N, dim, H, W)."""
        return x + self.conv_block(x)


class LocalEnhancerBranch(nn.Module):
    """One local enhancer's own layers (networks.py:140-160, model{n}_1 and model{n}_2).

    front: Conv7 (input_nc -> ngf), Conv3 stride 2 (ngf -> 2 ngf), each + norm + ReLU;
    back: n_blocks ResnetBlocks (2 ngf), ConvTranspose (2 ngf -> ngf) + norm + ReLU.
    forward(x, coarse) = back(front(x) + coarse): the sum fuses the coarser generator's last
    feature map (2 ngf channels at half resolution) into the enhancer (Sec. 3.2).
    """

    def __init__(
        self,
        input_nc: int,  # G's input channels (labels + edges [+ features])
        ngf: int,  # this enhancer's width (paper: 32 = G1's 64 / 2)
        n_blocks: int,  # residual blocks (paper 3)
        norm: Norm,  # paper: instance
    ) -> None:
        super().__init__()
        self.front = nn.Sequential(*_front(input_nc, ngf, norm), *_down(ngf, 2 * ngf, norm))
        blocks = [ResnetBlock(2 * ngf, norm) for _ in range(n_blocks)]
        self.back = nn.Sequential(*blocks, *_up(2 * ngf, ngf, norm))
        self.ngf = ngf

    def forward(self, x: Tensor, coarse: Tensor) -> Tensor:
        """x: (N, input_nc, H, W); coarse: (N, 2 ngf, H/2, W/2) -> (N, ngf, H, W)."""
        features = self.front(x)
        assert features.shape == coarse.shape, (
            f"enhancer features {tuple(features.shape)} vs coarser features {tuple(coarse.shape)}"
        )
        return self.back(features + coarse)


class Pix2PixHDGenerator(nn.Module):
    """The coarse-to-fine generator (Sec. 3.2, Fig. 3).

    G1 ('global', networks.py:183-208) runs on the input downsampled n_local_enhancers times:
    front Conv7 (ngf), n_downsample_global stride-2 Conv3 (doubling to ngf 2^n), n_blocks_global
    ResnetBlocks, as many ConvTranspose back to ngf. netG 'global' ends there with
    ReflectionPad(3) + Conv7 -> output_nc + Tanh. netG 'local' drops that output layer (the
    official "get rid of final convolution layers") and adds local enhancers n = 1..k of width
    ngf / 2^n, each summing its front-end with the coarser output, then the output layer at
    ngf / 2^k. The input size must be divisible by 2^(n_downsample_global + k).
    """

    def __init__(
        self,
        input_nc: int,  # label_nc + instance edge channel [+ feat_num] (Cityscapes 35 + 1)
        output_nc: int = 3,  # image channels
        netG: NetG = "global",  # 'global': G1 alone (1024x512); 'local': G1 + enhancer (2048x1024)
        ngf: int = 64,  # G1's width (paper 64; the official --ngf of netG local is ngf / 2^k)
        n_downsample_global: int = 4,  # stride-2 convs in G1 (paper 4)
        n_blocks_global: int = 9,  # ResnetBlocks in G1 (paper 9)
        n_local_enhancers: int = 1,  # enhancers with netG 'local' (paper 1); ignored for 'global'
        n_blocks_local: int = 3,  # ResnetBlocks per enhancer (paper 3)
        norm: Norm = "instance",  # paper: instance norm (--norm instance)
    ) -> None:
        super().__init__()
        if netG not in ("global", "local"):
            raise ValueError(f"netG must be one of 'global', 'local'; got {netG!r}")
        k = n_local_enhancers if netG == "local" else 0
        if netG == "local" and k < 1:
            raise ValueError(f"netG 'local' needs n_local_enhancers >= 1; got {k}")
        if ngf % 2**k:
            raise ValueError(f"ngf {ngf} must be divisible by 2^n_local_enhancers = {2**k}")
        layers = _front(input_nc, ngf, norm)
        for i in range(n_downsample_global):
            layers += _down(ngf * 2**i, ngf * 2 ** (i + 1), norm)
        layers += [ResnetBlock(ngf * 2**n_downsample_global, norm) for _ in range(n_blocks_global)]
        for i in range(n_downsample_global, 0, -1):
            layers += _up(ngf * 2**i, ngf * 2 ** (i - 1), norm)
        self.global_generator = nn.Sequential(*layers)  # G1 without its output layer
        self.local_enhancers = nn.ModuleList(
            LocalEnhancerBranch(input_nc, ngf // 2**n, n_blocks_local, norm)
            for n in range(1, k + 1)
        )
        self.output_layer = _output(ngf // 2**k, output_nc)
        self.input_nc = input_nc
        self.netG = netG
        self.n_local_enhancers = k
        self.size_multiple = 2 ** (n_downsample_global + k)

    def global_features(self, x: Tensor) -> Tensor:
        """G1's last feature map: x (N, input_nc, H, W) downsampled k times, then G1 without
        its output layer -> (N, ngf, H / 2^k, W / 2^k)."""
        n, c, h, w = x.shape
        m = self.size_multiple
        assert c == self.input_nc and h % m == 0 and w % m == 0, (
            f"G input must be (N, {self.input_nc}, H, W) with H, W divisible by {m}; "
            f"got {tuple(x.shape)}"
        )
        for _ in range(self.n_local_enhancers):
            x = input_downsample(x)
        return self.global_generator(x)

    def enhance(self, x: Tensor, global_features: Tensor) -> Tensor:
        """The enhancers (coarse to fine) and the output layer on G1's features -> (N, 3, H, W).

        x: (N, input_nc, H, W); global_features: `global_features(x)`.
        """
        pyramid = [x]  # pyramid[i]: the input downsampled i times
        for _ in range(self.n_local_enhancers):
            pyramid.append(input_downsample(pyramid[-1]))
        features = global_features
        for n, enhancer in enumerate(self.local_enhancers, start=1):
            features = enhancer(pyramid[self.n_local_enhancers - n], features)
        return self.output_layer(features)

    def forward(self, x: Tensor) -> Tensor:
        """x: (N, input_nc, H, W) one-hot labels [+ edges] [+ features] -> (N, 3, H, W) in
        [-1, 1]; H and W divisible by `size_multiple`."""
        out = self.enhance(x, self.global_features(x))
        assert out.shape[2:] == x.shape[2:]
        return out


def region_ids(regions: Tensor) -> tuple[Tensor, int]:
    """Index of each pixel's (sample, region) pair among the distinct pairs of the batch.

    regions: (N, H, W) integer ids, compared within each sample. Returns the index map
    (N, H, W) long in [0, R) and R. Pairs are numbered in increasing (sample, id) order.
    """
    n = regions.shape[0]
    flat = regions.reshape(n, -1).long()
    flat = flat - flat.min()  # non-negative, so (sample, id) packs into one integer
    keys = torch.arange(n, device=flat.device)[:, None] * (int(flat.max()) + 1) + flat
    unique, inverse = torch.unique(keys, return_inverse=True)
    return inverse.reshape(regions.shape), int(unique.numel())


def region_means(features: Tensor, index: Tensor, count: int) -> Tensor:
    """Mean feature of each region: features (N, C, H, W), index (N, H, W) from `region_ids`
    -> (R, C) float32 (differentiable)."""
    c = features.shape[1]
    flat = features.float().permute(0, 2, 3, 1).reshape(-1, c)  # (N*H*W, C)
    idx = index.reshape(-1)
    sums = flat.new_zeros(count, c).index_add_(0, idx, flat)
    pixels = torch.bincount(idx, minlength=count).clamp_min(1).to(flat.dtype)
    return sums / pixels[:, None]


def instance_average(features: Tensor, regions: Tensor) -> Tensor:
    """Instance-wise average pooling (Sec. 3.4; networks.py:276-290): every pixel gets the mean
    of its region in its sample.

    features: (N, C, H, W); regions: (N, H, W) integer ids -> (N, C, H, W), same dtype.
    On the meta device (shapes only) the features are returned as they are.
    """
    if features.is_meta:
        return features
    n, c, h, w = features.shape
    index, count = region_ids(regions)
    means = region_means(features, index, count)  # (R, C)
    out = means[index.reshape(-1)].reshape(n, h, w, c).permute(0, 3, 1, 2)
    return out.to(features.dtype)


class FeatureEncoder(nn.Module):
    """The instance-wise feature encoder E (Sec. 3.4, Fig. 5; networks.py:255-290).

    Conv7 (nef), n_downsampling stride-2 Conv3 (doubling), as many ConvTranspose back to nef,
    Conv7 -> feat_num, Tanh; then `instance_average` over the instance map. The official code
    builds it with define_G(output_nc, feat_num, nef, 'encoder', n_downsample_E): no residual
    blocks. Its features are concatenated to G's input while training; at test time they come
    from per-class k-means centres of the training set's features (ganzoo.sample action=cluster).
    """

    def __init__(
        self,
        input_nc: int = 3,  # image channels
        feat_num: int = 3,  # feature channels per instance (paper 3; --feat_num)
        nef: int = 16,  # width of the first conv (--nef 16)
        n_downsampling: int = 4,  # stride-2 convs (--n_downsample_E 4)
        norm: Norm = "instance",  # paper: instance
    ) -> None:
        super().__init__()
        layers = _front(input_nc, nef, norm)
        for i in range(n_downsampling):
            layers += _down(nef * 2**i, nef * 2 ** (i + 1), norm)
        for i in range(n_downsampling, 0, -1):
            layers += _up(nef * 2**i, nef * 2 ** (i - 1), norm)
        self.model = nn.Sequential(*layers, *_output(nef, feat_num))
        self.feat_num = feat_num
        self.size_multiple = 2**n_downsampling

    def forward(self, image: Tensor, regions: Tensor) -> Tensor:
        """image: (N, 3, H, W) in [-1, 1]; regions: (N, H, W) instance ids (H, W divisible by
        2^n_downsampling) -> (N, feat_num, H, W), constant within each region."""
        features = self.model(image)
        assert features.shape[2:] == image.shape[2:], (
            f"E input H, W must be divisible by {self.size_multiple}; got {tuple(image.shape)}"
        )
        return instance_average(features, regions)
