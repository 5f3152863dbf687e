"""python -m ganzoo.data.prepare data=<name> data.root=PATH data.resolution=R — fast caches.

Decodes every sample of the data config's training and sample splits once, at the
config's size and with its resize filter (before the random crops and flips, which stay
per sample), and writes them uncompressed under `data.dataset.cache_dir` with a
manifest (ganzoo.data.cache). The adapters then read the cache instead of the JPEG/PNG
files, and refuse it when the manifest disagrees with the config. Caption datasets also
write their tokenised captions and vocabulary (captions.json). Prints one JSON line per
split: where the cache is, how many samples, how many bytes, how many files skipped.

This is an entry point: it composes the config with Hydra through ganzoo.cli; the work
is ganzoo.data.cache.write_cache, which does not know about configs.
"""

from __future__ import annotations

import json
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig

from ganzoo.cli.build import check_adapter, unwrap
from ganzoo.cli.entry import run
from ganzoo.core.errors import ConfigError
from ganzoo.data.cache import print_progress, write_cache
from ganzoo.data.files import FileDataset


def prepare(cfg: DictConfig) -> list[dict]:
    """Write the caches of cfg.data's training and sample splits; one summary per split."""
    check_adapter(cfg)
    if cfg.data.dataset.cache_dir is None:
        raise ConfigError(f"data={cfg.data.name}: data.dataset.cache_dir is null; nowhere to write")
    factory = unwrap(lambda: instantiate(cfg.data.dataset))
    summaries = []
    for split in dict.fromkeys([str(cfg.data.train_split), str(cfg.data.sample_split)]):
        whole = factory(split=split, cache_dir=None)  # decodes the files
        cache_root = Path(str(cfg.data.dataset.cache_dir))
        parts = whole.parts() if hasattr(whole, "parts") else (whole,)
        for part in parts:
            assert isinstance(part, FileDataset)
            cache_dir = cache_root if len(parts) == 1 else cache_root / part.name
            manifest = write_cache(part, cache_dir, print_progress(f"{part.name} {split}"))
            part.write_extra_caches(cache_dir)
            summaries.append(
                {
                    "data": part.name,
                    "split": part.split,
                    "cache": str(cache_dir / f"{part.split}-{part.height}x{part.width}"),
                    "samples": manifest["source_counts"]["samples"],
                    "bytes": sum(manifest["bytes"].values()),
                    "skipped": len(manifest["skipped"]),
                    "resize_filter": manifest["resize_filter"],
                }
            )
    return summaries


def main_fn(cfg: DictConfig) -> None:
    for summary in prepare(cfg):
        print(json.dumps(summary))


def main() -> None:
    run("train", main_fn, quiet=True)


if __name__ == "__main__":
    main()
