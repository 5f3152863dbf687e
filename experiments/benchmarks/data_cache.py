"""Reading speed of the prepared cache (`python -m ganzoo.data.prepare`) against decoding files.

Fabricates two datasets in their official layouts in a temporary folder:
- ADE20K-like: 683x512 JPEG photos (quality 90, textured noise) with 8-bit PNG label maps,
  read at 256 (training: decoded at 286x286, the SPADE load size, then cropped);
- CelebA-like: 178x218 JPEG faces, centre crop 178 and resize to 128 (StarGAN).
For each it measures, in one process, samples per second of
- `decode`: `dataset.pixels(i)` from the files (JPEG/PNG decode + resize), copied,
- `cache`: the same arrays copied out of the memmap cache,
- `sample decode` / `sample cache`: the whole `dataset[i]` (crop, flip, tensors),
and the time `write_cache` takes. Files and cache are both in the page cache (written
just before), so this compares decoding work, not disk speed. Prints a markdown table
and appends it with the machine to experiments/benchmarks/results/data_cache.md.

    python experiments/benchmarks/data_cache.py [--samples 300]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ganzoo.data.ade20k import ADE20K
from ganzoo.data.cache import write_cache
from ganzoo.data.celeba import CelebA
from ganzoo.data.files import FileDataset

RESULTS = Path(__file__).resolve().parent / "results" / "data_cache.md"


def texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Smooth colour fields plus noise: compresses like a photo, not like flat colour."""
    low = rng.integers(0, 256, (h // 32 + 2, w // 32 + 2, 3)).astype(np.uint8)
    base = np.asarray(Image.fromarray(low).resize((w, h), Image.Resampling.BICUBIC), np.int16)
    noise = rng.normal(0, 12, (h, w, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def make_ade20k(root: Path, n: int) -> None:
    rng = np.random.default_rng(0)
    for split in ("training",):
        (root / "images" / split).mkdir(parents=True)
        (root / "annotations" / split).mkdir(parents=True)
        for i in range(n):
            name = f"ADE_train_{i + 1:08d}"
            img = Image.fromarray(texture(rng, 512, 683))
            img.save(root / "images" / split / f"{name}.jpg", quality=90)
            labels = rng.integers(0, 151, (16, 22)).astype(np.uint8)
            big = Image.fromarray(labels).resize((683, 512), Image.Resampling.NEAREST)
            big.save(root / "annotations" / split / f"{name}.png")


def make_celeba(root: Path, n: int) -> None:
    rng = np.random.default_rng(1)
    (root / "img_align_celeba").mkdir(parents=True)
    names = ["Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young"]
    names += [f"Other_{i}" for i in range(35)]
    lines = [str(n), " ".join(names)]
    partition = []
    for i in range(n):
        name = f"{i + 1:06d}.jpg"
        Image.fromarray(texture(rng, 218, 178)).save(root / "img_align_celeba" / name, quality=95)
        lines.append(name + " " + " ".join(rng.choice(["1", "-1"], 40)))
        partition.append(f"{name} 0")
    (root / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    (root / "list_eval_partition.txt").write_text("\n".join(partition) + "\n")


def rate(fn: Callable[[int], object], n: int) -> float:
    fn(0)
    start = time.perf_counter()
    for i in range(n):
        fn(i)
    return n / (time.perf_counter() - start)


def copied(ds: FileDataset, i: int) -> list[np.ndarray]:
    """The pre-crop arrays of sample i, copied into memory (a memmap view alone reads nothing)."""
    return [np.array(a) for a in ds.pixels(i)[1].values()]


def measure(
    label: str, build: Callable[[Path | None], FileDataset], cache: Path
) -> tuple[str, dict]:
    direct = build(None)
    start = time.perf_counter()
    manifest = write_cache(direct, cache)
    write_s = time.perf_counter() - start
    cached = build(cache)
    n = len(direct)
    row = {
        "decode": rate(lambda i: copied(direct, i), n),
        "cache": rate(lambda i: copied(cached, i), n),
        "sample decode": rate(direct.__getitem__, n),
        "sample cache": rate(cached.__getitem__, n),
    }
    size = manifest["resolution"]
    bytes_per = sum(manifest["bytes"].values()) / n
    line = (
        f"| {label} | {size[0]}x{size[1]} | {row['decode']:,.0f} | {row['cache']:,.0f} "
        f"| {row['cache'] / row['decode']:.0f}x | {row['sample decode']:,.0f} "
        f"| {row['sample cache']:,.0f} | {n / write_s:,.0f} | {bytes_per / 1024:.0f} |"
    )
    return line, row


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=300, help="images per dataset")
    args = parser.parse_args()
    torch.set_num_threads(1)
    common = dict(random_flip=True, on_corrupt="fail", seed=0)
    lines = [
        "| dataset | output | decode (samples/s) | cache (samples/s) | speed-up "
        "| sample decode | sample cache | prepare (samples/s) | cache KiB / sample |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        ade_root, celeba_root = Path(tmp) / "ade", Path(tmp) / "celeba"
        make_ade20k(ade_root, args.samples)
        make_celeba(celeba_root, args.samples)

        def ade(cache: Path | None) -> FileDataset:
            return ADE20K(
                ade_root, "training", 256, 256, 286 / 256, "bicubic", cache_dir=cache, **common
            )  # type: ignore[arg-type]

        def celeba(cache: Path | None) -> FileDataset:
            return CelebA(
                celeba_root, "train", 128, 128, ["Black_Hair", "Male"], 178, "eval_partition",
                "bilinear", cache_dir=cache, **common,
            )  # type: ignore[arg-type]  # fmt: skip

        for label, build, sub in (
            ("ADE20K 683x512 jpg + png, train (286 -> crop 256)", ade, "ade"),
            ("CelebA 178x218 jpg (crop 178 -> 128)", celeba, "celeba"),
        ):
            line, _ = measure(label, build, Path(tmp) / "cache" / sub)
            lines.append(line)
            print(line, flush=True)
    context = (
        f"{datetime.date.today().isoformat()}, {cpu_name()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__}, Pillow {Image.__version__}, commit {git_commit()}, "
        f"{args.samples} images per dataset, 1 process, 1 torch thread"
    )
    result = "\n".join(lines)
    print(context)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    if not RESULTS.exists():
        RESULTS.write_text(HEADER)
    with RESULTS.open("a") as f:
        f.write(f"\n## {context}\n\n{result}\n")


HEADER = """# Prepared cache vs decoding files

Written by `experiments/benchmarks/data_cache.py`; each run appends a section.
"decode" and "cache" are `dataset.pixels(i)` (the pre-crop arrays, copied into memory)
from the JPEG/PNG files and from the memmap cache of `python -m ganzoo.data.prepare`;
"sample" columns are the whole `dataset[i]` (random crop, flip, conversion to tensors).
Files and cache are both in the page cache, so the numbers compare decoding work, not
disk speed.
"""


if __name__ == "__main__":
    main()
