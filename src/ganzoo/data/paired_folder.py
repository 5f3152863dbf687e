"""Your own label-to-image pairs: `data=paired_folder` (SPADE's `custom` dataset mode).

Layout:

    <root>/images/<stem>.{jpg,png,...}
    <root>/labels/<stem>.png             single-channel label ids (8- or 16-bit)

There are no splits: every split reads the whole folder (point data.root elsewhere for
held-out pairs). Labels are kept as stored; with `contain_dontcare_label` the value 255
becomes `label_nc`, as SPADE's Pix2pixDataset (data/pix2pix_dataset.py:64) does for
every dataset. A value outside the promised range is a one-line error naming the file.

Preprocessing: resize to the output size (image with `resize_filter`, labels nearest;
SPADE's 'fixed' mode) and flips on the training split.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from ganzoo.data.files import (
    Arrays,
    FileDataset,
    OnCorrupt,
    ResizeFilter,
    check_label_range,
    decode_labelled,
    list_images,
    pair_by_stem,
    require_dir,
    require_some,
)

LAYOUT = "<root>/images/<stem>.{jpg,png,...} with <root>/labels/<stem>.png"


class PairedFolder(FileDataset):
    """Images with label maps matched by file stem.

    Sample: image (3, H, W) float in [-1, 1]; label_map (H, W) int64 in [0, num_labels).
    """

    name: ClassVar[str] = "paired_folder"
    layout: ClassVar[str] = LAYOUT
    provides: ClassVar[tuple[str, ...]] = ("image", "label_map")
    splits: ClassVar[tuple[str, ...]] = ("train", "val", "test")
    train_split: ClassVar[str] = "train"
    pixel_dtypes: ClassVar[dict[str, str]] = {"image": "uint8", "label_map": "int32"}

    def __init__(
        self,
        root: str | Path,  # the folder holding images/ and labels/
        split: str,  # any of "train", "val", "test": all read the whole folder
        height: int,  # output height
        width: int,  # output width
        label_nc: int,  # label classes (ids 0 .. label_nc - 1)
        contain_dontcare_label: bool,  # 255 means "unknown" and becomes label_nc
        resize_filter: ResizeFilter,  # image filter (SPADE: bicubic)
        random_flip: bool,  # flips on the training split (SPADE: on)
        on_corrupt: OnCorrupt,  # "fail" or "skip"
        cache_dir: str | Path | None,  # prepared caches; None: always decode
        seed: int,  # keys the augmentation draws
    ) -> None:
        self.label_nc = label_nc
        self.contain_dontcare_label = contain_dontcare_label
        super().__init__(
            root, split, height, width, resize_filter, random_flip, on_corrupt, cache_dir, seed
        )

    @property
    def num_labels(self) -> int:
        return self.label_nc + int(self.contain_dontcare_label)

    def scan(self) -> None:
        image_dir = require_dir(self.root / "images", self.name, LAYOUT)
        label_dir = require_dir(self.root / "labels", self.name, LAYOUT)
        self.images = list_images(image_dir, recursive=False)
        require_some(self.images, image_dir, "images", self.name, LAYOUT)
        self.labels = pair_by_stem(self.images, label_dir, ".png", self.name, LAYOUT)

    def __len__(self) -> int:
        return len(self.images)

    def sources(self, index: int) -> tuple[Path, ...]:
        return (self.images[index], self.labels[index])

    def decode(self, index: int) -> Arrays:
        arrays = decode_labelled(
            self.images[index], self.labels[index], self.width, self.height, self.resize_filter
        )
        if self.contain_dontcare_label:
            arrays["label_map"][arrays["label_map"] == 255] = self.label_nc
        check_label_range(arrays["label_map"], self.num_labels, self.labels[index], self.name)
        return arrays
