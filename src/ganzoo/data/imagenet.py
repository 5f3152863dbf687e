"""ImageNet (ILSVRC-2012) as BigGAN-PyTorch reads it: `data=imagenet`.

Layout (the train tar unpacked per synset, and val sorted into synset folders, e.g.
with the widely used valprep.sh; torchvision's ImageFolder layout):

    <root>/train/n01440764/n01440764_10026.JPEG ...
    <root>/val/n01440764/ILSVRC2012_val_00000293.JPEG ...

class_id is the index of the WordNet id among the sorted train synset folders
(BigGAN-PyTorch datasets.py:33-37, `classes.sort()`), for both splits, so a val folder
that has no train folder is an error.

Preprocessing (BigGAN-PyTorch utils.py:560, the non-augmented path that make_hdf5.py
caches and the launch scripts train on, `--dataset I128_hdf5`): CenterCropLongEdge (the
centred square of the short side) then Resize to the output size (torchvision's default,
bilinear); no flips unless `random_flip` (BigGAN's unused `--augment` path adds a
random long-edge crop and a flip, utils.py:548-554; ganzoo offers only the flip).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from ganzoo.core.errors import DataError
from ganzoo.data.files import (
    Arrays,
    FileDataset,
    OnCorrupt,
    ResizeFilter,
    center_crop_aspect,
    list_images,
    read_rgb,
    require_dir,
    require_some,
    resize_image,
    to_array,
)

LAYOUT = "<root>/{train,val}/<wnid>/*.JPEG (val sorted into synset folders)"


class ImageNet(FileDataset):
    """ImageNet images with class ids from the sorted synset folders.

    Sample: image (3, H, W) float in [-1, 1]; class_id () int64 in [0, num_classes).
    """

    name: ClassVar[str] = "imagenet"
    layout: ClassVar[str] = LAYOUT
    provides: ClassVar[tuple[str, ...]] = ("image", "class_id")
    splits: ClassVar[tuple[str, ...]] = ("train", "val")
    train_split: ClassVar[str] = "train"

    def __init__(
        self,
        root: str | Path,  # the folder holding train/ and val/
        split: str,  # "train" or "val"
        height: int,  # output height (BigGAN: 128)
        width: int,  # output width (BigGAN: 128)
        resize_filter: ResizeFilter,  # image filter (BigGAN-PyTorch: bilinear)
        random_flip: bool,  # flips on the training split (BigGAN-PyTorch default: off)
        on_corrupt: OnCorrupt,  # "fail" or "skip"
        cache_dir: str | Path | None,  # prepared caches; None: always decode
        seed: int,  # keys the augmentation draws
    ) -> None:
        super().__init__(
            root, split, height, width, resize_filter, random_flip, on_corrupt, cache_dir, seed
        )

    def scan(self) -> None:
        train = require_dir(self.root / "train", self.name, LAYOUT)
        self.wnids = sorted(p.name for p in train.iterdir() if p.is_dir())
        require_some([train / w for w in self.wnids], train, "synset folders", self.name, LAYOUT)
        folder = require_dir(self.root / self.split, self.name, LAYOUT)
        unknown = sorted({p.name for p in folder.iterdir() if p.is_dir()} - set(self.wnids))
        if unknown:
            raise DataError(
                f"data={self.name}: {folder / unknown[0]} has no train/{unknown[0]} folder; "
                f"expected layout {LAYOUT}"
            )
        self.files: list[Path] = []
        targets: list[int] = []
        for k, wnid in enumerate(self.wnids):
            files = list_images(folder / wnid) if (folder / wnid).is_dir() else []
            self.files += files
            targets += [k] * len(files)
        require_some(self.files, folder, "<wnid>/*.JPEG images", self.name, LAYOUT)
        self.targets = np.array(targets, np.int64)

    @property
    def num_classes(self) -> int:
        return len(self.wnids)

    def __len__(self) -> int:
        return len(self.files)

    def sources(self, index: int) -> tuple[Path, ...]:
        return (self.files[index],)

    def decode(self, index: int) -> Arrays:
        img = center_crop_aspect(read_rgb(self.files[index]), self.width, self.height)
        return {"image": to_array(resize_image(img, self.width, self.height, self.resize_filter))}

    def extra_fields(self, index: int, rng: np.random.Generator) -> dict[str, Tensor]:
        return {"class_id": torch.tensor(int(self.targets[index]))}
