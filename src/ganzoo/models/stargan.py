"""StarGAN networks (Choi et al., "StarGAN: Unified Generative Adversarial Networks for
Multi-Domain Image-to-Image Translation", CVPR 2018), faithful to yunjey/stargan model.py.

- `StarGANGenerator` (Sec. 3, Appendix Table 4; model.py Generator): the target domain label is
  tiled over the image and concatenated to it; Conv7 (64) -> 2 stride-2 Conv4 (128, 256) ->
  6 residual blocks at 256 -> 2 stride-2 ConvTranspose4 (128, 64) -> Conv7 (3) -> Tanh.
  No conv has a bias; every conv but the last is followed by instance norm and ReLU.
- `StarGANDiscriminator` (Appendix Table 5; model.py Discriminator): 6 stride-2 Conv4 (64 ... 2048,
  with bias) each followed by LeakyReLU(0.01), no normalisation; two heads: D_src, a Conv3
  (no bias) giving the PatchGAN map (N, 1, H/64, W/64), and D_cls, a conv (no bias) whose
  kernel covers the whole final map, giving the domain logits (N, c_dim).

At the official 128x128 with c_dim 5 (CelebA): G 8,430,528 and D 44,762,048 trainable
parameters. Joint CelebA + RaFD training (Sec. 3.2, mask vector): G sees c_dim + c2_dim + 2
label channels and D classifies c_dim + c2_dim domains.

Instance norm. The official G uses InstanceNorm2d(affine=True, track_running_stats=True) but
never switches to eval(): images are always normalised with their own statistics, and the
running averages are only state in the checkpoint. `InstanceNorm` keeps exactly that: running
averages tracked in training mode, per-instance statistics in both modes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class InstanceNorm(nn.InstanceNorm2d):
    """InstanceNorm2d(affine=True, track_running_stats=True) as the official code runs it:
    normalised by each image's own statistics in train and eval mode; running stats updated
    in train mode only (they are state, not used for normalising)."""

    def __init__(self, channels: int) -> None:
        super().__init__(channels, affine=True, track_running_stats=True)

    def forward(self, x: Tensor) -> Tensor:
        track = self.training
        return F.instance_norm(
            x,
            self.running_mean if track else None,
            self.running_var if track else None,
            self.weight,
            self.bias,
            use_input_stats=True,
            momentum=self.momentum if self.momentum is not None else 0.1,
            eps=self.eps,
        )


class ResidualBlock(nn.Module):
    """x + [Conv3 (no bias), IN, ReLU, Conv3 (no bias), IN](x) (model.py ResidualBlock)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(channels, channels, 3, 1, 1, bias=False),
            InstanceNorm(channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, 1, 1, bias=False),
            InstanceNorm(channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.main(x)


class StarGANGenerator(nn.Module):
    """G(x, c): image (N, 3, H, W) in [-1, 1] and target label c (N, c_dim) -> (N, 3, H, W)."""

    def __init__(
        self,
        c_dim: int,  # label size G is conditioned on (CelebA 5; joint CelebA+RaFD 5 + 8 + 2)
        conv_dim: int = 64,  # channels of the first conv (--g_conv_dim 64)
        repeat_num: int = 6,  # residual blocks in the bottleneck (--g_repeat_num 6)
    ) -> None:
        super().__init__()
        if c_dim < 1 or conv_dim < 1 or repeat_num < 0:
            raise ValueError(
                f"StarGANGenerator needs c_dim, conv_dim >= 1 and repeat_num >= 0; "
                f"got {c_dim}, {conv_dim}, {repeat_num}"
            )
        self.c_dim = c_dim
        layers: list[nn.Module] = [
            nn.Conv2d(3 + c_dim, conv_dim, 7, 1, 3, bias=False),
            InstanceNorm(conv_dim),
            nn.ReLU(inplace=True),
        ]
        dim = conv_dim
        for _ in range(2):  # down-sampling: H -> H/4
            layers += [nn.Conv2d(dim, dim * 2, 4, 2, 1, bias=False), InstanceNorm(dim * 2)]
            layers.append(nn.ReLU(inplace=True))
            dim *= 2
        layers += [ResidualBlock(dim) for _ in range(repeat_num)]
        for _ in range(2):  # up-sampling: H/4 -> H
            layers += [nn.ConvTranspose2d(dim, dim // 2, 4, 2, 1, bias=False)]
            layers += [InstanceNorm(dim // 2), nn.ReLU(inplace=True)]
            dim //= 2
        layers += [nn.Conv2d(dim, 3, 7, 1, 3, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        n, _, h, w = x.shape
        assert h % 4 == 0 and w % 4 == 0, f"StarGAN G needs H, W divisible by 4; got {h}x{w}"
        assert c.shape == (n, self.c_dim), f"label shape {tuple(c.shape)} != ({n}, {self.c_dim})"
        tiled = c.to(x.dtype)[:, :, None, None].expand(n, self.c_dim, h, w)  # (N, c_dim, H, W)
        return self.main(torch.cat([x, tiled], dim=1))  # (N, 3, H, W)


class StarGANDiscriminator(nn.Module):
    """D(x) -> (out_src (N, 1, H/2^r, W/2^r) PatchGAN critic, out_cls (N, c_dim) logits)."""

    def __init__(
        self,
        c_dim: int,  # domains D classifies (CelebA 5; joint 5 + 8)
        image_size: int = 128,  # input width = height (--image_size 128)
        conv_dim: int = 64,  # channels of the first conv (--d_conv_dim 64)
        repeat_num: int = 6,  # stride-2 convs (--d_repeat_num 6)
    ) -> None:
        super().__init__()
        kernel = image_size // 2**repeat_num  # model.py: int(image_size / 2**repeat_num)
        if c_dim < 1 or repeat_num < 1 or kernel < 1 or image_size % 2**repeat_num:
            raise ValueError(
                f"StarGANDiscriminator needs c_dim >= 1 and image_size divisible by "
                f"2^repeat_num; got c_dim {c_dim}, image_size {image_size}, repeat_num {repeat_num}"
            )
        self.c_dim = c_dim
        self.image_size = image_size
        layers: list[nn.Module] = [nn.Conv2d(3, conv_dim, 4, 2, 1), nn.LeakyReLU(0.01)]
        dim = conv_dim
        for _ in range(1, repeat_num):
            layers += [nn.Conv2d(dim, dim * 2, 4, 2, 1), nn.LeakyReLU(0.01)]
            dim *= 2
        self.main = nn.Sequential(*layers)
        self.conv1 = nn.Conv2d(dim, 1, 3, 1, 1, bias=False)  # D_src
        self.conv2 = nn.Conv2d(dim, c_dim, kernel, bias=False)  # D_cls

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        assert x.shape[-1] == x.shape[-2] == self.image_size, (
            f"StarGAN D was built for {self.image_size}x{self.image_size}; got {tuple(x.shape)}"
        )
        h = self.main(x)  # (N, conv_dim * 2^(r-1), S, S) with S = image_size / 2^r
        out_src = self.conv1(h)  # (N, 1, S, S)
        out_cls = self.conv2(h)  # (N, c_dim, 1, 1)
        return out_src, out_cls.view(out_cls.shape[0], self.c_dim)
