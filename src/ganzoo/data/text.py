"""Captions for the text-to-image adapters (CUB birds, COCO captions), as AttnGAN reads them.

- `tokenize`: AttnGAN datasets.py:155-170 (lower case, runs of word characters via
  nltk's RegexpTokenizer(r'\\w+'), non-ASCII characters dropped).
- the vocabulary: index 0 is "<end>", the padding id (datasets.py:188-191), then every
  word of the chosen captions; AttnGAN counts train + test captions (build_dictionary,
  datasets.py:179-186, which is why its CUB vocabulary has 5,450 entries). Its word
  order came from a Python 2 dict; ganzoo orders words by first appearance, so indices
  differ from AttnGAN's captions.pickle (the sizes agree).
- `kept_captions`: which captions of an image count (a caption whose words are all non-ASCII
  stays, empty, as in AttnGAN).
- `caption_tensor`: a fixed length with 0 padding; a longer caption keeps a random
  ordered subset of its words (datasets.py:269-287).
- `CaptionTable` cache: tokenised captions and the vocabulary as one JSON file beside
  the image caches, keyed on the caption sources; a stale one is refused.
- `load_name_list`: AttnGAN's filenames.pickle through a restricted unpickler that
  builds no object but lists and strings (a pickle can run code when loaded).
"""

from __future__ import annotations

import io
import json
import os
import pickle
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from ganzoo.core.errors import DataError
from ganzoo.data.files import check_choice

VocabularyFrom = Literal["train", "all"]  # "all": every split's captions, as AttnGAN
PAD = "<end>"


def check_vocabulary_from(value: str) -> VocabularyFrom:
    check_choice("vocabulary", value, ("train", "all"))
    return value  # type: ignore[return-value]


def tokenize(caption: str) -> list[str]:
    """AttnGAN's tokens of one caption."""
    caption = caption.replace("\ufffd\ufffd", " ")
    words = re.findall(r"\w+", caption.lower())
    ascii_only = (w.encode("ascii", "ignore").decode("ascii") for w in words)
    return [w for w in ascii_only if w]


def kept_captions(captions: Iterable[str]) -> list[list[str]]:
    """AttnGAN's load_captions rule (datasets.py:148-170): an empty line or one with no word
    character is skipped; every other caption is kept, as an empty token list when none of its
    words has an ASCII character (so the captions of an image keep their official indices)."""
    kept = []
    for caption in captions:
        if not caption or not re.findall(r"\w+", caption.replace("\ufffd\ufffd", " ").lower()):
            continue
        kept.append(tokenize(caption))
    return kept


def build_vocabulary(captions: Iterable[list[str]]) -> list[str]:
    """["<end>", words in order of first appearance]."""
    words = dict.fromkeys(w for tokens in captions for w in tokens)
    words.pop(PAD, None)
    return [PAD, *words]


def encode(tokens: list[str], lookup: dict[str, int]) -> list[int]:
    """Word ids; words outside the vocabulary are dropped, as AttnGAN does."""
    return [lookup[w] for w in tokens if w in lookup]


def caption_tensor(ids: list[int], length: int, rng: np.random.Generator) -> tuple[Tensor, Tensor]:
    """(tokens (length,) int64 padded with 0, number of real tokens () int64)."""
    array = np.asarray(ids, np.int64)
    if len(array) > length:
        keep = np.sort(rng.permutation(len(array))[:length])
        array = array[keep]
    out = torch.zeros(length, dtype=torch.int64)
    out[: len(array)] = torch.from_numpy(array)
    return out, torch.tensor(len(array), dtype=torch.int64)


@dataclass
class CaptionTable:
    """Tokenised captions of every split and their vocabulary."""

    words: list[str]  # id -> word; 0 = "<end>" (padding)
    captions: dict[str, list[list[list[int]]]]  # split -> image -> caption -> word ids

    @staticmethod
    def from_tokens(
        tokens: dict[str, list[list[list[str]]]], vocabulary: VocabularyFrom, train_split: str
    ) -> CaptionTable:
        source = [tokens[train_split]] if vocabulary == "train" else list(tokens.values())
        words = build_vocabulary(c for split in source for image in split for c in image)
        lookup = {w: i for i, w in enumerate(words)}
        captions = {
            split: [[encode(c, lookup) for c in image] for image in images]
            for split, images in tokens.items()
        }
        return CaptionTable(words, captions)


def load_or_build(
    path: Path | None,  # the cache file; None: build and keep in memory only
    key: dict[str, Any],  # what the cache must agree with
    build: Callable[[], CaptionTable],
    dataset: str,  # data config name, in messages
) -> CaptionTable:
    """The cached table when its key agrees (DataError when stale), else build (and save)."""
    key = json.loads(json.dumps(key))
    if path is not None and path.is_file():
        data = json.loads(path.read_text())
        if data["key"] != key:
            differing = next(k for k in key if data["key"].get(k) != key[k])
            raise DataError(
                f"data={dataset}: stale caption cache {path} ({differing} differs); rerun "
                f"`python -m ganzoo.data.prepare data={dataset} ...` or delete it"
            )
        return CaptionTable(data["words"], data["captions"])
    table = build()
    if path is not None:
        try:
            save_table(path, key, table)
        except OSError:
            pass  # a read-only cache folder: keep the table in memory
    return table


def save_table(path: Path, key: dict[str, Any], table: CaptionTable) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    payload = {"key": key, "words": table.words, "captions": table.captions}
    tmp.write_text(json.dumps(payload, separators=(",", ":")))
    os.replace(tmp, path)


class _NoGlobals(pickle.Unpickler):
    """Unpickles only what needs no global: lists, strings, numbers, dicts, tuples."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def load_plain(path: Path) -> Any:
    """A pickle of plain containers (lists, tuples, dicts, str, bytes, numbers; Python 2 or 3)
    read without building any object through a global: anything else is refused (DataError)."""
    try:
        return _NoGlobals(io.BytesIO(path.read_bytes()), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError) as err:
        raise DataError(f"{path}: not a plain pickle of lists, dicts and strings ({err})") from None


def load_name_list(path: Path) -> list[str]:
    """A pickled list of strings (AttnGAN's filenames.pickle, Python 2 or 3), safely."""
    try:
        obj = _NoGlobals(io.BytesIO(path.read_bytes()), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as err:
        raise DataError(f"{path}: not a plain pickled list of strings ({err})") from None
    if not isinstance(obj, list) or not all(isinstance(s, str) for s in obj):
        raise DataError(f"{path}: expected a pickled list of strings, got {type(obj).__name__}")
    return obj
