"""The shared base of the file-backed dataset adapters (ADE20K, Cityscapes, CelebA, ...).

An adapter lists its samples in the official layout (checking it, with one-line
errors that name the expected layout and the path tried) and decodes sample `i` into
numpy *pixel arrays* at its pre-crop size: `image` (H, W, 3) uint8, and where the
dataset has them `label_map` and `instance_map` (H, W) integers. `FileDataset` then

- reads those arrays from the fast cache of `python -m ganzoo.data.prepare` when one
  exists for this split and size (`ganzoo.data.cache`), else decodes the files;
- applies the corrupt-file policy (`on_corrupt`): `fail` raises a DataError naming the
  file; `skip` substitutes the next readable sample (index i+1, i+2, ... so the same
  sample every time), warns once and counts the file in `skipped`, a count shared by
  all DataLoader workers of this dataset;
- crops to (height, width) and flips: on the training split at random, as the official
  code does, from a per-sample generator (`crop_flip` is a pure function of its seed,
  and the flip is applied identically to every pixel array); on other splits a centre
  crop and no flip;
- converts to the Batch fields: image float (3, H, W) in [-1, 1], maps int64 (H, W),
  plus the adapter's non-pixel fields (class_id, attributes, captions).

Resizing: images with the named PIL filter (`resize_filter`; the official codes use
bicubic (SPADE, pix2pixHD), bilinear (StarGAN and BigGAN via torchvision's default),
lanczos (StyleGAN2-ADA's dataset_tool)); the filter changes FID, so it is part of the
config and of every cache manifest. Label and instance maps are always resized with
nearest neighbour (PIL NEAREST, as SPADE's `get_transform(method=Image.NEAREST)`), in
32-bit integer mode so that 16-bit Cityscapes instance ids survive.

Augmentation draws: sample `i` of the training split uses a generator keyed on (seed, i,
stream position), the position the datamodule's loader gives (`set_stream_position`); so a
seeded run sees the same crops and flips whatever `num_workers`, and a resumed run the very
draws of a straight one. Read without a position (direct indexing), the key is the number of
samples this process has read instead.
"""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import re
import warnings
from collections.abc import Iterable, Sequence
from multiprocessing import context as mp_context
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset, get_worker_info

from ganzoo.core.console import note
from ganzoo.core.errors import ConfigError, DataError
from ganzoo.data.cache import ArrayCache, open_cache

ResizeFilter = Literal["nearest", "box", "bilinear", "hamming", "bicubic", "lanczos"]
FILTERS: dict[str, Image.Resampling] = {
    "nearest": Image.Resampling.NEAREST,
    "box": Image.Resampling.BOX,
    "bilinear": Image.Resampling.BILINEAR,
    "hamming": Image.Resampling.HAMMING,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}
OnCorrupt = Literal["fail", "skip"]
ON_CORRUPT: tuple[str, ...] = ("fail", "skip")
IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp", ".tif")

Arrays = dict[str, np.ndarray]  # pixel arrays of one sample: image (H, W, 3) uint8, maps (H, W)
PIXEL_FIELDS: tuple[str, ...] = ("image", "label_map", "instance_map")


class CorruptFile(Exception):
    """A file of a sample cannot be decoded (raised by the readers, handled by on_corrupt)."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def check_choice(key: str, value: str, valid: Sequence[str]) -> str:
    """`value` if it is one of `valid`, else a ConfigError listing them."""
    if value not in valid:
        raise ConfigError(f"unknown {key}={value}; valid choices: {', '.join(valid)}")
    return value


# ----------------------------------------------------------------------------- reading


def read_rgb(path: Path) -> Image.Image:
    """The image at `path` as a fully decoded RGB PIL image (CorruptFile if unreadable)."""
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode != "RGB":
                note_conversion(img.mode, path)
            return img.convert("RGB")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise CorruptFile(path, _reason(err)) from None


CONVERSIONS = {
    "L": "grayscale: the grey copied to R, G and B",
    "LA": "grayscale with alpha: the grey copied to R, G and B, alpha dropped",
    "RGBA": "alpha dropped (not composited)",
    "P": "palette colours looked up",
    "CMYK": "CMYK converted by PIL",
}


def note_conversion(mode: str, path: Path) -> None:
    """Say once per mode that images of that mode are converted to RGB."""
    how = CONVERSIONS.get(mode, "converted by PIL")
    note(f"images in mode {mode} are converted to RGB ({how}), e.g. {path}", key=f"rgb:{mode}")


def read_label(path: Path) -> np.ndarray:
    """A single-channel label or instance map as stored (8- or 16-bit, palette indices kept).

    Returns (H, W) int32; no colour conversion and no interpolation ever touch the values.
    """
    try:
        with Image.open(path) as img:
            img.load()
            array = np.asarray(img)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise CorruptFile(path, _reason(err)) from None
    if array.ndim != 2:
        raise DataError(f"{path} is not a single-channel label map (shape {array.shape})")
    return array.astype(np.int32)


def _reason(err: BaseException) -> str:
    return str(err).splitlines()[0] if str(err) else type(err).__name__


def file_digest(path: Path) -> str:
    """SHA-256 of a (metadata) file, for cache manifests."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------------------- resizing


def resize_image(img: Image.Image, width: int, height: int, resize_filter: str) -> Image.Image:
    """Resize to exactly (width, height) with the named filter (no-op at that size)."""
    if img.size == (width, height):
        return img
    return img.resize((width, height), FILTERS[resize_filter])


def resize_label(array: np.ndarray, width: int, height: int) -> np.ndarray:
    """Nearest-neighbour resize of an (H, W) integer map to (height, width), values kept."""
    if array.shape == (height, width):
        return array
    img = Image.fromarray(array.astype(np.int32))  # mode "I": 32-bit, NEAREST keeps values
    return np.array(img.resize((width, height), Image.Resampling.NEAREST))


def center_crop_box(width: int, height: int, crop_w: int, crop_h: int) -> tuple[int, int, int, int]:
    """PIL box (left, top, right, bottom) of a centred crop, torchvision's rounding."""
    left = int(round((width - crop_w) / 2.0))
    top = int(round((height - crop_h) / 2.0))
    return (left, top, left + crop_w, top + crop_h)


def center_crop_aspect(img: Image.Image, width: int, height: int) -> Image.Image:
    """The largest centred crop with the aspect ratio width/height (square: the short side,
    as BigGAN-PyTorch's CenterCropLongEdge)."""
    w0, h0 = img.size
    if w0 * height > h0 * width:  # too wide
        crop_w, crop_h = int(round(h0 * width / height)), h0
    else:
        crop_w, crop_h = w0, int(round(w0 * height / width))
    if (crop_w, crop_h) == (w0, h0):
        return img
    return img.crop(center_crop_box(w0, h0, crop_w, crop_h))


def to_array(img: Image.Image) -> np.ndarray:
    """An RGB PIL image as (H, W, 3) uint8."""
    return np.asarray(img, dtype=np.uint8)


def decode_labelled(
    image: Path,  # the photo
    label: Path,  # its label map, same size
    width: int,  # decoded width
    height: int,  # decoded height
    resize_filter: str,  # image filter; the label map is resized with nearest
) -> Arrays:
    """An image and its label map resized to (height, width), as SPADE's 'resize' and
    'fixed' modes (data/base_dataset.py:47-78): image with the filter, label nearest."""
    photo, labels = read_rgb(image), read_label(label)
    if photo.size != (labels.shape[1], labels.shape[0]):
        note(
            f"label map {label} is {labels.shape[1]}x{labels.shape[0]}, its image {image} "
            f"{photo.size[0]}x{photo.size[1]}: each is resized to {width}x{height} on its own "
            "(labels nearest), so they may not align",
            key="label-size",
        )
    rgb = resize_image(photo, width, height, resize_filter)
    return {"image": to_array(rgb), "label_map": resize_label(labels, width, height)}


def check_label_range(labels: np.ndarray, num_labels: int, path: Path, dataset: str) -> None:
    """DataError when a label value lies outside [0, num_labels)."""
    if labels.size and (labels.min() < 0 or labels.max() >= num_labels):
        raise DataError(
            f"data={dataset}: {path} has label values in [{labels.min()}, {labels.max()}], "
            f"outside [0, {num_labels}) (is this the right dataset?)"
        )


# -------------------------------------------------------------------- crops and flips


def crop_flip(
    arrays: Arrays,
    height: int,  # output height
    width: int,  # output width
    rng: np.random.Generator | None,  # None: centre crop, no flip (evaluation splits)
    flip: bool,  # allow a horizontal flip (drawn with probability 1/2)
) -> Arrays:
    """Crop every pixel array at the same place to (height, width) and flip them together.

    With a generator: crop offsets uniform in [0, H - height] x [0, W - width] and a flip
    with probability 1/2, as SPADE's `get_params` (data/base_dataset.py:40-43); the result
    is a pure function of the generator's seed.
    """
    h0, w0 = arrays["image"].shape[:2]
    if h0 < height or w0 < width:
        raise DataError(f"decoded sample is {h0}x{w0}, smaller than the crop {height}x{width}")
    if rng is None:
        y, x, mirrored = (h0 - height) // 2, (w0 - width) // 2, False
    else:
        x = int(rng.integers(0, w0 - width + 1))
        y = int(rng.integers(0, h0 - height + 1))
        mirrored = flip and bool(rng.random() < 0.5)
    out = {}
    for key, array in arrays.items():
        part = array[y : y + height, x : x + width]
        out[key] = np.array(part[:, ::-1] if mirrored else part)  # a writable copy
    return out


def to_tensors(arrays: Arrays) -> dict[str, Tensor]:
    """Pixel arrays -> Batch fields: image (3, H, W) float in [-1, 1], maps (H, W) int64."""
    sample = {}
    for key, array in arrays.items():
        tensor = torch.from_numpy(np.ascontiguousarray(array))
        if key == "image":
            sample[key] = tensor.permute(2, 0, 1).float().div_(127.5).sub_(1.0)
        else:
            sample[key] = tensor.long()
    return sample


# ---------------------------------------------------------------------- layout checks


def require_dir(path: Path, dataset: str, layout: str) -> Path:
    if not path.is_dir():
        raise DataError(f"data={dataset}: folder {path} not found; expected layout {layout}")
    return path


def require_file(path: Path, dataset: str, layout: str) -> Path:
    if not path.is_file():
        raise DataError(f"data={dataset}: file {path} not found; expected layout {layout}")
    return path


def require_some(files: list[Path], folder: Path, what: str, dataset: str, layout: str) -> None:
    """DataError when a folder of the layout holds none of the files it should."""
    if not files:
        raise DataError(f"data={dataset}: no {what} in {folder}; expected layout {layout}")


def list_images(folder: Path, recursive: bool = True) -> list[Path]:
    """Image files under `folder` (by extension, case-insensitive), in natural order."""
    found = folder.rglob("*") if recursive else folder.iterdir()
    files = [p for p in found if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()]
    return sorted(files, key=lambda p: natural_key(str(p.relative_to(folder))))


def natural_key(text: str) -> list[int | str]:
    """Sort key in human order ('img2' < 'img10'), as SPADE's util.natural_sort."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def pair_by_stem(
    images: Iterable[Path], folder: Path, suffix: str, dataset: str, layout: str
) -> list[Path]:
    """The file `folder/<stem><suffix>` of every image; DataError for the first one missing."""
    paired = []
    for image in images:
        other = folder / f"{image.stem}{suffix}"
        if not other.is_file():
            raise DataError(
                f"data={dataset}: image {image.name} has no {other.name} in {folder}; "
                f"expected layout {layout}"
            )
        paired.append(other)
    return paired


# --------------------------------------------------------------- shared skip counter


class SkipCounter:
    """Counts skipped samples across the DataLoader worker processes of one dataset.

    Backed by a multiprocessing.Value, inherited (fork) or sent while spawning (spawn) to
    the workers; pickled any other way (e.g. a deepcopy) it becomes a plain count.
    """

    def __init__(self) -> None:
        self._shared: Any = mp.Value("q", 0)
        self._local = 0

    def add(self) -> None:
        if self._shared is None:
            self._local += 1
            return
        with self._shared.get_lock():
            self._shared.value += 1

    @property
    def value(self) -> int:
        return int(self._shared.value) if self._shared is not None else self._local

    def __getstate__(self) -> dict[str, Any]:
        if mp_context.get_spawning_popen() is not None:
            return {"_shared": self._shared, "_local": self._local}
        return {"_shared": None, "_local": self.value}


# ------------------------------------------------------------------------ the adapter


class FileDataset(Dataset):
    """Base of the file-backed adapters; subclasses list samples and decode pixel arrays.

    Subclass contract: set their own attributes, then call `super().__init__`, which calls
    `scan()` (list the samples, checking the layout) and opens the cache. They implement
    `__len__`, `sources(i)` (files read for sample i, relative to root in the cache's file
    hash), `decode(i)` (pixel arrays at the pre-crop size) and optionally
    `extra_fields(i, rng)` (class_id, attributes, captions) and `cache_params()`.
    """

    name: ClassVar[str]  # the data config's name, in messages and cache manifests
    layout: ClassVar[str]  # the expected folder layout, one line
    provides: ClassVar[tuple[str, ...]]  # Batch fields of a sample
    splits: ClassVar[tuple[str, ...]]  # valid split names
    train_split: ClassVar[str]  # the split that gets random crops and flips
    pixel_dtypes: ClassVar[dict[str, str]] = {
        "image": "uint8",
        "label_map": "uint8",
        "instance_map": "int32",
    }

    def __init__(
        self,
        root: str | Path,  # the dataset folder (see `layout`)
        split: str,  # one of `splits`
        height: int,  # output height in pixels
        width: int,  # output width in pixels
        resize_filter: ResizeFilter,  # PIL filter for images (labels: always nearest)
        random_flip: bool,  # horizontal flips on the training split (the official codes: on)
        on_corrupt: OnCorrupt,  # an unreadable file: "fail" (DataError) or "skip" (substitute)
        cache_dir: str | Path | None,  # where `ganzoo.data.prepare` caches go; None: no cache
        seed: int,  # keys the per-sample augmentation generators
    ) -> None:
        self.root = Path(root)
        self.split = check_choice(f"split for data={self.name}", split, self.splits)
        self.height, self.width = int(height), int(width)
        self.resize_filter = check_choice("resize_filter", resize_filter, tuple(FILTERS))
        self.random_flip = random_flip
        self.on_corrupt = check_choice("on_corrupt", on_corrupt, ON_CORRUPT)
        self.seed = seed
        self.augment = split == self.train_split
        self.skips = SkipCounter()
        self.skipped_files: list[str] = []  # names skipped in this process
        self._draws = 0
        self._position: int | None = None  # stream position of the next read (training)
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        require_dir(self.root, self.name, self.layout)
        self.scan()
        self.cache: ArrayCache | None = None if self.cache_dir is None else open_cache(self)

    # --- hooks --------------------------------------------------------------------

    def scan(self) -> None:
        """List the samples of `self.split`, checking the layout."""
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError

    def sources(self, index: int) -> tuple[Path, ...]:
        """The files sample `index` reads."""
        raise NotImplementedError

    def decode(self, index: int) -> Arrays:
        """Pixel arrays of sample `index` at the pre-crop size (raise CorruptFile)."""
        raise NotImplementedError

    def extra_fields(self, index: int, rng: np.random.Generator) -> dict[str, Tensor]:
        """Non-pixel Batch fields of sample `index` (class_id, attributes, captions)."""
        return {}

    def cache_params(self) -> dict[str, Any]:
        """Settings besides size and filter that change decoded pixels (in the manifest)."""
        return {}

    def write_extra_caches(self, cache_dir: Path) -> None:
        """Write caches besides the pixel arrays (e.g. tokenised captions); called by prepare."""

    # --- the sample pipeline ------------------------------------------------------

    @property
    def stored(self) -> int:
        """Samples with files of their own: len(self) unless a subclass repeats them
        (e.g. ImageFolder's mirrored copies); what caches and substitutions count."""
        return len(self)

    @property
    def skipped(self) -> int:
        """Unreadable files skipped under on_corrupt=skip: those the cache's prepare run
        substituted, plus those met while reading files, once per process that met them
        (summed over the DataLoader workers)."""
        return self.skips.value + (0 if self.cache is None else len(self.cache.skipped))

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        rng = self._rng(index)
        index, arrays = self.pixels(index)
        arrays = crop_flip(
            arrays,
            self.height,
            self.width,
            rng if self.augment else None,
            self.random_flip and self.augment,
        )
        return {**to_tensors(arrays), **self.extra_fields(index, rng)}

    def pixels(self, index: int) -> tuple[int, Arrays]:
        """(index actually read, its pre-crop pixel arrays): the cache or the files,
        with the corrupt-file policy applied."""
        n = self.stored
        for step in range(n):
            j = (index + step) % n
            if self.cache is not None:
                return self.cache.read(j)
            try:
                return j, self.decode(j)
            except CorruptFile as err:
                if self.on_corrupt == "fail":
                    raise DataError(
                        f"data={self.name}: cannot decode {err.path} ({err.reason}); "
                        "set data.dataset.on_corrupt=skip to substitute other samples"
                    ) from None
                if err.path.name not in self.skipped_files:  # count and warn once per process
                    self.skips.add()
                    self.skipped_files.append(err.path.name)
                    warnings.warn(
                        f"data={self.name}: skipped unreadable {err.path} ({err.reason})",
                        stacklevel=2,
                    )
        raise DataError(
            f"data={self.name}: no readable sample in split {self.split} of {self.root}"
        )

    def set_stream_position(self, position: int) -> None:
        """Key the next read's augmentation draws on its position in the training stream."""
        self._position = position

    def _rng(self, index: int) -> np.random.Generator:
        seed = self.seed % 2**63  # SeedSequence entropy must be non-negative
        if not self.augment:
            return np.random.default_rng([seed, index])
        if self._position is not None:
            position, self._position = self._position, None
            return np.random.default_rng([seed, index, 0, position])
        info = get_worker_info()
        worker = 0 if info is None else info.id + 1
        self._draws += 1
        return np.random.default_rng([seed, index, worker, self._draws])

    def file_list_digest(self) -> str:
        """SHA-256 of the relative paths of every sample's files, in sample order."""
        h = hashlib.sha256()
        for i in range(self.stored):
            for path in self.sources(i):
                h.update(str(path.relative_to(self.root)).encode())
                h.update(b"\n")
        return h.hexdigest()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_draws"] = 0
        return state
