"""Training throughput and peak memory of every model: iterations/s, images/s, peak memory.

    python experiments/benchmarks/train_throughput.py          # every conf/model/*.yaml, tiny
    python experiments/benchmarks/train_throughput.py --models spade,stylegan2 --steps 30
    python experiments/benchmarks/train_throughput.py --config paper \
        --precisions 32-true,bf16-mixed,16-mixed --compile off,on          # the GPU table

Each model runs in its own process (so its peak memory is its own) through the real training
entry (compose + ganzoo.cli.build.train, logger=none, no checkpoint/sample/metric callbacks),
on data=synthetic. `--config tiny` is `debug=smoke` (each model at the widths of
conf/debug_model/smoke_<model>.yaml, 32x32); `--config paper` the model's own config at the
paper's resolution and per-GPU batch (PAPER below; data=synthetic stands in for the dataset, so
no download is needed). Every combination of `--precisions` (trainer.precision) and `--compile`
(trainer.compile off/on) is a row. The iterations after `--warmup` are timed; an iteration is
one minibatch with every phase due at it (D, G, lazy regularisers, StarGAN's n_critic), so
images/s = iterations/s x batch. Peak
memory: on a GPU torch's peak allocated memory during training, on the CPU the process's
peak RSS (which includes the ~0.5 GiB of imported libraries; "RSS at start" is measured just
before building the run). The rows are appended, with device, versions and git commit, to
experiments/benchmarks/results/train_throughput.md.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
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
RESULTS = REPO / "experiments/benchmarks/results/train_throughput.md"
sys.path.insert(0, str(REPO))

from tests.conftest import compose_train  # noqa: E402

from ganzoo.cli import build  # noqa: E402

# --config paper: the paper's image size and per-GPU batch (conf/experiment/*: the batch of
# the official multi-GPU runs divided by their GPUs), on data=synthetic.
PAPER: dict[str, list[str]] = {
    "stylegan2": ["data.resolution=1024", "data.batch_size=4"],  # config F, FFHQ: 32 / 8 GPUs
    "spade": ["data.resolution=256", "data.batch_size=4"],  # ADE20K: 32 / 8 GPUs
    "pix2pixhd": ["data.resolution=1024", "data.aspect_ratio=2.0", "data.batch_size=1"],
    "stargan": ["data.resolution=128", "data.batch_size=16"],  # CelebA, 1 GPU
    "biggan": ["data.resolution=128", "data.batch_size=32"],  # ImageNet 128: 256 / 8 GPUs
    "attngan": ["data.resolution=256", "data.batch_size=20"],  # CUB, 3 stages up to 256
    "damsm": ["data.resolution=299", "data.batch_size=48"],  # CUB DAMSM pretraining
}


def discover_models() -> list[str]:
    """Every model config (conf/model/<name>.yaml) of this checkout."""
    return sorted(
        p.stem for p in (REPO / "conf/model").glob("*.yaml") if not p.stem.startswith("_")
    )


class Timer(pl.Callback):
    """Wall time of the iterations after `warmup` (CUDA synchronised at both ends)."""

    def __init__(self, warmup: int) -> None:
        self.warmup = warmup
        self.t0 = 0.0
        self.t1 = 0.0
        self.n = 0

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: Any, *args: Any) -> None:
        it = int(pl_module.iteration)
        if it < self.warmup:
            return
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        if it == self.warmup:
            self.t0 = time.perf_counter()
            if torch.cuda.is_available():
                torch.cuda.reset_peak_memory_stats()
        else:
            self.t1 = time.perf_counter()
            self.n = it - self.warmup


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def measure(model: str, config: str, steps: int, warmup: int, overrides: list[str]) -> dict:
    """Train `model` for warmup + steps iterations here; returns the numbers of one row."""
    timer = Timer(warmup)
    build.build_callbacks = lambda c: [timer]  # type: ignore[assignment]
    base = [f"model={model}", "logger=none", "trainer.enable_progress_bar=false"]
    if config == "tiny":
        base.append("debug=smoke")
    else:
        base += PAPER.get(model, [])
    rss_start = _rss_mib()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = compose_train(Path(tmp), [*base, f"steps={warmup + steps}", *overrides])
        task_params: list[int] = []
        original = build.build_task

        def counting_build_task(c: Any, **kw: Any) -> Any:
            task = original(c, **kw)
            task_params.append(sum(p.numel() for p in task.parameters() if p.requires_grad))
            return task

        build.build_task = counting_build_task  # type: ignore[assignment]
        try:
            build.train(cfg)
        finally:
            build.build_task = original  # type: ignore[assignment]
    its = timer.n / (timer.t1 - timer.t0)
    batch = int(cfg.data.batch_size)
    h = round(int(cfg.data.resolution) / float(cfg.data.aspect_ratio))
    on_gpu = torch.cuda.is_available() and str(cfg.trainer.accelerator) != "cpu"
    peak = torch.cuda.max_memory_allocated() / 2**20 if on_gpu else _rss_mib()
    return {
        "model": model,
        "precision": str(cfg.trainer.precision),
        "compile": bool(cfg.trainer.compile),
        "config": config,
        "size": f"{int(cfg.data.resolution)}x{h}",
        "batch": batch,
        "params_m": task_params[0] / 1e6 if task_params else float("nan"),
        "iterations_s": its,
        "images_s": its * batch,
        "peak_mib": peak,
        "rss_start_mib": rss_start,
        "timed": timer.n,
    }


def _commit() -> str:
    def git(*args: str) -> str:
        out = subprocess.run(["git", *args], capture_output=True, text=True, cwd=REPO)
        return out.stdout.strip()

    dirty = " (uncommitted changes)" if git("status", "--porcelain", "--untracked-files=no") else ""
    return (git("rev-parse", "--short", "HEAD") or "unknown") + dirty


def _device() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads"


def _version() -> str:
    try:
        return importlib.metadata.version("ganzoo")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def append(rows: list[dict], args: argparse.Namespace) -> None:
    new = not RESULTS.exists()
    gpu = torch.cuda.is_available()
    memory = "peak GPU memory allocated (MiB)" if gpu else "peak RSS (MiB) | RSS at start (MiB)"
    memory += " | training's own (MiB)" if not gpu else ""
    with RESULTS.open("a") as f:
        if new:
            f.write(
                "# Training throughput and peak memory per model\n\n"
                "Written by `experiments/benchmarks/train_throughput.py`; each run appends a "
                "section. data=synthetic, logger=none, no checkpoint / sample / metric callbacks; "
                "an iteration is one minibatch with every phase due at it, so images/s = "
                "iterations/s x batch. CPU: peak RSS of the process, which includes the "
                "imported libraries (RSS at start, measured before the run is built); "
                "training's own = the difference. GPU: torch's peak allocated memory.\n"
            )
        overrides = " ".join(args.override) or "none"
        f.write(
            f"\n## {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC — "
            f"{_device()}; torch {torch.__version__}, Lightning {pl.__version__}, "
            f"ganzoo {_version()}, Python {platform.python_version()}; commit {_commit()}\n\n"
            f"config {args.config}, {args.warmup} warm-up + {args.steps} timed iterations, "
            f"overrides: {overrides}; load average (1 min) {args.load[0]:.1f} before, "
            f"{os.getloadavg()[0]:.1f} after (other jobs on the machine slow every row)\n\n"
            "| model | precision | compile | size | batch | trainable params (M) | iterations/s "
            f"| images/s | {memory} |\n"
            f"|{' --- |' * (8 + memory.count('|') + 1)}\n"
        )
        for r in rows:
            if "error" in r:
                f.write(f"| {r['model']} | {r['precision']} | {r['compile']} | failed: "
                        f"{r['error']} |\n")  # fmt: skip
                continue
            f.write(
                f"| {r['model']} | {r['precision']} | {'on' if r['compile'] else 'off'} "
                f"| {r['size']} | {r['batch']} | {r['params_m']:.2f} "
                f"| {r['iterations_s']:.2f} | {r['images_s']:.1f} | {r['peak_mib']:.0f} "
                + ("|\n" if gpu else f"| {r['rss_start_mib']:.0f} | {own(r):.0f} |\n")
            )


def own(row: dict) -> float:
    """CPU: the peak RSS above the process's RSS before the run was built."""
    return float(row["peak_mib"]) - float(row["rss_start_mib"])


def run_one(model: str, precision: str, compile: str, args: argparse.Namespace) -> dict:
    """Measure one model at one precision, compiled or not, in a fresh process (its own peak
    memory)."""
    command = [sys.executable, __file__, "--one", model, "--config", args.config]
    command += ["--steps", str(args.steps), "--warmup", str(args.warmup)]
    overrides = [f"trainer.precision={precision}", f"trainer.compile={compile == 'on'}"]
    command += ["--override", *overrides, *args.override]
    out = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode != 0 or not lines:
        err = (out.stderr.strip().splitlines() or ["no output"])[-1]
        return {"model": model, "precision": precision, "compile": compile,
                "error": err.replace("|", "/")}  # fmt: skip
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=None, help="comma-separated; default: conf/model/*")
    parser.add_argument("--config", choices=["tiny", "paper"], default="tiny")
    parser.add_argument("--steps", type=int, default=20, help="timed iterations")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=None,
                        help="default: 8 (tiny), the paper's per-GPU batch (paper)")  # fmt: skip
    parser.add_argument("--precisions", default="32-true",
                        help="comma-separated trainer.precision values, e.g. "
                        "32-true,bf16-mixed,16-mixed")  # fmt: skip
    parser.add_argument("--compile", default="off", help="off, on or off,on (trainer.compile)")
    parser.add_argument("--override", nargs="*", default=[], help="more key=value overrides")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # child process
    args = parser.parse_args()
    if args.one is not None:
        row = measure(args.one, args.config, args.steps, args.warmup, args.override)
        print(json.dumps(row), flush=True)
        return
    if args.batch_size is not None or args.config == "tiny":
        args.override = [f"data.batch_size={args.batch_size or 8}", *args.override]
    compiles = args.compile.split(",")
    if set(compiles) - {"off", "on"}:
        parser.error(f"--compile takes off, on or off,on; got {args.compile}")
    models = args.models.split(",") if args.models else discover_models()
    unknown = sorted(set(models) - set(discover_models()))
    if unknown:
        parser.error(
            f"unknown model(s) {', '.join(unknown)}; valid: {', '.join(discover_models())}"
        )
    args.load = os.getloadavg()
    rows = []
    for model in models:
        for precision in args.precisions.split(","):
            for compile in compiles:
                rows.append(run_one(model, precision, compile, args))
                print(rows[-1], flush=True)
    append(rows, args)
    print(f"appended to {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    main()
