"""EditGAN's networks (Ling et al., "EditGAN: High-Precision Semantic Image Editing", NeurIPS 2021;
nv-tlabs/editGAN_release), built on a StyleGAN2 synthesis network that the task passes in
(models never import each other: the synthesis network is read through its modules, not its
class).

- `synthesis_with_features`: the image and G's intermediate feature maps for ws in W+: the
  learned constant and the output of every modulated conv (b4.conv1, b8.conv0, b8.conv1, ...),
  what the official stylegan2_pytorch g_synthesis returns as `styles_feature` (6016 channels
  for config F at 512: constant 512 + b4 512 + b8..b64 2 x 512 x 4 + b128..b512
  2 x (256 + 128 + 64) = 6016).
- `upsample_features`: each map resized to the output size and concatenated per pixel
  (bilinear, as train_interpreter.py; the editing loop of EditGAN_tool.py uses nearest).
- `PixelClassifier` / `SegmentationBranch`: DatasetGAN's per-pixel MLP (models/DatasetGAN/
  classifer.py) and the ensemble of `num_models` of them (official 10) whose mean logits
  segment an image (EditGAN_tool.py run_seg).
- `FPNEncoder`: the image -> W+ encoder of models/encoder/encoder.py: a ResNet-50 bottom-up
  path (Bottleneck blocks 3, 4, 6, 3), an FPN top-down path (p2, p3, p4), and one ToStyleCode
  head per w: the first 3 ws from p4 (coarse), the next 4 from p3, the rest from p2 (fine).
  Widths are arguments so the same network runs at a laptop size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

UpsampleMode = Literal["bilinear", "nearest"]


# ----- G's features -------------------------------------------------------------------------
def synthesis_layers(synthesis: nn.Module) -> list[nn.Module]:
    """The modulated convs of a StyleGAN2 synthesis network in order (b4.conv1, b8.conv0, ...)."""
    layers: list[nn.Module] = []
    for res in synthesis.block_resolutions:  # type: ignore[union-attr]
        block = getattr(synthesis, f"b{res}")
        if hasattr(block, "conv0"):
            layers.append(block.conv0)
        layers.append(block.conv1)
    return layers


def feature_channels(synthesis: nn.Module) -> list[int]:
    """Channels of each feature map `synthesis_with_features` returns (constant first)."""
    const: Tensor = synthesis.b4.const  # type: ignore[union-attr,assignment]
    weights: list[Tensor] = [m.weight for m in synthesis_layers(synthesis)]  # type: ignore[misc]
    return [int(const.shape[0])] + [int(w.shape[0]) for w in weights]


def synthesis_with_features(
    synthesis: nn.Module,  # a ganzoo.models.stylegan2.SynthesisNetwork
    ws: Tensor,  # (N, num_ws, w_dim): a latent in W+
    noise_mode: str,  # const | random | none (EditGAN: fixed noise, use_noise false)
) -> tuple[Tensor, list[Tensor]]:
    """-> image (N, 3, R, R) and the feature maps [(N, C_i, r_i, r_i)] (constant, every conv)."""
    captured: list[Tensor] = []

    def keep(_module: nn.Module, _inputs: object, output: Tensor) -> None:
        captured.append(output.float())

    handles = [layer.register_forward_hook(keep) for layer in synthesis_layers(synthesis)]
    try:
        image = synthesis(ws, noise_mode=noise_mode)
    finally:
        for handle in handles:
            handle.remove()
    const: Tensor = synthesis.b4.const  # type: ignore[union-attr,assignment]
    features = [const.float().unsqueeze(0).expand(ws.shape[0], -1, -1, -1)] + captured
    return image.float(), features


def upsample_features(features: Sequence[Tensor], size: int, mode: UpsampleMode) -> Tensor:
    """Feature maps resized to size x size and concatenated: (N, sum C_i, size, size)."""
    resized = [
        f if f.shape[-1] == size else F.interpolate(f, size=(size, size), mode=mode)
        for f in features
    ]
    return torch.cat(resized, dim=1)


# ----- the segmentation branch (DatasetGAN) -------------------------------------------------
class PixelClassifier(nn.Module):
    """Per-pixel MLP: Linear-ReLU-BN x 2, Linear (classifer.py; hidden 128, 32 below 32 classes,
    else 256, 128), initialised N(0, 0.02) with zero biases (init_weights('normal'))."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        h1, h2 = (128, 32) if num_classes < 32 else (256, 128)
        self.layers = nn.Sequential(
            nn.Linear(in_channels, h1),
            nn.ReLU(),
            nn.BatchNorm1d(h1),
            nn.Linear(h1, h2),
            nn.ReLU(),
            nn.BatchNorm1d(h2),
            nn.Linear(h2, num_classes),
        )
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        """(P, C) pixel features -> (P, num_classes) logits."""
        return self.layers(x)


class SegmentationBranch(nn.Module):
    """The ensemble of pixel classifiers on G's upsampled features (EditGAN Sec. 3.1)."""

    def __init__(
        self,
        in_channels: int,  # sum of G's feature channels (config F at 512: 6016)
        num_classes: int,  # semantic classes of the annotations
        num_models: int = 10,  # ensemble size (official model_num 10)
    ) -> None:
        super().__init__()
        self.in_channels, self.num_classes = in_channels, num_classes
        self.models = nn.ModuleList(
            [PixelClassifier(in_channels, num_classes) for _ in range(num_models)]
        )

    def forward(self, pixels: Tensor) -> Tensor:
        """(P, C) -> mean logits of the ensemble (P, num_classes)."""
        return torch.stack([m(pixels) for m in self.models]).mean(dim=0)

    def segment(self, features: Tensor, chunk: int = 65536) -> Tensor:
        """Upsampled features (N, C, H, W) -> mean logits (N, K, H, W), pixels in chunks."""
        n, c, h, w = features.shape
        assert c == self.in_channels, (c, self.in_channels)
        pixels = features.permute(0, 2, 3, 1).reshape(-1, c)
        logits = torch.cat([self(p) for p in pixels.split(chunk)])
        return logits.reshape(n, h, w, -1).permute(0, 3, 1, 2)


# ----- the encoder (image -> W+) ------------------------------------------------------------
class Bottleneck(nn.Module):
    """ResNet bottleneck: 1x1, 3x3 (stride), 1x1 x4 with BN, plus a projected shortcut."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        out = self.expansion * planes
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, out, 1, stride=stride, bias=False), nn.BatchNorm2d(out)
            )

    def forward(self, x: Tensor) -> Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        return F.relu(self.bn3(self.conv3(y)) + self.shortcut(x))


class ToStyleCode(nn.Module):
    """n stride-2 3x3 convs (LeakyReLU 0.01) down to 1x1, then a linear layer: one w."""

    def __init__(self, n_convs: int, in_channels: int, w_dim: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(n_convs):
            layers += [
                nn.Conv2d(in_channels if i == 0 else w_dim, w_dim, 3, stride=2, padding=1),
                nn.LeakyReLU(),
            ]
        self.convs = nn.Sequential(*layers)
        self.linear = nn.Linear(w_dim, w_dim)
        self.w_dim = w_dim

    def forward(self, x: Tensor) -> Tensor:
        """(N, C, s, s) -> (N, w_dim)."""
        x = self.convs(x)
        assert x.shape[-2:] == (1, 1), tuple(x.shape)
        return self.linear(x.reshape(-1, self.w_dim))


class FPNEncoder(nn.Module):
    """Image (N, 3, R, R) in [-1, 1] -> ws (N, num_ws, w_dim) (encoder.py FPNEncoder)."""

    def __init__(
        self,
        resolution: int,  # input size R (square, a power of 2, >= 32)
        num_ws: int,  # ws of the generator (2 log2 R - 2; official n_latent 16 at 512)
        w_dim: int,  # w size (512)
        base_channels: int = 64,  # planes of the first ResNet stage (ResNet-50: 64)
        num_blocks: Sequence[int] = (3, 4, 6, 3),  # Bottleneck blocks per stage (ResNet-50)
        feature_dim: int = 512,  # FPN channels (official 512)
        img_channels: int = 3,
    ) -> None:
        super().__init__()
        log2 = int(math.log2(resolution))
        assert resolution >= 32 and 2**log2 == resolution, resolution
        self.num_ws = num_ws
        b = base_channels
        self.conv1 = nn.Conv2d(img_channels, b, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(b)
        in_planes = b
        stages = []
        for k, (blocks, stride) in enumerate(zip(num_blocks, (1, 2, 2, 2), strict=True)):
            planes = b * 2**k
            layers = []
            for s in [stride] + [1] * (blocks - 1):
                layers.append(Bottleneck(in_planes, planes, s))
                in_planes = planes * Bottleneck.expansion
            stages.append(nn.Sequential(*layers))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        e = Bottleneck.expansion
        self.toplayer = nn.Conv2d(b * 8 * e, feature_dim, 1)
        self.latlayer1 = nn.Conv2d(b * 4 * e, feature_dim, 1)
        self.latlayer2 = nn.Conv2d(b * 2 * e, feature_dim, 1)
        self.latlayer3 = nn.Conv2d(b * e, feature_dim, 1)
        self.smooth1 = nn.Conv2d(feature_dim, feature_dim, 3, padding=1)
        self.smooth2 = nn.Conv2d(feature_dim, feature_dim, 3, padding=1)
        self.smooth3 = nn.Conv2d(feature_dim, feature_dim, 3, padding=1)
        coarse = min(3, num_ws)
        medium = min(4, num_ws - coarse)
        fine = num_ws - coarse - medium
        # p4 is at R/16, p3 at R/8, p2 at R/4: log2 of that many stride-2 convs reach 1x1
        self.coarse_styles = nn.ModuleList(
            [ToStyleCode(log2 - 4, feature_dim, w_dim) for _ in range(coarse)]
        )
        self.medium_styles = nn.ModuleList(
            [ToStyleCode(log2 - 3, feature_dim, w_dim) for _ in range(medium)]
        )
        self.fine_styles = nn.ModuleList(
            [ToStyleCode(log2 - 2, feature_dim, w_dim) for _ in range(fine)]
        )

    @staticmethod
    def _upsample_add(x: Tensor, y: Tensor) -> Tensor:
        return F.interpolate(x, size=y.shape[-2:], mode="bilinear", align_corners=False) + y

    def forward(self, x: Tensor) -> Tensor:
        """(N, 3, R, R) -> (N, num_ws, w_dim)."""
        c1 = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), kernel_size=3, stride=2, padding=1)
        c2 = self.layer1(c1)  # R/4
        c3 = self.layer2(c2)  # R/8
        c4 = self.layer3(c3)  # R/16
        c5 = self.layer4(c4)  # R/32
        p5 = self.toplayer(c5)
        p4 = self._upsample_add(p5, self.latlayer1(c4))
        p3 = self._upsample_add(p4, self.latlayer2(c3))
        p2 = self._upsample_add(p3, self.latlayer3(c2))
        p4, p3, p2 = self.smooth1(p4), self.smooth2(p3), self.smooth3(p2)
        styles = [head(p4) for head in self.coarse_styles]
        styles += [head(p3) for head in self.medium_styles]
        styles += [head(p2) for head in self.fine_styles]
        return torch.stack(styles, dim=1)


class EditGANNets(nn.Module):
    """What EditGAN trains on top of a frozen StyleGAN2: the encoder and the branch."""

    def __init__(self, encoder: FPNEncoder, branch: SegmentationBranch) -> None:
        super().__init__()
        self.encoder = encoder
        self.branch = branch

    def forward(self, images: Tensor) -> Tensor:
        """Images (N, 3, R, R) -> ws (N, num_ws, w_dim)."""
        return self.encoder(images)
