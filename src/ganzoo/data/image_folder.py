"""Any folder tree of images: `data=image_folder` (unconditional), optionally with classes.

Layout: `<root>/**/*.{jpg,jpeg,png,bmp,ppm,webp,tif}`, read recursively in natural order
(StyleGAN2-ADA's ImageFolderDataset sorts its file names the same way up to digit runs).
There are no splits: every split reads the whole folder, as StyleGAN2-ADA trains and
computes FID on the same images. `LabelledImageFolder` reads `<root>/<class>/**/*` and
gives `class_id` = index of the class folder in sorted order (torchvision ImageFolder).

Preprocessing: the largest centred crop with the output's aspect ratio, resized with
`resize_filter` (StyleGAN2-ADA dataset_tool: lanczos). `mirror` doubles the dataset with
horizontally flipped copies, sample i + N being sample i flipped (StyleGAN2-ADA
`--mirror=1`, training/dataset.py:45-49), so flips are deterministic and exactly half
of every pass.
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
    require_some,
    resize_image,
    to_array,
)

LAYOUT = "<root>/**/*.{jpg,png,...}: any folder tree of images"
CLASS_LAYOUT = "<root>/<class>/**/*.{jpg,png,...}: one folder per class"


class ImageFolder(FileDataset):
    """Images of a folder tree, centre-cropped to the output aspect and resized.

    Sample: image (3, H, W) float in [-1, 1].
    """

    name: ClassVar[str] = "image_folder"
    layout: ClassVar[str] = LAYOUT
    provides: ClassVar[tuple[str, ...]] = ("image",)
    splits: ClassVar[tuple[str, ...]] = ("train", "val", "test")
    train_split: ClassVar[str] = "train"

    def __init__(
        self,
        root: str | Path,  # the folder (searched recursively)
        split: str,  # any of "train", "val", "test": all read the whole folder
        height: int,  # output height
        width: int,  # output width
        mirror: bool,  # append flipped copies (StyleGAN2-ADA --mirror=1)
        resize_filter: ResizeFilter,  # image filter (StyleGAN2-ADA dataset_tool: lanczos)
        on_corrupt: OnCorrupt,  # "fail" or "skip"
        cache_dir: str | Path | None,  # prepared caches; None: always decode
        seed: int,  # keys the per-sample generators
    ) -> None:
        self.mirror = mirror
        super().__init__(  # no random flips: mirroring is deterministic
            root, split, height, width, resize_filter, False, on_corrupt, cache_dir, seed
        )

    def scan(self) -> None:
        self.files = list_images(self.root)
        require_some(self.files, self.root, "images", self.name, self.layout)

    def __len__(self) -> int:
        return len(self.files) * (2 if self.mirror else 1)

    @property
    def stored(self) -> int:
        return len(self.files)

    def sources(self, index: int) -> tuple[Path, ...]:
        return (self.files[index],)

    def decode(self, index: int) -> Arrays:
        img = center_crop_aspect(read_rgb(self.files[index]), self.width, self.height)
        return {"image": to_array(resize_image(img, self.width, self.height, self.resize_filter))}

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        sample = super().__getitem__(index % self.stored)
        if index >= self.stored:
            sample["image"] = sample["image"].flip(-1)
        return sample


class LabelledImageFolder(ImageFolder):
    """ImageFolder whose first-level folders are classes.

    Sample: image (3, H, W) float in [-1, 1]; class_id () int64, the index of the image's
    class folder among the sorted class folders.
    """

    name: ClassVar[str] = "image_folder"
    layout: ClassVar[str] = CLASS_LAYOUT
    provides: ClassVar[tuple[str, ...]] = ("image", "class_id")

    def scan(self) -> None:
        super().scan()
        outside = next((p for p in self.files if p.parent == self.root), None)
        if outside is not None:
            raise DataError(
                f"data={self.name}: {outside} is not inside a class folder; "
                f"expected layout {self.layout}"
            )
        self.classes = sorted({p.relative_to(self.root).parts[0] for p in self.files})
        lookup = {c: i for i, c in enumerate(self.classes)}
        self.targets = np.array([lookup[p.relative_to(self.root).parts[0]] for p in self.files])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def extra_fields(self, index: int, rng: np.random.Generator) -> dict[str, Tensor]:
        return {"class_id": torch.tensor(int(self.targets[index]))}
