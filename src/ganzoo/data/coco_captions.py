"""COCO images with their captions, for AttnGAN: `data=coco_captions`.

Layout (the official COCO downloads of one year, 2014 or 2017, unzipped side by side):

    <root>/{train2014,val2014}/COCO_train2014_000000000009.jpg ...
    <root>/annotations/captions_{train2014,val2014}.json

(2017: train2017/, val2017/, captions_{train2017,val2017}.json). `year` picks the pair:
2014 is AttnGAN's split (82,783 train / 40,504 val images, vocabulary 27,297 words, the
COCO step counts of conf/experiment/attngan_*coco.yaml); 2017 (118,287 / 5,000) is the
split of newer work, with a different vocabulary size.

Samples are the images listed in the caption file (sorted by image id), each with its
first `captions_per_image` captions in annotation-id order (AttnGAN COCO:
CAPTIONS_PER_IMAGE 5; every COCO image has at least 5). Captions are tokenised and
padded as for CUB (ganzoo.data.text; AttnGAN COCO WORDS_NUM 12); the tokenised table is
cached as captions<year>.json beside the pixel caches.

Images (AttnGAN main.py:122-126, no bounding boxes for COCO): training images have the
short side resized to 76/64 of the output, bilinear, then a random crop and flip; the
val split is resized to the output's short side and centre-cropped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from torch import Tensor

from ganzoo.core.errors import ConfigError, DataError
from ganzoo.data.cub import cover_size
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
    load_or_build,
    save_table,
)

YEARS = (2014, 2017)  # the COCO releases with caption files for train and val


def coco_layout(year: int) -> str:
    """The expected folders of one year's release, one line."""
    splits = f"{{train{year},val{year}}}"
    return f"<root>/{splits}/*.jpg with <root>/annotations/captions_{splits}.json"


class CocoCaptions(FileDataset):
    """COCO images with one of their captions.

    Sample: image (3, H, W) float in [-1, 1]; caption_tokens (caption_length,) int64,
    0-padded; caption_lengths () int64.
    """

    name: ClassVar[str] = "coco_captions"
    layout: ClassVar[str] = coco_layout(2014)  # set per instance from `year`
    provides: ClassVar[tuple[str, ...]] = ("image", "caption_tokens", "caption_lengths")
    splits: ClassVar[tuple[str, ...]] = ("train2014", "val2014")  # set per instance
    train_split: ClassVar[str] = "train2014"  # set per instance

    def __init__(
        self,
        root: str | Path,  # the folder holding train<year>/, val<year>/ and annotations/
        split: str,  # "train<year>" or "val<year>"
        year: int,  # COCO release: 2014 (AttnGAN) or 2017
        height: int,  # output height (AttnGAN: 256)
        width: int,  # output width (AttnGAN: 256)
        caption_length: int,  # tokens per caption (AttnGAN COCO WORDS_NUM: 12)
        captions_per_image: int,  # AttnGAN COCO CAPTIONS_PER_IMAGE: 5
        vocabulary: VocabularyFrom,  # "all" splits (AttnGAN) or "train" only
        load_ratio: float,  # training short-side resize / output (AttnGAN: 76 / 64)
        resize_filter: ResizeFilter,  # image filter (AttnGAN: bilinear)
        random_flip: bool,  # flips on the training split (AttnGAN: on)
        on_corrupt: OnCorrupt,  # "fail" or "skip"
        cache_dir: str | Path | None,  # prepared caches and captions<year>.json; None: no cache
        seed: int,  # keys the augmentation and caption draws
    ) -> None:
        if year not in YEARS:
            valid = ", ".join(map(str, YEARS))
            raise ConfigError(f"unknown data.dataset.year={year}; valid choices: {valid}")
        self.year = year
        # FileDataset declares these per class; here the year picks them
        self.layout = coco_layout(year)  # type: ignore[misc]
        self.splits = (f"train{year}", f"val{year}")  # type: ignore[misc]
        self.train_split = f"train{year}"  # type: ignore[misc]
        self.caption_length = caption_length
        self.captions_per_image = captions_per_image
        self.vocabulary = check_vocabulary_from(vocabulary)
        self.load_ratio = load_ratio
        super().__init__(
            root, split, height, width, resize_filter, random_flip, on_corrupt, cache_dir, seed
        )

    @property
    def captions_file(self) -> str:
        """The caption table's cache file: one per year, beside the pixel caches."""
        return f"captions{self.year}.json"

    def scan(self) -> None:
        notes = {
            s: require_file(
                self.root / "annotations" / f"captions_{s}.json", self.name, self.layout
            )
            for s in self.splits
        }
        folder = require_dir(self.root / self.split, self.name, self.layout)
        self.text_key = {
            "adapter": self.name,
            "year": self.year,
            "vocabulary": self.vocabulary,
            "captions_per_image": self.captions_per_image,
            "caption_rule": "ascii-empty kept",  # captions.json of older ganzoo: rebuilt
            "sources_sha256": {s: file_digest(p) for s, p in notes.items()},
        }
        names: dict[str, list[str]] = {}

        def build() -> CaptionTable:
            tokens = {}
            for s, path in notes.items():
                names[s], tokens[s] = self._read(path)
            return CaptionTable.from_tokens(tokens, self.vocabulary, self.train_split)

        cache = None if self.cache_dir is None else self.cache_dir / self.captions_file
        self.table = load_or_build(cache, self.text_key, build, self.name)
        if self.split not in names:  # the table came from the cache
            names[self.split] = self._read(notes[self.split], tokens=False)[0]
        self.files = [folder / n for n in names[self.split]]
        self.captions = self.table.captions[self.split]
        self.vocab_size = len(self.table.words)
        missing = next((p for p in self.files if not p.is_file()), None)
        if missing is not None:
            raise DataError(
                f"data={self.name}: image {missing.name} of {notes[self.split].name} not in "
                f"{folder}; expected layout {self.layout}"
            )

    def _read(self, path: Path, tokens: bool = True) -> tuple[list[str], list[Any]]:
        """(image file names by id, their tokenised captions) of a captions_*.json."""
        data = json.loads(path.read_text())
        images = sorted(data["images"], key=lambda im: im["id"])
        by_image: dict[int, list[str]] = {im["id"]: [] for im in images}
        for note in sorted(data["annotations"], key=lambda a: a["id"]):
            by_image[note["image_id"]].append(note["caption"])
        captions = []
        for im in images:
            found: list[Any] = by_image[im["id"]]
            if tokens:  # AttnGAN drops captions without a word, keeps all-non-ASCII ones empty
                found = kept_captions(found)
            if len(found) < self.captions_per_image:
                raise DataError(
                    f"data={self.name}: {im['file_name']} has {len(found)} captions in "
                    f"{path.name}, {self.captions_per_image} expected"
                )
            captions.append(found[: self.captions_per_image])
        return [im["file_name"] for im in images], captions

    def __len__(self) -> int:
        return len(self.files)

    def sources(self, index: int) -> tuple[Path, ...]:
        return (self.files[index],)

    def load_size(self) -> tuple[int, int]:
        ratio = self.load_ratio if self.augment else 1.0
        return round(self.width * ratio), round(self.height * ratio)

    def decode(self, index: int) -> Arrays:
        img = read_rgb(self.files[index])
        size = cover_size(*img.size, *self.load_size())
        return {"image": to_array(resize_image(img, *size, self.resize_filter))}

    def extra_fields(self, index: int, rng: np.random.Generator) -> dict[str, Tensor]:
        caption = self.captions[index][int(rng.integers(self.captions_per_image))]
        tokens, length = caption_tensor(caption, self.caption_length, rng)
        return {"caption_tokens": tokens, "caption_lengths": length}

    def cache_params(self) -> dict[str, Any]:
        return {"load_size": list(self.load_size())}

    def write_extra_caches(self, cache_dir: Path) -> None:
        save_table(cache_dir / self.captions_file, self.text_key, self.table)
