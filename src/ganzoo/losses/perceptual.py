"""VGG19 perceptual loss of pix2pixHD (Sec. 3.2) and SPADE (Sec. 4).

Official code: NVlabs/SPADE models/networks/architecture.py (VGG19) and loss.py (VGGLoss);
NVIDIA/pix2pixHD models/networks.py (Vgg19, VGGLoss) is the same.

Input normalisation: the official code feeds the images as the generator makes them and the
dataset loads them, in [-1, 1], straight into torchvision's VGG19 - no ImageNet mean / std,
no rescaling to [0, 1] - although those weights were trained on ImageNet-normalised inputs.
ganzoo does exactly the same, so the loss values and gradients match the official ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganzoo.core.errors import WeightsError
from ganzoo.core.weights import ResolvedWeights

# torchvision vgg19 ("E") `features` up to relu5_1: conv channels, "M" = 2x2 max-pool.
_VGG19_LAYOUT: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M")  # block 1, 2
_VGG19_LAYOUT += (256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512)  # 3, 4, conv5_1
# Index ranges of `features` per slice, ending at relu1_1 .. relu5_1 (as SPADE / pix2pixHD).
_SLICES: tuple[range, ...] = (range(0, 2), range(2, 7), range(7, 12), range(12, 21), range(21, 30))
VGG_LAYER_WEIGHTS: tuple[float, ...] = (1.0 / 32, 1.0 / 16, 1.0 / 8, 1.0 / 4, 1.0)


def vgg_slices(layout: Sequence[int | str], slices: Sequence[range]) -> list[nn.Sequential]:
    """torchvision VGG `features` layers of `layout` (conv channels, "M" = 2x2 max-pool; each
    conv followed by its ReLU) cut into `slices`, every layer under its torchvision index, so
    that ``features.<i>.*`` keys map onto ``slice<k>.<i>.*`` (`map_features`)."""
    layers: list[nn.Module] = []
    in_channels = 3
    for item in layout:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            assert isinstance(item, int)
            layers += [nn.Conv2d(in_channels, item, kernel_size=3, padding=1), nn.ReLU()]
            in_channels = item
    blocks = []
    for indices in slices:
        block = nn.Sequential()
        for i in indices:
            block.add_module(str(i), layers[i])
        blocks.append(block)
    return blocks


def map_features(state_dict: Mapping[str, Tensor], slices: Sequence[range]) -> dict[str, Tensor]:
    """torchvision's ``features.<i>.<weight|bias>`` entries -> ``slice<k>.<i>.<...>`` of the
    `vgg_slices` layout (entries past the last slice and other keys are left out)."""
    slice_of = {i: k for k, indices in enumerate(slices, start=1) for i in indices}
    mapped: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        parts = key.split(".")
        if parts[0] == "features" and parts[1].isdigit() and int(parts[1]) in slice_of:
            mapped[f"slice{slice_of[int(parts[1])]}.{parts[1]}.{parts[2]}"] = value
    return mapped


class VGG19Features(nn.Module):
    """Frozen VGG19 returning relu1_1, relu2_1, relu3_1, relu4_1, relu5_1.

    The layers are torchvision's ``vgg19().features[0:30]`` split into five slices as in
    SPADE's ``VGG19`` (0-1, 2-6, 7-11, 12-20, 21-29); built here without torchvision's
    classifier and without any download. A new instance has random weights: fill it from the
    torchvision ImageNet file with `from_state_dict`. Parameters never require grad and the
    module stays in eval mode (VGG19 has no dropout or batch norm in `features`, so the mode
    does not change the result).
    """

    def __init__(self) -> None:
        super().__init__()
        for k, block in enumerate(vgg_slices(_VGG19_LAYOUT, _SLICES), start=1):
            self.add_module(f"slice{k}", block)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGG19Features:
        """Stays in eval mode whatever a parent module asks."""
        return super().train(False)

    @classmethod
    def from_state_dict(cls, state_dict: Mapping[str, Tensor]) -> VGG19Features:
        """Build from a torchvision vgg19 state dict (``features.*``; ``classifier.*`` ignored).

        Raises:
            WeightsError: keys other than features / classifier, or missing / misshapen convs.
        """
        foreign = [k for k in state_dict if not k.startswith(("features.", "classifier."))]
        if foreign:
            raise WeightsError(
                f"VGG19 weights: not a torchvision vgg19 state dict (unexpected keys {foreign[:3]})"
            )
        model = cls()
        mapped = map_features(state_dict, _SLICES)
        missing = sorted(set(model.state_dict()) - set(mapped))
        if missing:
            raise WeightsError(f"VGG19 weights: missing {len(missing)} tensors, e.g. {missing[:3]}")
        try:
            model.load_state_dict(mapped, strict=True)
        except RuntimeError as error:
            raise WeightsError(f"VGG19 weights: {str(error).splitlines()[-1].strip()}") from error
        return model

    def forward(self, x: Tensor) -> list[Tensor]:
        """Features of an image batch x: (N, 3, H, W) in the caller's range ([-1, 1] here).

        Returns:
            [relu1_1 (N, 64, H, W), relu2_1 (N, 128, H/2, W/2), relu3_1 (N, 256, H/4, W/4),
             relu4_1 (N, 512, H/8, W/8), relu5_1 (N, 512, H/16, W/16)].
        """
        outputs: list[Tensor] = []
        h = x
        for block in self.children():  # slice1 .. slice5, in order
            h = block(h)
            outputs.append(h)
        return outputs


class VGGLoss(nn.Module):
    """Weighted L1 between VGG19 features of a generated and a target image (scalar, float32).

    sum_k w_k * mean |VGG_k(x) - VGG_k(y).detach()| over relu1_1 .. relu5_1 with
    w = [1/32, 1/16, 1/8, 1/4, 1] (SPADE models/networks/loss.py:102-115). Images go in
    unnormalised (see the module docstring). The caller multiplies by lambda_vgg (10).
    The target's features carry no gradient (computed under no_grad, as the official
    ``.detach()``); gradients flow to x only, never to the frozen VGG.
    """

    def __init__(
        self,
        vgg: VGG19Features,  # frozen feature extractor, filled from weights.vgg19
        layer_weights: Sequence[float] = VGG_LAYER_WEIGHTS,  # official [1/32, 1/16, 1/8, 1/4, 1]
    ) -> None:
        super().__init__()
        if len(layer_weights) != len(_SLICES):
            raise ValueError(f"VGGLoss: {len(layer_weights)} layer weights for {len(_SLICES)}")
        self.vgg = vgg
        self.layer_weights = tuple(float(w) for w in layer_weights)
        self.weights_provenance: ResolvedWeights | None = None  # the file and hash, if known

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        """x: generated images (N, 3, H, W); y: target images, same shape; both in [-1, 1]."""
        x_features = self.vgg(x)
        with torch.no_grad():
            y_features = self.vgg(y)
        terms = [
            w * F.l1_loss(fx.float(), fy.float())
            for w, fx, fy in zip(self.layer_weights, x_features, y_features, strict=True)
        ]
        return sum(terms[1:], terms[0])
