"""CelebA (aligned and cropped faces, 40 binary attributes) as StarGAN reads it: `data=celeba`.

Layout (the official "Align&Cropped Images" release, Liu et al. 2015):

    <root>/img_align_celeba/000001.jpg ... 202599.jpg   (178 x 218)
    <root>/list_attr_celeba.txt      line 1: image count; line 2: the 40 attribute names;
                                     then "<file> <40 values of 1 or -1>" per image
    <root>/list_eval_partition.txt   "<file> <0 train | 1 val | 2 test>" per image

Attributes are chosen by name (`attributes`; StarGAN: Black_Hair, Blond_Hair,
Brown_Hair, Male, Young) and given as 0/1 in that order (StarGAN data_loader.py:45-50:
`values[idx] == '1'`).

Splits: `partition: eval_partition` uses the official list_eval_partition.txt (162,770 /
19,867 / 19,962 images); `partition: stargan` reproduces StarGAN's own split
(data_loader.py:39-54): the attribute rows shuffled with random.seed(1234), the first
1,999 for testing and the rest for training ("val" and "test" both give those 1,999).

Preprocessing (StarGAN data_loader.py:74-80): centre crop `crop_size` (178) then resize
to the output size (torchvision's default filter, bilinear), flips on the training split.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ganzoo.core.errors import ConfigError, DataError
from ganzoo.data.files import (
    Arrays,
    FileDataset,
    OnCorrupt,
    ResizeFilter,
    center_crop_box,
    check_choice,
    read_rgb,
    require_dir,
    require_file,
    resize_image,
    to_array,
)

LAYOUT = (
    "<root>/img_align_celeba/*.jpg with <root>/list_attr_celeba.txt and "
    "<root>/list_eval_partition.txt"
)
Partition = Literal["eval_partition", "stargan"]
STARGAN_TEST_IMAGES = 1999  # data_loader.py:52: `if (i+1) < 2000` goes to the test set


def read_attribute_file(path: Path) -> tuple[list[str], list[tuple[str, list[int]]]]:
    """(the 40 names, [(file, values of +-1)]) of list_attr_celeba.txt, checked line by line."""
    lines = [line.rstrip() for line in path.read_text().splitlines()]
    if len(lines) < 2 or not lines[0].strip().isdigit():
        raise DataError(f"{path}: line 1 should be the image count, line 2 the attribute names")
    names = lines[1].split()
    rows = []
    for number, line in enumerate(lines[2:], start=3):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != len(names) + 1 or any(v not in ("1", "-1") for v in parts[1:]):
            raise DataError(
                f"{path}:{number}: expected a file name and {len(names)} values of 1 or -1"
            )
        rows.append((parts[0], [int(v) for v in parts[1:]]))
    if len(rows) != int(lines[0]):
        raise DataError(f"{path}: line 1 says {int(lines[0])} images but {len(rows)} rows follow")
    return names, rows


def select_attributes(names: list[str], wanted: list[str]) -> list[int]:
    """Column indices of the wanted attribute names; one-line error for an unknown one."""
    for name in wanted:
        if name not in names:
            raise ConfigError(
                f"unknown CelebA attribute {name} in data.dataset.attributes; "
                f"valid names: {', '.join(names)}"
            )
    return [names.index(name) for name in wanted]


class CelebA(FileDataset):
    """CelebA faces with chosen binary attributes.

    Sample: image (3, H, W) float in [-1, 1]; attributes (A,) float32 0/1 in the order of
    `attributes`.
    """

    name: ClassVar[str] = "celeba"
    layout: ClassVar[str] = LAYOUT
    provides: ClassVar[tuple[str, ...]] = ("image", "attributes")
    splits: ClassVar[tuple[str, ...]] = ("train", "val", "test")
    train_split: ClassVar[str] = "train"

    def __init__(
        self,
        root: str | Path,  # the folder holding img_align_celeba/ and the two lists
        split: str,  # "train", "val" or "test"
        height: int,  # output height (StarGAN: 128)
        width: int,  # output width (StarGAN: 128)
        attributes: list[str],  # names from list_attr_celeba.txt (StarGAN: 5 hair/sex/age)
        crop_size: int,  # centre crop before the resize (StarGAN: 178)
        partition: Partition,  # "eval_partition" (official) or "stargan" (1,999 test images)
        resize_filter: ResizeFilter,  # image filter (StarGAN: bilinear, torchvision's default)
        random_flip: bool,  # flips on the training split (StarGAN: on)
        on_corrupt: OnCorrupt,  # "fail" or "skip"
        cache_dir: str | Path | None,  # prepared caches; None: always decode
        seed: int,  # keys the augmentation draws
    ) -> None:
        self.attribute_names = list(attributes)
        self.crop_size = crop_size
        self.partition = check_choice("partition", partition, ("eval_partition", "stargan"))
        super().__init__(
            root, split, height, width, resize_filter, random_flip, on_corrupt, cache_dir, seed
        )

    @property
    def num_attributes(self) -> int:
        return len(self.attribute_names)

    def scan(self) -> None:
        self.image_dir = require_dir(self.root / "img_align_celeba", self.name, LAYOUT)
        attr_file = require_file(self.root / "list_attr_celeba.txt", self.name, LAYOUT)
        names, rows = read_attribute_file(attr_file)
        columns = select_attributes(names, self.attribute_names)
        if self.partition == "stargan":
            random.Random(1234).shuffle(rows)  # as random.seed(1234); random.shuffle(lines)
            test = self.split != "train"
            rows = [r for i, r in enumerate(rows) if (i < STARGAN_TEST_IMAGES) == test]
        else:
            part_file = require_file(self.root / "list_eval_partition.txt", self.name, LAYOUT)
            part = self._partition(part_file)
            code = self.splits.index(self.split)
            rows = [r for r in rows if part.get(r[0]) == code]
        self.files = [self.image_dir / name for name, _ in rows]
        self.labels = np.array([[v[c] == 1 for c in columns] for _, v in rows], np.float32)
        if not self.files:
            raise DataError(f"data={self.name}: split {self.split} of {attr_file} is empty")
        missing = next((p for p in self.files if not p.is_file()), None)
        if missing is not None:
            raise DataError(
                f"data={self.name}: {missing.name} is listed in {attr_file.name} but not in "
                f"{self.image_dir}; expected layout {LAYOUT}"
            )

    @staticmethod
    def _partition(path: Path) -> dict[str, int]:
        part = {}
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
                raise DataError(f"{path}:{number}: expected '<file> <0|1|2>'")
            part[fields[0]] = int(fields[1])
        return part

    def __len__(self) -> int:
        return len(self.files)

    def sources(self, index: int) -> tuple[Path, ...]:
        return (self.files[index],)

    def decode(self, index: int) -> Arrays:
        img = read_rgb(self.files[index])
        return {"image": to_array(self.crop_resize(img))}

    def crop_resize(self, img: Image.Image) -> Image.Image:
        """StarGAN's CenterCrop(crop_size) then Resize to the output size."""
        w, h = img.size
        box = center_crop_box(w, h, min(self.crop_size, w), min(self.crop_size, h))
        return resize_image(img.crop(box), self.width, self.height, self.resize_filter)

    def extra_fields(self, index: int, rng: np.random.Generator) -> dict[str, Tensor]:
        return {"attributes": torch.from_numpy(self.labels[index].copy())}

    def cache_params(self) -> dict[str, Any]:
        return {"crop_size": self.crop_size}
