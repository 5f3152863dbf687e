"""Throughput of the synthetic scenes (`data=synthetic`): samples per second.

Measures SyntheticScenes at 64x64, 128x128 and 256x256, generated in a plain loop and
through a torch DataLoader (batch 16, num_workers 0 and 2), prints a markdown table and
appends it with its context to experiments/benchmarks/results/synthetic_data.md.

    python experiments/benchmarks/synthetic_data.py [--samples 512]
"""

from __future__ import annotations

import argparse
import datetime
import os
import subprocess
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from ganzoo.data.batch import collate
from ganzoo.data.synthetic import SyntheticScenes

RESOLUTIONS = ((64, 64), (128, 128), (256, 256))
RESULTS = Path(__file__).resolve().parent / "results" / "synthetic_data.md"


def loop_rate(dataset: SyntheticScenes) -> float:
    """Samples per second of `dataset[i]` in this process."""
    dataset[0]  # warm the interpolation caches
    start = time.perf_counter()
    for i in range(len(dataset)):
        dataset[i]
    return len(dataset) / (time.perf_counter() - start)


def loader_rate(dataset: SyntheticScenes, workers: int, batch_size: int = 16) -> float:
    """Samples per second through a DataLoader, worker start-up excluded (first batch)."""
    loader = DataLoader(
        dataset, batch_size=batch_size, num_workers=workers, collate_fn=collate, shuffle=True
    )
    iterator = iter(loader)
    next(iterator)
    start = time.perf_counter()
    count = sum(batch.size for batch in iterator)
    return count / (time.perf_counter() - start)


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def table(samples: int) -> str:
    """Markdown table: one row per resolution, samples/s and ms per sample."""
    lines = [
        "| resolution | loop (samples/s) | ms / sample | DataLoader w=0 (samples/s) "
        "| DataLoader w=2 (samples/s) | ms / batch of 16, w=2 |",
        "|---|---|---|---|---|---|",
    ]
    for height, width in RESOLUTIONS:
        dataset = SyntheticScenes(samples, height, width, seed=0)
        loop = loop_rate(dataset)
        serial, parallel = loader_rate(dataset, 0), loader_rate(dataset, 2)
        lines.append(
            f"| {height}x{width} | {loop:,.0f} | {1000 / loop:.2f} | {serial:,.0f} "
            f"| {parallel:,.0f} | {16000 / parallel:.1f} |"
        )
        print(lines[-1], flush=True)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=512, help="samples per measurement")
    args = parser.parse_args()
    torch.set_num_threads(1)
    context = (
        f"{datetime.date.today().isoformat()}, torch {torch.__version__}, "
        f"{os.cpu_count()} CPUs, commit {git_commit()}, {args.samples} samples per cell"
    )
    print(context)
    result = table(args.samples)
    print(result)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a") as f:
        f.write(f"\n## {context}\n\n{result}\n")


if __name__ == "__main__":
    main()
