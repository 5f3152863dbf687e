"""Cityscapes (leftImg8bit + gtFine) as SPADE and pix2pixHD read it: `data=cityscapes`.

Layout (the official leftImg8bit_trainvaltest.zip and gtFine_trainvaltest.zip):

    <root>/leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    <root>/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png
    <root>/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_instanceIds.png

Labels: the 8-bit `labelIds` (ids 0..33 of cityscapesScripts' labels.py; label_nc 35
as in SPADE data/cityscapes_dataset.py:20 and pix2pixHD); values are kept as stored.
Instances: the 16-bit `instanceIds`, kept as stored: pixels of a "thing" class with an
instance hold label_id * 1000 + instance number, every other pixel its label id
(cityscapesScripts' json2instanceImg). pix2pixHD and SPADE use it for instance
boundaries (and pix2pixHD's encoder pools features per instance id).

Preprocessing (SPADE 'fixed', data/cityscapes_dataset.py:16-21; pix2pixHD scale_width
to 1024 for 1024x512): every split is resized to the output size (2:1 kept by the
config's aspect_ratio 2), image bicubic, maps nearest; training samples are flipped.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from PIL import Image

from ganzoo.core.console import note
from ganzoo.core.errors import DataError
from ganzoo.data.files import (
    Arrays,
    FileDataset,
    OnCorrupt,
    ResizeFilter,
    check_label_range,
    decode_labelled,
    read_label,
    require_dir,
    require_some,
    resize_label,
)

LAYOUT = (
    "<root>/leftImg8bit/<split>/<city>/*_leftImg8bit.png with "
    "<root>/gtFine/<split>/<city>/*_gtFine_labelIds.png and *_gtFine_instanceIds.png"
)


class Cityscapes(FileDataset):
    """Cityscapes image + label_map (ids 0..34) + instance_map (label*1000 + instance).

    Sample: image (3, H, W) float in [-1, 1]; label_map and instance_map (H, W) int64.
    """

    name: ClassVar[str] = "cityscapes"
    layout: ClassVar[str] = LAYOUT
    provides: ClassVar[tuple[str, ...]] = ("image", "label_map", "instance_map")
    splits: ClassVar[tuple[str, ...]] = ("train", "val", "test")
    train_split: ClassVar[str] = "train"
    num_labels: ClassVar[int] = 35  # label_nc of SPADE and pix2pixHD (no dontcare)

    def __init__(
        self,
        root: str | Path,  # the folder holding leftImg8bit/ and gtFine/
        split: str,  # "train", "val" or "test"
        height: int,  # output height (SPADE 256, pix2pixHD 512 / 1024)
        width: int,  # output width (SPADE 512, pix2pixHD 1024 / 2048)
        resize_filter: ResizeFilter,  # image filter (SPADE and pix2pixHD: bicubic)
        random_flip: bool,  # flips on the training split (both: on)
        on_corrupt: OnCorrupt,  # "fail" or "skip"
        cache_dir: str | Path | None,  # prepared caches; None: always decode
        seed: int,  # keys the augmentation draws
    ) -> None:
        super().__init__(
            root, split, height, width, resize_filter, random_flip, on_corrupt, cache_dir, seed
        )

    def scan(self) -> None:
        image_dir = require_dir(self.root / "leftImg8bit" / self.split, self.name, LAYOUT)
        label_dir = require_dir(self.root / "gtFine" / self.split, self.name, LAYOUT)
        self.images = sorted(image_dir.glob("*/*_leftImg8bit.png"))
        require_some(self.images, image_dir, "<city>/*_leftImg8bit.png", self.name, LAYOUT)
        self.labels, self.instances = [], []
        for image in self.images:
            stem = image.name[: -len("_leftImg8bit.png")]
            pair = [
                label_dir / image.parent.name / f"{stem}_gtFine_{kind}.png"
                for kind in ("labelIds", "instanceIds")
            ]
            for path in pair:
                if not path.is_file():
                    raise DataError(
                        f"data={self.name}: image {image.name} has no {path.name} in "
                        f"{path.parent}; expected layout {LAYOUT}"
                    )
            self.labels.append(pair[0])
            self.instances.append(pair[1])

    def __len__(self) -> int:
        return len(self.images)

    def sources(self, index: int) -> tuple[Path, ...]:
        return (self.images[index], self.labels[index], self.instances[index])

    def decode(self, index: int) -> Arrays:
        w, h = self.width, self.height
        arrays = decode_labelled(self.images[index], self.labels[index], w, h, self.resize_filter)
        check_label_range(arrays["label_map"], self.num_labels, self.labels[index], self.name)
        instances = read_label(self.instances[index])
        if instances.max(initial=0) < 256 and _mode(self.instances[index]) in ("L", "P"):
            note(
                f"Cityscapes instanceIds are 8-bit ({self.instances[index]}): the official files "
                "are 16-bit (label id x 1000 + instance), so instances are lost; regenerate them "
                "with cityscapesScripts (json2instanceImg)",
                key="cityscapes-8bit",
            )
        arrays["instance_map"] = resize_label(instances, w, h)
        return arrays


def _mode(path: Path) -> str:
    """PIL mode of an image file (its header only)."""
    with Image.open(path) as img:
        return str(img.mode)
