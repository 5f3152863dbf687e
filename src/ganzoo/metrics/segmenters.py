"""The real datasets' segmenters for mIoU: the networks the SPADE paper used, from local files.

SPADE (Park et al. 2019, Sec. 4, "Performance metrics") segments generated images with
DRN-D-105 on Cityscapes (fyu/drn), UperNet-101 on ADE20K (CSAILVision/semantic-segmentation-
pytorch) and DeepLab-v2 on COCO-Stuff (kazuto1011/deeplab-pytorch), and compares the
prediction with the input label map. Each adapter loads the authors' published weight file(s)
from ``weights.<key>`` (default: the published name in ``paths.weights_dir``), never downloads,
and records each file's SHA-256 with the numbers. The authors publish no checksums for these
files, so the hashes are recorded, not checked (``weights_published: false``).

| data       | weights.<key>          | file(s) (default location in paths.weights_dir)           |
| ---------- | ---------------------- | --------------------------------------------------------- |
| cityscapes | drn_d_105_cityscapes   | drn-d-105_ms_cityscapes.pth                               |
| ade20k     | upernet101_ade20k      | ade20k-resnet101-upernet/{encoder,decoder}_epoch_50.pth   |
|            |                        | (the key names the folder holding both files)             |
| cocostuff  | deeplabv2_cocostuff    | deeplabv2_resnet101_msc-cocostuff164k-100000.pth          |

Test-time pipelines, as each network's own evaluation code (images are first quantised to
uint8 as a PNG of them would be):
- DRN-D-105 (segment.py test): /255, Cityscapes mean / std (datasets/cityscapes/info.json),
  one scale; Cityscapes label ids are mapped to the 19 train ids, other ids ignored.
- UperNet-101 (eval.py + dataset.py TestDataset): for each short side in 300, 375, 450, 525,
  600 (long side at most 1000, both rounded up to multiples of 32) a bilinear resize, /255,
  ImageNet mean / std; softmax of the logits upsampled to the image, averaged over the scales.
  ganzoo's label 150 ("other") is ignored, 0..149 are the classes.
- DeepLab-v2 MSC (main.py test): RGB -> BGR minus the mean (104.008, 116.669, 122.675), no
  scaling; max over the 1, 0.75, 0.5 input scales (the MSC wrapper), logits upsampled
  bilinearly to the image. ganzoo's label 182 (unlabeled) is ignored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganzoo.core.errors import ConfigError, WeightsError
from ganzoo.core.weights import sha256_of
from ganzoo.metrics.segmenter_nets import (
    DeepLabV2,
    DRNSegD105,
    ResNet101Encoder,
    UPerNetDecoder,
)


@dataclass(frozen=True)
class SegmenterFile:
    """A published segmentation network for one dataset."""

    key: str  # config key weights.<key>
    data: str  # data.name it scores
    network: str  # what it is, as the SPADE paper names it
    filenames: tuple[str, ...]  # the published files, relative to paths.weights_dir
    url: str  # where a person can download them (documentation only)
    code: str  # the official code the architecture follows


SEGMENTERS: dict[str, SegmenterFile] = {
    "cityscapes": SegmenterFile(
        key="drn_d_105_cityscapes",
        data="cityscapes",
        network="DRN-D-105 (Cityscapes, 19 train classes)",
        filenames=("drn-d-105_ms_cityscapes.pth",),
        url="http://go.yf.io/drn-cityscapes-models (fyu/drn README, 'DRN-D-105' segmentation)",
        code="fyu/drn drn.py drn_d_105 + segment.py DRNSeg",
    ),
    "ade20k": SegmenterFile(
        key="upernet101_ade20k",
        data="ade20k",
        network="UperNet-101 (ResNet-101 + UPerNet, ADE20K 150 classes)",
        filenames=(
            "ade20k-resnet101-upernet/encoder_epoch_50.pth",
            "ade20k-resnet101-upernet/decoder_epoch_50.pth",
        ),
        url="http://sceneparsing.csail.mit.edu/model/pytorch/ade20k-resnet101-upernet/",
        code="CSAILVision/semantic-segmentation-pytorch (resnet101 encoder, upernet decoder)",
    ),
    "cocostuff": SegmenterFile(
        key="deeplabv2_cocostuff",
        data="cocostuff",
        network="DeepLab-v2 ResNet-101 MSC (COCO-Stuff 164k, 182 classes)",
        filenames=("deeplabv2_resnet101_msc-cocostuff164k-100000.pth",),
        url=(
            "https://github.com/kazuto1011/deeplab-pytorch/releases/download/v1.0/"
            "deeplabv2_resnet101_msc-cocostuff164k-100000.pth"
        ),
        code="kazuto1011/deeplab-pytorch libs/models deeplabv2.py + msc.py",
    ),
}

IGNORE = 255
# Cityscapes label id -> train id (cityscapesScripts helpers/labels.py); other ids are ignored
CITYSCAPES_TRAIN_IDS: dict[int, int] = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9,
    23: 10, 24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
}  # fmt: skip
# mean / std of the Cityscapes training images in [0, 1] (fyu/drn datasets/cityscapes/info.json)
CITYSCAPES_MEAN = (0.29010095242892997, 0.32808144844279574, 0.28696394422942517)
CITYSCAPES_STD = (0.1829540508368939, 0.18656561047509476, 0.18447508988480435)
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # CSAIL dataset.py normalisation
IMAGENET_STD = (0.229, 0.224, 0.225)
DEEPLAB_MEAN_BGR = (104.008, 116.669, 122.675)  # deeplab-pytorch configs/cocostuff164k.yaml
# buffers of CSAIL's SynchronizedBatchNorm2d that its state dicts carry and plain BN lacks
_SYNC_BN_EXTRAS = ("_tmp_running_mean", "_tmp_running_var", "_running_iter")


def build(data_name: str, weights: Mapping[str, Any], weights_dir: str | Path) -> Segmenter:
    """The segmenter of `data_name` from its weight file(s); one-line errors otherwise."""
    if data_name not in SEGMENTERS:
        raise ConfigError(
            f"metrics=miou: no segmenter for data={data_name}; segmenters exist for "
            f"synthetic (trained by ganzoo), {', '.join(SEGMENTERS)}"
        )
    entry = SEGMENTERS[data_name]
    if entry.key not in weights:
        raise ConfigError(
            f"metrics=miou on data={data_name} needs the config key weights.{entry.key}"
        )
    paths = _resolve(entry, weights[entry.key], weights_dir)
    if data_name == "cityscapes":
        return DRNSegmenter(_load(DRNSegD105(), paths[0]), entry, paths)
    if data_name == "ade20k":
        net = UperNet(_load(ResNet101Encoder(), paths[0]), _load(UPerNetDecoder(), paths[1]))
        return UperNetSegmenter(net, entry, paths)
    return DeepLabSegmenter(_load(DeepLabV2(), paths[0]), entry, paths)


def _resolve(entry: SegmenterFile, given: str | None, weights_dir: str | Path) -> list[Path]:
    """The files to load: under the given path (a file, or for two files their folder), else
    the published names in weights_dir."""
    root = Path(weights_dir).expanduser()
    if given is None:
        paths = [root / name for name in entry.filenames]
    elif len(entry.filenames) == 1:
        paths = [Path(given).expanduser()]
    else:
        paths = [Path(given).expanduser() / Path(name).name for name in entry.filenames]
    for path, name in zip(paths, entry.filenames, strict=True):
        if not path.is_file():
            where = f"given as weights.{entry.key}={given}" if given else f"not found in {root}"
            raise WeightsError(
                f"weights.{entry.key}: file {path} {where}; download {Path(name).name} from "
                f"{entry.url} and put it at {root / name} (or pass weights.{entry.key}=PATH); "
                "no checksum is published for it (its sha256 is recorded with the numbers)"
            )
    return paths


def _load(net: nn.Module, path: Path) -> nn.Module:
    """The file's state dict loaded into net: 'module.' prefixes (DataParallel) and SyncBN's
    extra buffers dropped, num_batches_tracked (absent from files of PyTorch < 0.4.1) optional;
    any other difference is a one-line WeightsError."""
    state: Any = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, Mapping) and "state_dict" in state:
        state = state["state_dict"]
    state = {
        k.removeprefix("module."): v
        for k, v in dict(state).items()
        if not k.endswith(_SYNC_BN_EXTRAS)
    }
    result = net.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    if missing or result.unexpected_keys:
        what = f"missing {missing[0]}" if missing else f"unexpected {result.unexpected_keys[0]}"
        raise WeightsError(f"{path} is not a {type(net).__name__} state dict ({what})")
    return net.eval().requires_grad_(False)


def _pixels(images: Tensor) -> Tensor:
    """(N, 3, H, W) in [-1, 1] -> float values 0..255 as a PNG of them would hold."""
    return ((images.float().clamp(-1, 1) + 1) * 127.5).round()


class Segmenter(nn.Module):
    """A pretrained segmenter with its label mapping: what metrics=miou needs."""

    num_labels: int  # the segmenter's classes
    lookup: Tensor  # data label value -> segmenter class (IGNORE: not scored)

    def __init__(
        self, net: nn.Module, entry: SegmenterFile, paths: Sequence[Path], lookup: Tensor
    ) -> None:
        super().__init__()
        self.net = net.eval().requires_grad_(False)
        self.entry = entry
        self.paths = list(paths)
        self.register_buffer("lookup", lookup)

    def train(self, mode: bool = True) -> Segmenter:
        return super().train(False)

    def provenance(self) -> dict[str, Any]:
        return {
            "segmenter": self.entry.network,
            "code": self.entry.code,
            "weights": [str(p) for p in self.paths],
            "weights_sha256": [sha256_of(p) for p in self.paths],
            "weights_published": False,  # the authors publish no checksum
        }

    def targets(self, label_map: Tensor) -> Tensor:
        """ganzoo's label map (N, H, W) -> the segmenter's classes, IGNORE where not scored."""
        return self.lookup[label_map.clamp(0, len(self.lookup) - 1)]

    @torch.no_grad()
    def segment(self, images: Tensor) -> Tensor:
        """(N, 3, H, W) in [-1, 1] -> predicted classes (N, H, W)."""
        return self.scores(_pixels(images)).argmax(dim=1)

    def scores(self, pixels: Tensor) -> Tensor:
        """(N, 3, H, W) values 0..255 -> class scores (N, C, H, W)."""
        raise NotImplementedError


def _shifted_lookup(num_labels: int) -> Tensor:
    """Labels 0 .. num_labels - 1 kept, ganzoo's dontcare label num_labels ignored."""
    lookup = torch.full((num_labels + 1,), IGNORE, dtype=torch.long)
    lookup[:num_labels] = torch.arange(num_labels)
    return lookup


class DRNSegmenter(Segmenter):
    """Cityscapes: DRN-D-105; label maps are Cityscapes label ids."""

    num_labels = 19
    mean: Tensor
    std: Tensor

    def __init__(self, net: nn.Module, entry: SegmenterFile, paths: Sequence[Path]) -> None:
        lookup = torch.full((256,), IGNORE, dtype=torch.long)
        for label_id, train_id in CITYSCAPES_TRAIN_IDS.items():
            lookup[label_id] = train_id
        super().__init__(net, entry, paths, lookup)
        self.register_buffer("mean", torch.tensor(CITYSCAPES_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(CITYSCAPES_STD).view(1, 3, 1, 1))

    def scores(self, pixels: Tensor) -> Tensor:
        scores = self.net((pixels / 255 - self.mean) / self.std)
        if scores.shape[-2:] != pixels.shape[-2:]:
            scores = F.interpolate(scores, size=pixels.shape[-2:], mode="bilinear")
        return scores


class UperNet(nn.Module):
    """Encoder + decoder as the two published files hold them."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module) -> None:
        super().__init__()
        self.encoder, self.decoder = encoder, decoder

    def forward(self, x: Tensor) -> Tensor:
        return self.decoder(self.encoder(x))


class UperNetSegmenter(Segmenter):
    """ADE20K: UperNet-101, multi-scale test as CSAIL's eval.py."""

    num_labels = 150
    mean: Tensor
    std: Tensor

    def __init__(
        self,
        net: nn.Module,
        entry: SegmenterFile,
        paths: Sequence[Path],
        short_sides: Sequence[int] = (300, 375, 450, 525, 600),  # DATASET.imgSizes
        max_side: int = 1000,  # DATASET.imgMaxSize
        multiple: int = 32,  # DATASET.padding_constant
    ) -> None:
        super().__init__(net, entry, paths, _shifted_lookup(self.num_labels))
        self.short_sides, self.max_side, self.multiple = tuple(short_sides), max_side, multiple
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def scores(self, pixels: Tensor) -> Tensor:
        h, w = pixels.shape[-2:]
        total = torch.zeros(pixels.shape[0], self.num_labels, h, w, device=pixels.device)
        for side in self.short_sides:
            scale = min(side / min(h, w), self.max_side / max(h, w))
            size = [-(-int(n * scale) // self.multiple) * self.multiple for n in (h, w)]
            x = F.interpolate(
                pixels, size=size, mode="bilinear", align_corners=False, antialias=True
            )
            logits = self.net((x / 255 - self.mean) / self.std)  # (N, 150, size / 4)
            up = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
            total += up.softmax(dim=1) / len(self.short_sides)
        return total


class DeepLabSegmenter(Segmenter):
    """COCO-Stuff: DeepLab-v2 MSC as deeplab-pytorch's main.py test."""

    num_labels = 182
    mean_bgr: Tensor

    def __init__(self, net: nn.Module, entry: SegmenterFile, paths: Sequence[Path]) -> None:
        super().__init__(net, entry, paths, _shifted_lookup(self.num_labels))
        self.register_buffer("mean_bgr", torch.tensor(DEEPLAB_MEAN_BGR).view(1, 3, 1, 1))

    def scores(self, pixels: Tensor) -> Tensor:
        logits = self.net(pixels.flip(1) - self.mean_bgr)  # RGB -> BGR
        return F.interpolate(logits, size=pixels.shape[-2:], mode="bilinear", align_corners=False)
