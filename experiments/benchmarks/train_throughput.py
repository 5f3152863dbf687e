"""Training throughput of each model on the synthetic scenes: iterations/s, images/s, peak RSS.

    python experiments/benchmarks/train_throughput.py [--steps 20] [--override key=value ...]

Runs the real training entry (compose + ganzoo.cli.build.train) for each config, times the
iterations after a warm-up, and appends a markdown row (device, versions, commit) to
experiments/benchmarks/results/train_throughput.md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.conftest import compose_train  # noqa: E402

from ganzoo.cli import build  # noqa: E402

CONFIGS = {
    "spade (synthetic default, 64x64, ngf 16, batch 8)": [],
    "spade vae (synthetic, 64x64, ngf 16, batch 8)": ["model.use_vae=true"],
}


class Timer(pl.Callback):
    def __init__(self, warmup: int) -> None:
        self.warmup = warmup
        self.t0 = 0.0
        self.t1 = 0.0
        self.n = 0

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: Any, *args: Any) -> None:
        it = int(pl_module.iteration)
        if it == self.warmup:
            self.t0 = time.perf_counter()
        elif it > self.warmup:
            self.t1 = time.perf_counter()
            self.n = it - self.warmup


def measure(overrides: list[str], steps: int) -> tuple[float, float]:
    timer = Timer(warmup=3)
    original = build.build_callbacks
    build.build_callbacks = lambda c: [timer]  # type: ignore[assignment]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            cfg = compose_train(
                Path(tmp),
                [
                    "logger=none",
                    f"steps={steps + 3}",
                    "trainer.enable_progress_bar=false",
                    *overrides,
                ],
            )
            build.train(cfg)
    finally:
        build.build_callbacks = original
    its = timer.n / (timer.t1 - timer.t0)
    return its, its * int(cfg.data.batch_size)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--override", nargs="*", default=[])
    args = parser.parse_args()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO
    ).stdout.strip()
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU x{os.cpu_count()}"
    rows = []
    for name, overrides in CONFIGS.items():
        its, ips = measure(overrides + args.override, args.steps)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        rows.append(f"| {name} | {its:.2f} | {ips:.1f} | {rss:.0f} |")
        print(rows[-1], flush=True)
    out = REPO / "experiments/benchmarks/results/train_throughput.md"
    new = not out.exists()
    with out.open("a") as f:
        if new:
            f.write("# Training throughput (ganzoo.train on data=synthetic)\n\n")
        f.write(
            f"\n## {datetime.date.today()} — {device}, torch {torch.__version__}, "
            f"Python {platform.python_version()}, commit {commit}\n\n"
            "| config | iterations/s | images/s | peak RSS (MiB, process) |\n"
            "| --- | --- | --- | --- |\n"
        )
        f.write("\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
