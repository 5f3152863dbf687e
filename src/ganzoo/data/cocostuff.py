"""COCO-Stuff 164k as SPADE reads it: `data=cocostuff`.

Layout (cocostuff's getCocoStuff.sh: train2017.zip, val2017.zip and
stuffthingmaps_trainval2017.zip):

    <root>/images/{train2017,val2017}/000000000139.jpg ...
    <root>/stuffthingmaps_trainval2017/{train2017,val2017}/000000000139.png ...
    <root>/instance_maps/{train2017,val2017}/000000000139.png   (with instances: true)

Labels: the stuffthingmaps hold 0..181 (things 0..90, stuff 91..181) and 255 for
unlabeled pixels; as SPADE (data/pix2pix_dataset.py:64, coco_dataset.py:24-25: label_nc
182, contain_dontcare_label) 255 becomes 182, the dontcare id, so label_map values are
0..182 and `num_labels` is 183.

Instances are not part of the COCO-Stuff release: SPADE builds them from the COCO
instance annotations with datasets/coco_generate_instance_map.py (each thing polygon
painted with its running index over the stuff label map, 8-bit PNGs). With `instances`
the adapter requires those files in instance_maps/<split>/ and keeps their values.

Preprocessing as ADE20K ('resize_and_crop', coco_dataset.py:17-22): training images are
resized to 286 x 286 for crop 256 (`load_ratio`), bicubic / nearest, randomly cropped and
flipped; val2017 is resized to the output size.
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
    read_label,
    require_dir,
    require_some,
    resize_label,
)

LAYOUT = (
    "<root>/images/{train2017,val2017}/*.jpg with "
    "<root>/stuffthingmaps_trainval2017/{train2017,val2017}/*.png "
    "[+ <root>/instance_maps/{train2017,val2017}/*.png from SPADE's coco_generate_instance_map.py]"
)


class CocoStuff(FileDataset):
    """COCO-Stuff image + label_map (0..181, 182 = unlabeled) [+ instance_map].

    Sample: image (3, H, W) float in [-1, 1]; label_map (H, W) int64 in [0, 182];
    instance_map (H, W) int64 when `instances` (`provides` lists it; the datamodule
    asks for it only with data.instance_maps).
    """

    name: ClassVar[str] = "cocostuff"
    layout: ClassVar[str] = LAYOUT
    provides: ClassVar[tuple[str, ...]] = ("image", "label_map", "instance_map")
    splits: ClassVar[tuple[str, ...]] = ("train2017", "val2017")
    train_split: ClassVar[str] = "train2017"
    label_nc: ClassVar[int] = 182  # classes; unlabeled (255) becomes 182
    num_labels: ClassVar[int] = 183  # label values, dontcare included

    def __init__(
        self,
        root: str | Path,  # the folder holding images/ and stuffthingmaps_trainval2017/
        split: str,  # "train2017" or "val2017"
        height: int,  # output height (SPADE: 256)
        width: int,  # output width (SPADE: 256)
        instances: bool,  # read instance_maps/ (SPADE: yes, unless --no_instance)
        load_ratio: float,  # training resize before the random crop (SPADE: 286 / 256)
        resize_filter: ResizeFilter,  # image filter (SPADE: bicubic)
        random_flip: bool,  # flips on the training split (SPADE: on)
        on_corrupt: OnCorrupt,  # "fail" or "skip"
        cache_dir: str | Path | None,  # prepared caches; None: always decode
        seed: int,  # keys the augmentation draws
    ) -> None:
        self.instances = instances
        self.load_ratio = load_ratio
        super().__init__(
            root, split, height, width, resize_filter, random_flip, on_corrupt, cache_dir, seed
        )

    def scan(self) -> None:
        image_dir = require_dir(self.root / "images" / self.split, self.name, LAYOUT)
        label_dir = self.root / "stuffthingmaps_trainval2017" / self.split
        require_dir(label_dir, self.name, LAYOUT)
        self.images = [p for p in list_images(image_dir, recursive=False) if p.suffix == ".jpg"]
        require_some(self.images, image_dir, "*.jpg images", self.name, LAYOUT)
        self.labels = pair_by_stem(self.images, label_dir, ".png", self.name, LAYOUT)
        self.instance_files: list[Path] = []
        if self.instances:
            inst_dir = require_dir(self.root / "instance_maps" / self.split, self.name, LAYOUT)
            self.instance_files = pair_by_stem(self.images, inst_dir, ".png", self.name, LAYOUT)

    def __len__(self) -> int:
        return len(self.images)

    def sources(self, index: int) -> tuple[Path, ...]:
        extra = (self.instance_files[index],) if self.instances else ()
        return (self.images[index], self.labels[index], *extra)

    def load_size(self) -> tuple[int, int]:
        """(width, height) before the crop: load_ratio x the output on the training split."""
        ratio = self.load_ratio if self.augment else 1.0
        return round(self.width * ratio), round(self.height * ratio)

    def decode(self, index: int) -> Arrays:
        w, h = self.load_size()
        arrays = decode_labelled(self.images[index], self.labels[index], w, h, self.resize_filter)
        labels = arrays["label_map"]
        labels[labels == 255] = self.label_nc  # pix2pix_dataset.py:64
        check_label_range(labels, self.num_labels, self.labels[index], self.name)
        if self.instances:
            arrays["instance_map"] = resize_label(read_label(self.instance_files[index]), w, h)
        return arrays

    def cache_params(self) -> dict[str, Any]:
        return {"load_size": list(self.load_size()), "instances": self.instances}
