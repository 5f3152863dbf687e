"""RaFD (Radboud Faces Database) by expression, as StarGAN reads it: `data=rafd`.

Layout (StarGAN's data/RaFD, README "RaFD"): the images sorted into one folder per
expression, for a train and a test part:

    <root>/{train,test}/{angry,contemptuous,disgusted,fearful,happy,neutral,sad,surprised}/*.jpg

class_id is the index of the expression folder in sorted order (StarGAN reads RaFD with
torchvision's ImageFolder, data_loader.py:86-87), taken from train/ for both splits;
`attributes` is the same label one-hot (StarGAN's label2onehot, solver.py:142-147).

Preprocessing (data_loader.py:74-80, main.py:62 rafd_crop_size 256): centre crop
`crop_size`, resize to the output size (bilinear), flips on the training split.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from ganzoo.core.errors import DataError
from ganzoo.data.files import (
    Arrays,
    FileDataset,
    OnCorrupt,
    ResizeFilter,
    center_crop_box,
    list_images,
    read_rgb,
    require_dir,
    require_some,
    resize_image,
    to_array,
)

LAYOUT = "<root>/{train,test}/<expression>/*.jpg (8 expression folders, StarGAN's data/RaFD)"


class RaFD(FileDataset):
    """RaFD faces labelled by expression.

    Sample: image (3, H, W) float in [-1, 1]; class_id () int64; attributes (C,) float32
    one-hot of class_id.
    """

    name: ClassVar[str] = "rafd"
    layout: ClassVar[str] = LAYOUT
    provides: ClassVar[tuple[str, ...]] = ("image", "class_id", "attributes")
    splits: ClassVar[tuple[str, ...]] = ("train", "test")
    train_split: ClassVar[str] = "train"

    def __init__(
        self,
        root: str | Path,  # the folder holding train/ and test/
        split: str,  # "train" or "test"
        height: int,  # output height (StarGAN: 128)
        width: int,  # output width (StarGAN: 128)
        crop_size: int,  # centre crop before the resize (StarGAN: 256)
        resize_filter: ResizeFilter,  # image filter (StarGAN: bilinear)
        random_flip: bool,  # flips on the training split (StarGAN: on)
        on_corrupt: OnCorrupt,  # "fail" or "skip"
        cache_dir: str | Path | None,  # prepared caches; None: always decode
        seed: int,  # keys the augmentation draws
    ) -> None:
        self.crop_size = crop_size
        super().__init__(
            root, split, height, width, resize_filter, random_flip, on_corrupt, cache_dir, seed
        )

    def scan(self) -> None:
        train = require_dir(self.root / "train", self.name, LAYOUT)
        self.classes = sorted(p.name for p in train.iterdir() if p.is_dir())
        folders = [train / c for c in self.classes]
        require_some(folders, train, "expression folders", self.name, LAYOUT)
        folder = require_dir(self.root / self.split, self.name, LAYOUT)
        self.files: list[Path] = []
        targets: list[int] = []
        for k, expression in enumerate(self.classes):
            files = list_images(folder / expression) if (folder / expression).is_dir() else []
            self.files += files
            targets += [k] * len(files)
        extra = sorted({p.name for p in folder.iterdir() if p.is_dir()} - set(self.classes))
        if extra:
            raise DataError(
                f"data={self.name}: {folder / extra[0]} is not an expression of train/; "
                f"expected layout {LAYOUT}"
            )
        require_some(self.files, folder, "<expression>/*.jpg images", self.name, LAYOUT)
        self.targets = np.array(targets, np.int64)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def num_attributes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.files)

    def sources(self, index: int) -> tuple[Path, ...]:
        return (self.files[index],)

    def decode(self, index: int) -> Arrays:
        img = read_rgb(self.files[index])
        w, h = img.size
        img = img.crop(center_crop_box(w, h, min(self.crop_size, w), min(self.crop_size, h)))
        return {"image": to_array(resize_image(img, self.width, self.height, self.resize_filter))}

    def extra_fields(self, index: int, rng: np.random.Generator) -> dict[str, Tensor]:
        k = int(self.targets[index])
        onehot = torch.zeros(self.num_classes)
        onehot[k] = 1.0
        return {"class_id": torch.tensor(k), "attributes": onehot}

    def cache_params(self) -> dict[str, Any]:
        return {"crop_size": self.crop_size}
