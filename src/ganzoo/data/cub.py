"""CUB-200-2011 birds with captions, as AttnGAN reads them: `data=cub`.

Layout (AttnGAN's data/birds: its birds.zip metadata plus the CUB_200_2011 images):

    <root>/CUB_200_2011/images/001.Black_footed_Albatross/Black_Footed_Albatross_0046_18.jpg
    <root>/CUB_200_2011/images.txt           "<id> <class>/<name>.jpg"
    <root>/CUB_200_2011/bounding_boxes.txt   "<id> <x> <y> <width> <height>"
    <root>/text/<class>/<name>.txt           10 captions, one per line (Reed et al. 2016)
    <root>/{train,test}/filenames.pickle     the split: a list of "<class>/<name>"

The pickles are read with a restricted unpickler that accepts only a list of strings.
class_id is the CUB class number - 1 (0..199), from the "<nnn>.<Name>" folder.

Images (datasets.py:59-71 and main.py:122-126): the bird's bounding box enlarged to a
square of 1.5 x its longer side, clipped to the image; then, for training, the short
side resized to 76/64 of the output (304 for 256, bilinear: torchvision's Scale),
a random crop and flip; other splits resize the short side to the output and take the
centre. AttnGAN's task makes the 64 and 128 versions from this image.

Captions: one of the 10 per image at random (datasets.py:305), tokenised and padded to
`caption_length` (AttnGAN WORDS_NUM 18) with 0 (see ganzoo.data.text).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ganzoo.core.errors import DataError
from ganzoo.data.files import (
    Arrays,
    FileDataset,
    OnCorrupt,
    ResizeFilter,
    file_digest,
    read_rgb,
    require_dir,
    require_file,
    resize_image,
    to_array,
)
from ganzoo.data.text import (
    CaptionTable,
    VocabularyFrom,
    caption_tensor,
    check_vocabulary_from,
    kept_captions,
    load_name_list,
    load_or_build,
    save_table,
)

LAYOUT = (
    "<root>/CUB_200_2011/{images/,images.txt,bounding_boxes.txt}, <root>/text/<class>/<name>.txt "
    "and <root>/{train,test}/filenames.pickle (AttnGAN's data/birds)"
)


def bird_crop(img: Image.Image, bbox: tuple[int, int, int, int]) -> Image.Image:
    """AttnGAN's get_imgs crop (datasets.py:63-71): a square around the box, clipped."""
    width, height = img.size
    r = int(max(bbox[2], bbox[3]) * 0.75)
    center_x = int((2 * bbox[0] + bbox[2]) / 2)
    center_y = int((2 * bbox[1] + bbox[3]) / 2)
    y1, y2 = max(0, center_y - r), min(height, center_y + r)
    x1, x2 = max(0, center_x - r), min(width, center_x + r)
    return img.crop((x1, y1, x2, y2))


def cover_size(w: int, h: int, out_w: int, out_h: int) -> tuple[int, int]:
    """The smallest aspect-keeping size covering (out_w, out_h); for a square output this
    is torchvision's Resize(int): short side = out, long side truncated."""
    scale = max(out_w / w, out_h / h)
    return max(out_w, int(w * scale)), max(out_h, int(h * scale))


class CUB(FileDataset):
    """CUB birds: bbox-cropped image, class_id and one of its captions.

    Sample: image (3, H, W) float in [-1, 1]; class_id () int64 in [0, 200);
    caption_tokens (caption_length,) int64, 0-padded; caption_lengths () int64.
    """

    name: ClassVar[str] = "cub"
    layout: ClassVar[str] = LAYOUT
    provides: ClassVar[tuple[str, ...]] = (
        "image",
        "class_id",
        "caption_tokens",
        "caption_lengths",
    )
    splits: ClassVar[tuple[str, ...]] = ("train", "test")
    train_split: ClassVar[str] = "train"
    num_classes: ClassVar[int] = 200

    def __init__(
        self,
        root: str | Path,  # AttnGAN's data/birds
        split: str,  # "train" or "test"
        height: int,  # output height (AttnGAN: 256)
        width: int,  # output width (AttnGAN: 256)
        caption_length: int,  # tokens per caption (AttnGAN WORDS_NUM: 18)
        captions_per_image: int,  # AttnGAN CAPTIONS_PER_IMAGE: 10
        vocabulary: VocabularyFrom,  # "all" splits (AttnGAN, 5,450 words) or "train" only
        load_ratio: float,  # training short-side resize / output (AttnGAN: 76 / 64)
        resize_filter: ResizeFilter,  # image filter (AttnGAN: bilinear)
        random_flip: bool,  # flips on the training split (AttnGAN: on)
        on_corrupt: OnCorrupt,  # "fail" or "skip"
        cache_dir: str | Path | None,  # prepared caches and captions.json; None: no cache
        seed: int,  # keys the augmentation and caption draws
    ) -> None:
        self.caption_length = caption_length
        self.captions_per_image = captions_per_image
        self.vocabulary = check_vocabulary_from(vocabulary)
        self.load_ratio = load_ratio
        super().__init__(
            root, split, height, width, resize_filter, random_flip, on_corrupt, cache_dir, seed
        )

    def scan(self) -> None:
        cub = require_dir(self.root / "CUB_200_2011", self.name, LAYOUT)
        self.bbox_file = require_file(cub / "bounding_boxes.txt", self.name, LAYOUT)
        images_file = require_file(cub / "images.txt", self.name, LAYOUT)
        keys = {
            s: load_name_list(require_file(self.root / s / "filenames.pickle", self.name, LAYOUT))
            for s in self.splits
        }
        self.keys = keys[self.split]
        boxes = read_boxes(images_file, self.bbox_file)
        self.boxes = []
        for key in self.keys:
            if key not in boxes:
                raise DataError(f"data={self.name}: {key} is not in {images_file}")
            self.boxes.append(boxes[key])
        self.files = [cub / "images" / f"{key}.jpg" for key in self.keys]
        missing = next((p for p in self.files if not p.is_file()), None)
        if missing is not None:
            raise DataError(
                f"data={self.name}: image {missing} not found; expected layout {LAYOUT}"
            )
        texts = {s: [self.root / "text" / f"{k}.txt" for k in keys[s]] for s in self.splits}
        self.text_key = self._text_key(texts)
        cache = None if self.cache_dir is None else self.cache_dir / "captions.json"
        self.table = load_or_build(cache, self.text_key, lambda: self._tokens(texts), self.name)
        self.captions = self.table.captions[self.split]
        self.vocab_size = len(self.table.words)

    def _text_key(self, texts: dict[str, list[Path]]) -> dict[str, Any]:
        h = hashlib.sha256()
        for split, paths in texts.items():
            for path in paths:
                if not path.is_file():
                    raise DataError(
                        f"data={self.name}: captions {path} not found; expected layout {LAYOUT}"
                    )
                h.update(f"{split} {path.relative_to(self.root)} {path.stat().st_size}\n".encode())
        return {
            "adapter": self.name,
            "vocabulary": self.vocabulary,
            "captions_per_image": self.captions_per_image,
            "caption_rule": "ascii-empty kept",  # captions.json of older ganzoo: rebuilt
            "sources_sha256": h.hexdigest(),
        }

    def _tokens(self, texts: dict[str, list[Path]]) -> CaptionTable:
        tokens = {s: [self._read_captions(p) for p in paths] for s, paths in texts.items()}
        return CaptionTable.from_tokens(tokens, self.vocabulary, self.train_split)

    def _read_captions(self, path: Path) -> list[list[str]]:
        """The first captions_per_image non-empty captions of a file (datasets.py:145-177)."""
        try:
            lines = path.read_text(encoding="utf-8").split("\n")
        except UnicodeDecodeError as err:
            raise DataError(f"data={self.name}: {path} is not UTF-8 ({err.reason})") from None
        captions = kept_captions(lines)
        if len(captions) < self.captions_per_image:
            raise DataError(
                f"data={self.name}: {path} has {len(captions)} captions, "
                f"{self.captions_per_image} expected"
            )
        return captions[: self.captions_per_image]

    def __len__(self) -> int:
        return len(self.files)

    def sources(self, index: int) -> tuple[Path, ...]:
        return (self.files[index],)

    def load_size(self) -> tuple[int, int]:
        ratio = self.load_ratio if self.augment else 1.0
        return round(self.width * ratio), round(self.height * ratio)

    def decode(self, index: int) -> Arrays:
        img = bird_crop(read_rgb(self.files[index]), self.boxes[index])
        size = cover_size(*img.size, *self.load_size())
        return {"image": to_array(resize_image(img, *size, self.resize_filter))}

    def extra_fields(self, index: int, rng: np.random.Generator) -> dict[str, Tensor]:
        caption = self.captions[index][int(rng.integers(self.captions_per_image))]
        tokens, length = caption_tensor(caption, self.caption_length, rng)
        class_id = int(self.keys[index].split(".", 1)[0]) - 1
        return {
            "class_id": torch.tensor(class_id),
            "caption_tokens": tokens,
            "caption_lengths": length,
        }

    def cache_params(self) -> dict[str, Any]:
        return {"load_size": list(self.load_size()), "boxes_sha256": file_digest(self.bbox_file)}

    def write_extra_caches(self, cache_dir: Path) -> None:
        save_table(cache_dir / "captions.json", self.text_key, self.table)


def read_boxes(images_file: Path, bbox_file: Path) -> dict[str, tuple[int, int, int, int]]:
    """ "<class>/<name>" -> (x, y, width, height) as ints (AttnGAN load_bbox: astype(int))."""
    names = {}
    for line in images_file.read_text().splitlines():
        if line.strip():
            image_id, rel = line.split()
            names[image_id] = rel[: -len(".jpg")] if rel.endswith(".jpg") else rel
    boxes = {}
    for number, line in enumerate(bbox_file.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 5 or fields[0] not in names:
            raise DataError(f"{bbox_file}:{number}: expected '<image id> <x> <y> <w> <h>'")
        x, y, w, h = (int(float(v)) for v in fields[1:])
        boxes[names[fields[0]]] = (x, y, w, h)
    return boxes
