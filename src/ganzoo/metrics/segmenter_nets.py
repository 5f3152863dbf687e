"""The networks of the real-dataset segmenters the SPADE paper scores mIoU with (Sec. 4).

Written from the official code (facts only); submodule names follow it so that the published
state dicts load as they are, and parameter counts equal the official networks' (tested):

- `DRNSegD105`: fyu/drn drn.py ``drn_d_105`` inside segment.py ``DRNSeg`` (Cityscapes, 19
  train classes): 54,302,915 parameters.
- `ResNet101Encoder` + `UPerNetDecoder`: CSAILVision/semantic-segmentation-pytorch
  mit_semseg/models resnet.py ``resnet101`` (deep stem of three 3x3 convs) wrapped by models.py
  ``Resnet``, and models.py ``UPerNet`` with fpn_dim 512 (arch "upernet", ADE20K 150 classes):
  42,623,936 + 40,590,486 parameters.
- `DeepLabV2`: kazuto1011/deeplab-pytorch libs/models deeplabv2.py + resnet.py (ResNet-101 with
  the stride on the 1x1 reduce conv, output stride 8, ASPP rates 6/12/18/24), wrapped by msc.py
  ``MSC`` (COCO-Stuff 164k, 182 classes): 55,919,384 parameters.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _cbr(c_in: int, c_out: int, k: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    """Conv (no bias, 'same' padding) + BatchNorm + ReLU, as (0, 1, 2) of a Sequential."""
    pad = dilation * (k - 1) // 2
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, k, stride, pad, dilation, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


# ----- DRN-D-105 (fyu/drn) ---------------------------------------------------------------
class _Bottleneck(nn.Module):
    """ResNet bottleneck (torchvision names): 1x1, 3x3 (stride, dilation), 1x1 (x4), BN after
    each; the skip is projected when the shape changes. Used by DRN and the CSAIL ResNet."""

    expansion = 4

    def __init__(self, c_in: int, planes: int, stride: int, dilation: int) -> None:
        super().__init__()
        c_out = planes * self.expansion
        self.conv1 = nn.Conv2d(c_in, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, dilation, dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, c_out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(c_out)
        self.downsample: nn.Module | None = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        skip = x if self.downsample is None else self.downsample(x)
        return F.relu(out + skip)


def _convs(c_in: int, c_out: int, n: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    """DRN-D's plain conv levels: n x (3x3 conv, BN, ReLU), the first with the stride."""
    layers: list[nn.Module] = []
    for i in range(n):
        layers += [
            nn.Conv2d(c_in, c_out, 3, stride if i == 0 else 1, dilation, dilation, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
        ]
        c_in = c_out
    return nn.Sequential(*layers)


def _blocks(c_in: int, planes: int, n: int, stride: int, dilation: int) -> nn.Sequential:
    """A level of n bottlenecks; only the first strides (ResNet / DRN _make_layer)."""
    layers = [_Bottleneck(c_in, planes, stride, dilation)]
    layers += [_Bottleneck(planes * 4, planes, 1, dilation) for _ in range(n - 1)]
    return nn.Sequential(*layers)


class DRNSegD105(nn.Module):
    """DRN-D-105 for segmentation (fyu/drn DRNSeg around drn_d_105), output stride 8.

    Submodule names follow DRNSeg: base.0 .. base.8 are DRN's layer0 .. layer8, then seg
    (1x1 conv to the classes) and up (fixed bilinear x8 transposed conv, from the file).
    """

    def __init__(
        self,
        num_classes: int = 19,  # Cityscapes train classes
        channels: tuple[int, ...] = (16, 32, 64, 128, 256, 512, 512, 512),  # DRN defaults
        depths: tuple[int, ...] = (1, 1, 3, 4, 23, 3, 1, 1),  # drn_d_105
    ) -> None:
        super().__init__()
        c, d = channels, depths
        self.base = nn.Sequential(
            nn.Sequential(nn.Conv2d(3, c[0], 7, 1, 3, bias=False), nn.BatchNorm2d(c[0]), nn.ReLU()),
            _convs(c[0], c[0], d[0]),  # layer1, full resolution
            _convs(c[0], c[1], d[1], stride=2),  # layer2, 1/2
            _blocks(c[1], c[2], d[2], stride=2, dilation=1),  # layer3, 1/4
            _blocks(c[2] * 4, c[3], d[3], stride=2, dilation=1),  # layer4, 1/8
            _blocks(c[3] * 4, c[4], d[4], stride=1, dilation=2),  # layer5, dilated
            _blocks(c[4] * 4, c[5], d[5], stride=1, dilation=4),  # layer6
            _convs(c[5] * 4, c[6], d[6], dilation=2),  # layer7, de-gridding
            _convs(c[6], c[7], d[7], dilation=1),  # layer8
        )
        self.seg = nn.Conv2d(c[7], num_classes, 1)
        self.up = nn.ConvTranspose2d(
            num_classes, num_classes, 16, stride=8, padding=4, groups=num_classes, bias=False
        )
        self.up.weight.requires_grad_(False)  # fixed bilinear kernel (loaded from the file)

    def forward(self, x: Tensor) -> Tensor:
        """Normalised images (N, 3, H, W) -> class scores (N, C, 8 ceil(H / 8), ...)."""
        return self.up(self.seg(self.base(x)))


# ----- UperNet-101 (CSAILVision/semantic-segmentation-pytorch) ---------------------------
class ResNet101Encoder(nn.Module):
    """CSAIL's ImageNet ResNet-101 with the deep stem, without pooling and fc: the four stage
    outputs (N, 256 / 512 / 1024 / 2048, H / 4 .. H / 32). Names as the encoder file."""

    def __init__(self, depths: Sequence[int] = (3, 4, 23, 3)) -> None:  # resnet101
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.conv2 = nn.Conv2d(64, 64, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(64)
        self.conv3 = nn.Conv2d(64, 128, 3, 1, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(128)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = _blocks(128, 64, depths[0], stride=1, dilation=1)
        self.layer2 = _blocks(256, 128, depths[1], stride=2, dilation=1)
        self.layer3 = _blocks(512, 256, depths[2], stride=2, dilation=1)
        self.layer4 = _blocks(1024, 512, depths[3], stride=2, dilation=1)

    def forward(self, x: Tensor) -> list[Tensor]:
        x = F.relu(self.bn1(self.conv1(x)))  # (N, 64, H/2, W/2)
        x = F.relu(self.bn2(self.conv2(x)))
        x = self.maxpool(F.relu(self.bn3(self.conv3(x))))  # (N, 128, H/4, W/4)
        features = []
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = layer(x)
            features.append(x)
        return features


def _up(x: Tensor, size: Sequence[int]) -> Tensor:
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


class UPerNetDecoder(nn.Module):
    """UPerNet head (Xiao et al. 2018): pyramid pooling on the last stage, an FPN over the
    four stages, their fusion at 1/4 resolution -> class logits (N, C, H / 4, W / 4)."""

    def __init__(
        self,
        num_classes: int = 150,  # ADE20K classes
        fc_dim: int = 2048,  # channels of the last encoder stage
        fpn_dim: int = 512,  # arch "upernet" (256 for "upernet_lite")
        pool_scales: Sequence[int] = (1, 2, 3, 6),
        fpn_inplanes: Sequence[int] = (256, 512, 1024, 2048),
    ) -> None:
        super().__init__()
        self.pool_scales = tuple(pool_scales)
        self.ppm_conv = nn.ModuleList([_cbr(fc_dim, 512, 1) for _ in pool_scales])
        self.ppm_last_conv = _cbr(fc_dim + len(pool_scales) * 512, fpn_dim, 3)
        self.fpn_in = nn.ModuleList([_cbr(c, fpn_dim, 1) for c in fpn_inplanes[:-1]])
        self.fpn_out = nn.ModuleList(
            [nn.Sequential(_cbr(fpn_dim, fpn_dim, 3)) for _ in fpn_inplanes[:-1]]
        )
        self.conv_last = nn.Sequential(
            _cbr(len(fpn_inplanes) * fpn_dim, fpn_dim, 3), nn.Conv2d(fpn_dim, num_classes, 1)
        )

    def forward(self, features: list[Tensor]) -> Tensor:
        top = features[-1]  # (N, fc_dim, H/32, W/32)
        pooled = [top] + [
            conv(_up(F.adaptive_avg_pool2d(top, s), top.shape[2:]))
            for s, conv in zip(self.pool_scales, self.ppm_conv, strict=True)
        ]
        f = self.ppm_last_conv(torch.cat(pooled, 1))  # (N, fpn_dim, H/32, W/32)
        pyramid = [f]
        for i in reversed(range(len(features) - 1)):
            lateral = self.fpn_in[i](features[i])
            f = lateral + _up(f, lateral.shape[2:])  # top-down
            pyramid.append(self.fpn_out[i](f))
        pyramid.reverse()  # P2 .. P5
        size = pyramid[0].shape[2:]
        fused = torch.cat([pyramid[0]] + [_up(p, size) for p in pyramid[1:]], 1)
        return self.conv_last(fused)  # (N, C, H/4, W/4)


# ----- DeepLab-v2 (kazuto1011/deeplab-pytorch) -------------------------------------------
def _conv_bn(
    c_in: int, c_out: int, k: int, stride: int, dilation: int, relu: bool
) -> nn.Sequential:
    """deeplab-pytorch's _ConvBnReLU: children conv, bn (eps 1e-5) [, relu]."""
    seq = nn.Sequential()
    seq.add_module(
        "conv", nn.Conv2d(c_in, c_out, k, stride, dilation * (k // 2), dilation, bias=False)
    )
    seq.add_module("bn", nn.BatchNorm2d(c_out, eps=1e-5))
    if relu:
        seq.add_module("relu", nn.ReLU())
    return seq


class _DeepLabBottleneck(nn.Module):
    """MSRA bottleneck: the stride sits on the 1x1 reduce conv; the 3x3 is dilated."""

    def __init__(self, c_in: int, c_out: int, stride: int, dilation: int, project: bool) -> None:
        super().__init__()
        mid = c_out // 4
        self.reduce = _conv_bn(c_in, mid, 1, stride, 1, relu=True)
        self.conv3x3 = _conv_bn(mid, mid, 3, 1, dilation, relu=True)
        self.increase = _conv_bn(mid, c_out, 1, 1, 1, relu=False)
        self.shortcut = (
            _conv_bn(c_in, c_out, 1, stride, 1, relu=False) if project else nn.Identity()
        )

    def forward(self, x: Tensor) -> Tensor:
        h = self.increase(self.conv3x3(self.reduce(x)))
        return F.relu(h + self.shortcut(x))


def _res_layer(n: int, c_in: int, c_out: int, stride: int, dilation: int) -> nn.Sequential:
    """block1 .. block<n>; the first projects and strides."""
    layer = nn.Sequential()
    for i in range(n):
        block = _DeepLabBottleneck(c_in if i == 0 else c_out, c_out, stride if i == 0 else 1,
                                   dilation, project=i == 0)  # fmt: skip
        layer.add_module(f"block{i + 1}", block)
    return layer


class _DeepLabV2Base(nn.Module):
    """Dilated ResNet-101 + ASPP (sum of four dilated 3x3 convs to the classes), stride 8."""

    def __init__(self, num_classes: int, depths: Sequence[int], rates: Sequence[int]) -> None:
        super().__init__()
        self.layer1 = nn.Sequential()
        self.layer1.add_module("conv1", _conv_bn(3, 64, 7, 2, 1, relu=True))
        self.layer1.add_module("pool", nn.MaxPool2d(3, 2, 1, ceil_mode=True))
        self.layer2 = _res_layer(depths[0], 64, 256, 1, 1)
        self.layer3 = _res_layer(depths[1], 256, 512, 2, 1)
        self.layer4 = _res_layer(depths[2], 512, 1024, 1, 2)
        self.layer5 = _res_layer(depths[3], 1024, 2048, 1, 4)
        self.aspp = nn.Module()
        for i, rate in enumerate(rates):
            self.aspp.add_module(f"c{i}", nn.Conv2d(2048, num_classes, 3, 1, rate, rate))

    def forward(self, x: Tensor) -> Tensor:
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4, self.layer5):
            x = layer(x)
        return torch.stack([conv(x) for conv in self.aspp.children()]).sum(0)


class DeepLabV2(nn.Module):
    """DeepLab-v2 ResNet-101 with multi-scale inputs (MSC): logits of the image and of its
    0.5x and 0.75x copies, upsampled to the first and maxed pixel-wise (N, C, ~H/8, ~W/8)."""

    def __init__(
        self,
        num_classes: int = 182,  # COCO-Stuff 164k
        depths: Sequence[int] = (3, 4, 23, 3),  # ResNet-101
        rates: Sequence[int] = (6, 12, 18, 24),  # ASPP dilation rates
        scales: Sequence[float] = (0.5, 0.75),  # MSC input scales besides 1
    ) -> None:
        super().__init__()
        self.base = _DeepLabV2Base(num_classes, depths, rates)
        self.scales = tuple(scales)

    def forward(self, x: Tensor) -> Tensor:
        logits = self.base(x)
        size = logits.shape[2:]
        pyramid = [logits] + [
            _up(self.base(F.interpolate(x, scale_factor=s, mode="bilinear", align_corners=False)),
                size)
            for s in self.scales
        ]  # fmt: skip
        return torch.stack(pyramid).amax(0)
