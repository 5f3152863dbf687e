"""ADE20K scene parsing (ADEChallengeData2016) as SPADE reads it: `data=ade20k`.

Layout (the official zip, http://sceneparsing.csail.mit.edu/):

    ADEChallengeData2016/images/training/ADE_train_00000001.jpg ...
    ADEChallengeData2016/annotations/training/ADE_train_00000001.png ...
    (and validation/ADE_val_*.{jpg,png})

Labels: the annotation PNGs hold 0 = "other" and 1..150 = the 150 classes. SPADE shifts
them so that the classes are 0..149 and "other" is 150, its dontcare id (label_nc 150,
contain_dontcare_label: data/ade20k_dataset.py:48-55, options 22-23); label_map values
are therefore 0..150 and `num_labels` is 151.

Preprocessing ('resize_and_crop', data/ade20k_dataset.py:15-21, base_dataset.py:25-78):
training images are resized to load_size x load_size (286 for crop 256, so `load_ratio`
286/256), bicubic for the photo and nearest for the labels, then randomly cropped to
the output size and flipped; validation images are resized to the output size directly
(test load_size = crop_size = 256).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

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

LAYOUT = (
    "<root>/images/{training,validation}/ADE_*.jpg with "
    "<root>/annotations/{training,validation}/ADE_*.png (ADEChallengeData2016)"
)


class ADE20K(FileDataset):
    """ADE20K image + label_map; labels 0..149 = classes, 150 = "other" (dontcare).

    Sample: image (3, H, W) float in [-1, 1]; label_map (H, W) int64 in [0, 150].
    """

    name: ClassVar[str] = "ade20k"
    layout: ClassVar[str] = LAYOUT
    provides: ClassVar[tuple[str, ...]] = ("image", "label_map")
    splits: ClassVar[tuple[str, ...]] = ("training", "validation")
    train_split: ClassVar[str] = "training"
    label_nc: ClassVar[int] = 150  # classes; "other" becomes label 150
    num_labels: ClassVar[int] = 151  # label values, dontcare included

    def __init__(
        self,
        root: str | Path,  # the ADEChallengeData2016 folder
        split: str,  # "training" or "validation"
        height: int,  # output height (SPADE: 256)
        width: int,  # output width (SPADE: 256)
        load_ratio: float,  # training resize before the random crop (SPADE: 286 / 256)
        resize_filter: ResizeFilter,  # image filter (SPADE: bicubic)
        random_flip: bool,  # flips on the training split (SPADE: on)
        on_corrupt: OnCorrupt,  # "fail" or "skip"
        cache_dir: str | Path | None,  # prepared caches; None: always decode
        seed: int,  # keys the augmentation draws
    ) -> None:
        self.load_ratio = load_ratio
        super().__init__(
            root, split, height, width, resize_filter, random_flip, on_corrupt, cache_dir, seed
        )

    def scan(self) -> None:
        images = require_dir(self.root / "images" / self.split, self.name, LAYOUT)
        labels = require_dir(self.root / "annotations" / self.split, self.name, LAYOUT)
        self.images = [p for p in list_images(images, recursive=False) if p.suffix == ".jpg"]
        require_some(self.images, images, "*.jpg images", self.name, LAYOUT)
        self.labels = pair_by_stem(self.images, labels, ".png", self.name, LAYOUT)

    def __len__(self) -> int:
        return len(self.images)

    def sources(self, index: int) -> tuple[Path, ...]:
        return (self.images[index], self.labels[index])

    def load_size(self) -> tuple[int, int]:
        """(width, height) before the crop: load_ratio x the output on the training split."""
        ratio = self.load_ratio if self.augment else 1.0
        return round(self.width * ratio), round(self.height * ratio)

    def decode(self, index: int) -> Arrays:
        arrays = decode_labelled(
            self.images[index], self.labels[index], *self.load_size(), self.resize_filter
        )
        labels = arrays["label_map"] - 1  # ade20k_dataset.py:50-55: 0 "other" -> 150
        labels[labels == -1] = self.label_nc
        check_label_range(labels, self.num_labels, self.labels[index], self.name)
        arrays["label_map"] = labels
        return arrays

    def cache_params(self) -> dict[str, Any]:
        return {"load_size": list(self.load_size())}
