"""How long the studio takes to answer: one stroke (Paint: the painted canvas -> label ids ->
the EMA generator's image, `ganzoo.cli.interactive`) and one Explore click, on this CPU.

The networks are those of the laptop presets (conf/model_data/<model>_synthetic.yaml) at
64x64 and 128x128, with their initial weights (the time does not depend on training).
Median of `--repeats` calls after one warm-up; appends a table to
experiments/benchmarks/results/studio_latency.md with the machine's load.

    python experiments/benchmarks/studio_latency.py [--threads 1,2] [--repeats 7]
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.conftest import compose_train  # noqa: E402

from ganzoo.cli import interactive  # noqa: E402
from ganzoo.cli.build import build_task  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "studio_latency.md"
CASES = [("spade", 64), ("spade", 128), ("pix2pixhd", 64), ("pix2pixhd", 128),
         ("stylegan2", 64), ("stylegan2", 128), ("biggan", 64)]  # fmt: skip


def median_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def stroke(model: str, resolution: int, repeats: int, tmp: Path) -> float:
    cfg = compose_train(tmp, [f"model={model}", f"data.resolution={resolution}"])
    task = build_task(cfg, perceptual=lambda: None).eval()
    if hasattr(task, "draw_latents"):
        return median_ms(
            lambda: interactive.generate(task, [0], 1.0, 0 if model == "biggan" else None), repeats
        )
    colours = interactive.run_palette(cfg)
    canvas = np.zeros((resolution * 4, resolution * 4), np.int64)
    canvas[100:180, 60:200] = 8
    rgb = interactive.labels_to_rgb(canvas, colours)

    def one() -> None:  # what the Paint page does per stroke
        labels = interactive.resize_labels(
            interactive.rgb_to_labels(rgb, colours), resolution, resolution
        )
        interactive.render(task, torch.from_numpy(labels))

    return median_ms(one, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="1,2", help="torch threads to measure, e.g. 1,2")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--models", default=None, help="only these models, e.g. biggan,spade")
    args = parser.parse_args()
    threads = [int(t) for t in args.threads.split(",")]
    rows = []
    chosen = None if args.models is None else set(args.models.split(","))
    for model, res in [c for c in CASES if chosen is None or c[0] in chosen]:
        times = []
        for n in threads:
            torch.set_num_threads(n)
            times.append(stroke(model, res, args.repeats, Path("/tmp/ganzoo-studio-bench")))
        what = "Explore: one image" if model in ("stylegan2", "biggan") else "Paint: one stroke"
        rows.append(
            f"| {model} | {res}x{res} | {what} | " + " | ".join(f"{t:.0f}" for t in times) + " |"
        )
        print(rows[-1], flush=True)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    head = " | ".join(f"median ms, {n} thread{'s' if n > 1 else ''}" for n in threads)
    table = "\n".join([f"| model (laptop preset) | resolution | action | {head} |",
                       "| --- | --- | --- |" + " --- |" * len(threads), *rows])  # fmt: skip
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a") as f:
        f.write(f"\n## {datetime.datetime.now():%Y-%m-%d %H:%M} — {os.cpu_count()} CPU cores, "
                f"load average {load}\n\n{table}\n")  # fmt: skip


if __name__ == "__main__":
    main()
