"""LPIPS, the learned perceptual image patch similarity (Zhang et al., CVPR 2018), 'net-lin' with
the VGG16 backbone, version 0.1: the distance EditGAN's encoder, embedding and editing use
(richzhang/PerceptualSimilarity, as bundled in nv-tlabs/editGAN_release lpips/: PerceptualLoss(
model='net-lin', net='vgg', normalize=True)).

d(x, y) = sum_l mean_hw || w_l * (f_l(x) / |f_l(x)| - f_l(y) / |f_l(y)|) ||^2, f_l the VGG16
activations relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 of the inputs shifted and scaled by
ScalingLayer (networks_basic.py), the norm over channels (+1e-10), w_l the learned
non-negative 1x1 'lin' layers. Inputs are in [-1, 1] (EditGAN's normalize=True maps its [0, 1]
images to [-1, 1] first: the same thing).

Two published files, each through `weights.`: weights.vgg16 (torchvision's ImageNet VGG16) and
weights.lpips_vgg (the v0.1 lin layers). `random_lpips` builds an untrained stand-in (random
VGG16, all lin weights 1/C): it is NOT LPIPS; it exists so that tests and the offline
synthetic demo run without any download, and says so in its name.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from ganzoo.core.errors import WeightsError
from ganzoo.losses.perceptual import map_features, vgg_slices

# torchvision vgg16 ("D") `features` up to relu5_3; LPIPS's slices end at relu1_2 .. relu5_3.
_VGG16_LAYOUT: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M")
_VGG16_LAYOUT += (512, 512, 512, "M", 512, 512, 512)
_SLICES: tuple[range, ...] = (range(0, 4), range(4, 9), range(9, 16), range(16, 23), range(23, 30))
CHANNELS: tuple[int, ...] = (64, 128, 256, 512, 512)
SHIFT = (-0.030, -0.088, -0.188)  # ScalingLayer (networks_basic.py)
SCALE = (0.458, 0.448, 0.450)


class LPIPS(nn.Module):
    """Frozen LPIPS distance (N, 3, H, W) x 2 -> (N,); gradients flow to both inputs."""

    shift: Tensor
    scale: Tensor

    def __init__(self) -> None:
        super().__init__()
        for k, block in enumerate(vgg_slices(_VGG16_LAYOUT, _SLICES), start=1):
            self.add_module(f"slice{k}", block)
        for k, c in enumerate(CHANNELS):  # NetLinLayer: model = Dropout (inert in eval), 1x1 conv
            lin = nn.Module()
            lin.model = nn.Sequential(nn.Dropout(), nn.Conv2d(c, 1, 1, bias=False))
            self.add_module(f"lin{k}", lin)
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()
        self.weights_provenance: dict[str, object] = {}  # the files and hashes, when known

    def train(self, mode: bool = True) -> LPIPS:
        """Stays in eval mode whatever a parent module asks."""
        return super().train(False)

    def features(self, x: Tensor) -> list[Tensor]:
        """Unit-normalised VGG16 activations of x (N, 3, H, W) in [-1, 1], one per slice."""
        h = (x.float() - self.shift) / self.scale
        out = []
        for k in range(1, len(_SLICES) + 1):
            h = getattr(self, f"slice{k}")(h)
            out.append(h / (h.square().sum(dim=1, keepdim=True).sqrt() + 1e-10))
        return out

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        """Distances (N,) between x and y, both (N, 3, H, W) in [-1, 1]."""
        return self.distance(self.features(x), self.features(y))

    def distance(self, fx: list[Tensor], fy: list[Tensor]) -> Tensor:
        """Distances (N,) between two lists of `features` (a fixed target's computed once)."""
        total = fx[0].new_zeros(fx[0].shape[0])
        for k, (a, b) in enumerate(zip(fx, fy, strict=True)):
            total = total + getattr(self, f"lin{k}").model((a - b).square()).mean(dim=(1, 2, 3))
        return total

    @classmethod
    def from_state_dicts(
        cls, vgg16: Mapping[str, Tensor], lin: Mapping[str, Tensor]
    ) -> LPIPS:
        """From torchvision's vgg16 state dict (``features.*``; ``classifier.*`` ignored) and the
        LPIPS v0.1 vgg file (``lin0.model.1.weight`` .. ``lin4.model.1.weight``).

        Raises:
            WeightsError: a file is not what it should be (keys or shapes)."""
        model = cls()
        foreign = [k for k in vgg16 if not k.startswith(("features.", "classifier."))]
        if foreign:
            raise WeightsError(f"LPIPS: weights.vgg16 is not a torchvision vgg16 ({foreign[0]})")
        mapped = map_features(vgg16, _SLICES)
        for key, value in lin.items():
            if not (key.startswith("lin") and key.endswith(".model.1.weight")):
                raise WeightsError(f"LPIPS: weights.lpips_vgg is not an LPIPS lin file ({key})")
            mapped[key] = value
        missing = sorted(set(model.state_dict()) - set(mapped))
        if missing:
            raise WeightsError(f"LPIPS weights: missing {len(missing)} tensors, e.g. {missing[:3]}")
        try:
            model.load_state_dict(mapped, strict=True)
        except RuntimeError as error:
            raise WeightsError(f"LPIPS weights: {str(error).splitlines()[-1].strip()}") from error
        return model


def random_lpips(seed: int = 0) -> LPIPS:
    """NOT LPIPS: a random-init VGG16 (torchvision's init) with all lin weights 1/C, a stand-in
    so that tests and the offline synthetic demo run without the published files."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LPIPS()
        for k, c in enumerate(CHANNELS):
            getattr(model, f"lin{k}").model[1].weight.fill_(1.0 / c)
        for m in model.modules():
            if isinstance(m, nn.Conv2d) and m.bias is not None:  # torchvision's vgg init
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
    model.weights_provenance = {"lpips": "random_lpips (untrained stand-in, not LPIPS)"}
    return model
