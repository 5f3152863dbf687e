"""Fast caches of decoded pixel arrays, written by `python -m ganzoo.data.prepare`.

A cache holds one split of one adapter at one output size, decoded and resized exactly
as `FileDataset.decode` does (before the random crop and flip, which stay per sample):

    <cache_dir>/<split>-<H>x<W>/manifest.json  what was cached and how (checked on open)
    <cache_dir>/<split>-<H>x<W>/<field>.bin    every sample's array of that field, raw
    <cache_dir>/<split>-<H>x<W>/index.npy      int64 (N, fields, 3): offset, height, width
    <cache_dir>/<split>-<H>x<W>/source.npy     int64 (N,): the sample whose pixels slot i
                                               holds (itself, or its on_corrupt=skip stand-in)

The .bin files are uncompressed and read through numpy memmaps, so a sample costs a
page-cache copy instead of a JPEG/PNG decode and a resize (numbers in
experiments/benchmarks/results/data_cache.md). An adapter opens its cache when the
folder exists and refuses it, with one line, when the manifest disagrees with the
dataset: adapter, split, size, resize filter, pixel-changing settings, sample count,
the SHA-256 of the file list, the dataset's resolved root (a cache prepared from one copy
of a dataset never stands in for another) or the SHA-256 of the files' sizes and
modification times (a file rewritten since).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ganzoo.core.errors import DataError

if TYPE_CHECKING:
    from ganzoo.data.files import Arrays, FileDataset

FORMAT = 1  # bump when the on-disk layout changes


def cache_path(cache_dir: Path, ds: FileDataset) -> Path:
    return cache_dir / f"{ds.split}-{ds.height}x{ds.width}"


def manifest_key(ds: FileDataset) -> dict[str, Any]:
    """What a cache must agree with to stand in for decoding `ds` (JSON-normalised)."""
    key = {
        "format": FORMAT,
        "adapter": f"{type(ds).__module__}.{type(ds).__qualname__}",
        "split": ds.split,
        "resolution": [ds.height, ds.width],
        "resize_filter": ds.resize_filter,
        "params": ds.cache_params(),
        "count": ds.stored,
        "files_sha256": ds.file_list_digest(),
        "root": str(Path(ds.root).resolve()),
        "files_stat_sha256": files_stat_digest(ds),
    }
    return json.loads(json.dumps(key))


def files_stat_digest(ds: FileDataset) -> str:
    """SHA-256 of every sample's files' relative paths, sizes and modification times: a file
    replaced, rewritten or cut short since the cache was prepared changes it (one stat each)."""
    h = hashlib.sha256()
    root = Path(ds.root)
    for i in range(ds.stored):
        for path in ds.sources(i):
            st = path.stat()
            h.update(f"{path.relative_to(root)}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


EXPLAIN = {  # manifest keys whose values say little to a person: what a mismatch means
    "files_sha256": "the list of files differs",
    "files_stat_sha256": "files were rewritten since it was prepared (sizes or modification times)",
}


def _rerun(ds: FileDataset) -> str:
    return (
        f"rerun `python -m ganzoo.data.prepare data={ds.name} data.root={ds.root} "
        f"data.resolution={ds.width}` or delete that folder"
    )


def open_cache(ds: FileDataset) -> ArrayCache | None:
    """The cache of `ds` under ds.cache_dir if there is one; DataError if it is stale."""
    assert ds.cache_dir is not None
    path = cache_path(ds.cache_dir, ds)
    if not path.exists():
        return None
    manifest_file = path / "manifest.json"
    if not manifest_file.is_file():
        raise DataError(f"data={ds.name}: cache {path} has no manifest.json; {_rerun(ds)}")
    manifest = json.loads(manifest_file.read_text())
    for key, value in manifest_key(ds).items():
        if manifest.get(key) != value:
            why = (
                f"{EXPLAIN[key]} ({key})"
                if key in EXPLAIN
                else f"its manifest has {key}={_short(manifest.get(key))}, "
                f"the dataset has {_short(value)}"
            )
            raise DataError(f"data={ds.name}: stale cache {path}: {why}; {_rerun(ds)}")
    if manifest["skipped"] and ds.on_corrupt == "fail":
        raise DataError(
            f"data={ds.name}: cache {path} substitutes {len(manifest['skipped'])} unreadable "
            f"files (first: {manifest['skipped'][0]}) but on_corrupt=fail; {_rerun(ds)}"
        )
    return ArrayCache(path, manifest)


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


class ArrayCache:
    """Read access to one cache folder; memmaps open lazily in each process."""

    def __init__(self, path: Path, manifest: dict[str, Any]) -> None:
        self.path = path
        self.fields: dict[str, dict[str, Any]] = manifest["fields"]
        self.skipped: list[str] = manifest["skipped"]
        self.index = np.load(path / "index.npy")
        self.source = np.load(path / "source.npy")
        self._maps: dict[str, np.memmap] = {}

    def read(self, i: int) -> tuple[int, Arrays]:
        """(sample whose pixels slot i holds, its pixel arrays as read-only views)."""
        out = {}
        for f, (name, spec) in enumerate(self.fields.items()):
            offset, h, w = (int(v) for v in self.index[i, f])
            channels = int(spec["channels"])
            shape = (h, w, channels) if channels else (h, w)
            count = h * w * max(channels, 1)
            out[name] = self._map(name, spec["dtype"])[offset : offset + count].reshape(shape)
        return int(self.source[i]), out

    def _map(self, name: str, dtype: str) -> np.memmap:
        if name not in self._maps:
            self._maps[name] = np.memmap(self.path / f"{name}.bin", dtype=dtype, mode="r")
        return self._maps[name]

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_maps": {}}  # workers reopen their own memmaps


def write_cache(
    ds: FileDataset,  # built with cache_dir=None, so it decodes the files
    cache_dir: Path,  # the adapter's cache_dir
    progress: Callable[[int, int], None] | None = None,  # called with (done, total)
) -> dict[str, Any]:
    """Decode every sample of `ds` once and write its cache atomically; returns the manifest."""
    path = cache_path(cache_dir, ds)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    n = ds.stored
    fields: dict[str, dict[str, Any]] = {}
    index = np.zeros((n, 0, 3), np.int64)
    source = np.zeros(n, np.int64)
    sizes: dict[str, int] = {}
    handles: dict[str, Any] = {}
    try:
        for i in range(n):
            source[i], arrays = ds.pixels(i)
            if i == 0:
                fields = {k: _spec(ds, k, a) for k, a in arrays.items()}
                index = np.zeros((n, len(fields), 3), np.int64)
                handles = {k: (tmp / f"{k}.bin").open("wb") for k in fields}
                sizes = dict.fromkeys(fields, 0)
            for f, (name, spec) in enumerate(fields.items()):
                array = _cast(arrays[name], spec["dtype"], ds, int(source[i]))
                handles[name].write(array.tobytes())
                index[i, f] = (sizes[name], array.shape[0], array.shape[1])
                sizes[name] += array.size
            if progress is not None:
                progress(i + 1, n)
    finally:
        for handle in handles.values():
            handle.close()
    np.save(tmp / "index.npy", index)
    np.save(tmp / "source.npy", source)
    manifest = {
        **manifest_key(ds),
        "fields": fields,
        "skipped": list(ds.skipped_files),
        "source_counts": {
            "samples": n,
            "files": sum(len(ds.sources(i)) for i in range(n)),
        },
        "bytes": {k: sizes[k] * np.dtype(fields[k]["dtype"]).itemsize for k in fields},
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    if path.exists():
        shutil.rmtree(path)
    os.replace(tmp, path)
    return manifest


def _spec(ds: FileDataset, name: str, array: np.ndarray) -> dict[str, Any]:
    return {"dtype": ds.pixel_dtypes[name], "channels": array.shape[2] if array.ndim == 3 else 0}


def _cast(array: np.ndarray, dtype: str, ds: FileDataset, index: int) -> np.ndarray:
    """`array` as `dtype`, C-contiguous; DataError if a value does not fit."""
    info = np.iinfo(dtype)
    if array.size and (array.min() < info.min or array.max() > info.max):
        raise DataError(
            f"data={ds.name}: sample {index} ({ds.sources(index)[-1].name}) has values "
            f"outside {dtype} [{info.min}, {info.max}]"
        )
    return np.ascontiguousarray(array, dtype=dtype)


def print_progress(label: str) -> Callable[[int, int], None]:
    """A progress callback printing about every 5% to stderr."""

    def show(done: int, total: int) -> None:
        if done == total or done % max(1, total // 20) == 0:
            print(f"{label}: {done}/{total}", file=sys.stderr, flush=True)

    return show
