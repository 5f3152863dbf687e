"""ganzoo's training iteration beside the official code's, side by side on this machine.

    python experiments/benchmarks/official_ratio.py --official-root /work/scratch
    python experiments/benchmarks/official_ratio.py --models stylegan2 --variants eager,compile
    GANZOO_OFFICIAL_STYLEGAN2=/path/to/stylegan2-ada-pytorch python experiments/benchmarks/...

For each model, one child process builds ganzoo's run (the real training entry: compose +
ganzoo.cli.build.train, data=synthetic, logger=none, no checkpoint / sample / metric
callbacks) and, beside it, the official networks, losses and optimisers at the same small
configuration (SMALL below), imported from the official checkout. The two alternate
iteration by iteration: after each ganzoo iteration (timed from Lightning's batch start to its
end, so ganzoo's loop overhead counts) the official code runs the same phases once (timed around
its own loop body; its data are ready-made tensors). Medians over the timed iterations after
`--warmup`; ratio = ganzoo / official (below 1 = ganzoo faster). One intra-op thread on both
sides (OMP/MKL and torch), so other jobs on a shared machine disturb less; the load average
before and after each model is recorded with the numbers.

The official checkouts are not part of ganzoo: give their paths with --official-root (a folder
holding the repositories under their GitHub names, e.g. /work/scratch/stylegan2-ada-pytorch)
or GANZOO_OFFICIAL_<MODEL>=<path>; a model whose checkout is absent is skipped with a message.
Variants (--variants): eager (default), channels_last (trainer.channels_last=true), compile
(trainer.compile=true); each is its own row against the same official code.

Results are appended to experiments/benchmarks/results/official_ratio.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "experiments/benchmarks/results/official_ratio.md"

# The official repositories by model: the folder name under --official-root (GitHub's name).
REPOS = {
    "stylegan2": "stylegan2-ada-pytorch",  # NVlabs/stylegan2-ada-pytorch
    "spade": "SPADE",  # NVlabs/SPADE
    "pix2pixhd": "pix2pixHD",  # NVIDIA/pix2pixHD
    "stargan": "stargan",  # yunjey/stargan
    "biggan": "BigGAN-PyTorch",  # ajbrock/BigGAN-PyTorch
    "attngan": "AttnGAN",  # taoxugit/AttnGAN
}

# The same small configuration on both sides: ganzoo overrides (the official side reads its
# numbers from the composed config).
SMALL: dict[str, list[str]] = {
    "stylegan2": [
        "data.resolution=32",
        "data.batch_size=8",
        "model.generator.z_dim=128",
        "model.generator.w_dim=128",
        "model.generator.mapping_layers=2",
        "model.generator.channel_base=4096",
        "model.generator.channel_max=128",
        "model.discriminator.mbstd_group_size=4",
        "model.r1_interval=4",  # so that every 4th iteration has all four phases
        "model.pl_interval=4",
    ],
}

VARIANTS = {
    "eager": [],
    "channels_last": ["trainer.channels_last=true"],
    "compile": ["trainer.compile=true"],
}


def official_path(model: str, root: Path | None) -> Path | None:
    """The official checkout of `model`: GANZOO_OFFICIAL_<MODEL>, else <root>/<repo name>."""
    env = os.environ.get(f"GANZOO_OFFICIAL_{model.upper()}")
    if env:
        return Path(env) if Path(env).is_dir() else None
    if root is None:
        return None
    path = root / REPOS[model]
    return path if path.is_dir() else None


# ----- the official side, one builder per model ----------------------------------------------
def official_stylegan2(root: Path, cfg: Any) -> Callable[[int], None]:
    """One iteration of stylegan2-ada-pytorch's training_loop.py body (phases due at the
    iteration, then the G_ema update) at cfg's configuration, with ready-made data."""
    import copy

    import torch

    sys.path.insert(0, str(root))
    from training import loss as official_loss  # type: ignore[import-not-found]
    from training import networks  # type: ignore[import-not-found]

    m, gen, dis = cfg.model, cfg.model.generator, cfg.model.discriminator
    res, batch = int(cfg.data.resolution), int(cfg.data.batch_size)
    common = dict(c_dim=0, img_resolution=res, img_channels=3)
    block = dict(
        channel_base=int(gen.channel_base),
        channel_max=int(gen.channel_max),
        num_fp16_res=0,  # float32 on the CPU on both sides
        conv_clamp=gen.conv_clamp,
    )
    g = networks.Generator(
        z_dim=int(gen.z_dim),
        w_dim=int(gen.w_dim),
        mapping_kwargs=dict(num_layers=int(gen.mapping_layers)),
        synthesis_kwargs=block,
        **common,
    )
    d = networks.Discriminator(
        **block,
        epilogue_kwargs=dict(mbstd_group_size=int(dis.mbstd_group_size)),
        **common,
    )
    g.train().requires_grad_(False)
    d.train().requires_grad_(False)
    g_ema = copy.deepcopy(g).eval()
    loss = official_loss.StyleGAN2Loss(
        "cpu",
        g.mapping,
        g.synthesis,
        d,
        style_mixing_prob=float(m.style_mixing_prob),
        r1_gamma=float(m.r1_gamma),
        pl_batch_shrink=int(m.pl_batch_shrink),
        pl_decay=float(m.pl_decay),
        pl_weight=float(m.pl_weight),
    )
    phases = []
    for name, module, interval in (
        ("G", g, int(m.pl_interval)),
        ("D", d, int(m.r1_interval)),
    ):
        ratio = interval / (interval + 1)
        opt = torch.optim.Adam(
            module.parameters(), lr=0.002 * ratio, betas=(0.0, 0.99**ratio), eps=1e-8
        )
        phases += [(name + "main", module, opt, 1), (name + "reg", module, opt, interval)]
    real = torch.rand(batch, 3, res, res) * 2 - 1
    c = torch.zeros(batch, 0)
    ema_beta = 0.5 ** (batch / (float(m.ema.half_life_kimg) * 1000))

    def iteration(it: int) -> None:
        zs = torch.randn(len(phases), batch, g.z_dim)
        for (name, module, opt, interval), z in zip(phases, zs, strict=True):
            if it % interval != 0:
                continue
            opt.zero_grad(set_to_none=True)
            module.requires_grad_(True)
            loss.accumulate_gradients(name, real, c, z, c, sync=True, gain=interval)
            module.requires_grad_(False)
            for p in module.parameters():
                if p.grad is not None:
                    torch.nan_to_num(p.grad, nan=0, posinf=1e5, neginf=-1e5, out=p.grad)
            opt.step()
        with torch.no_grad():
            for p_ema, p in zip(g_ema.parameters(), g.parameters(), strict=True):
                p_ema.copy_(p.lerp(p_ema, ema_beta))
            for b_ema, b in zip(g_ema.buffers(), g.buffers(), strict=True):
                b_ema.copy_(b)

    return iteration


OFFICIAL: dict[str, Callable[[Path, Any], Callable[[int], None]]] = {
    "stylegan2": official_stylegan2,
}


# ----- one model in a child process -----------------------------------------------------------
def measure(model: str, official: Path, variant: str, iterations: int, warmup: int) -> dict:
    """Alternate ganzoo and official iterations; per-iteration times (ms) of both."""
    import pytorch_lightning as pl
    import torch

    torch.set_num_threads(1)
    sys.path.insert(0, str(REPO))
    from tests.conftest import compose_train

    from ganzoo.cli import build

    overrides = [f"model={model}", "logger=none", "trainer.enable_progress_bar=false"]
    overrides += ["trainer.enable_model_summary=false", "data.num_workers=0"]
    overrides += [*SMALL[model], *VARIANTS[variant], f"steps={warmup + iterations}"]
    rows: dict[str, list] = {"ganzoo": [], "official": [], "phases": []}

    class Alternate(pl.Callback):
        def __init__(self, run_official: Callable[[int], None]) -> None:
            self.run_official = run_official
            self.t0 = 0.0

        def on_train_batch_start(self, trainer: Any, task: Any, *args: Any) -> None:
            self.t0 = time.perf_counter()

        def on_train_batch_end(self, trainer: Any, task: Any, *args: Any) -> None:
            t_ganzoo = time.perf_counter() - self.t0
            it = int(task.iteration) - 1  # the iteration that just ran
            due = [p.name for p in task.phases() if it % p.every == p.offset % p.every]
            t0 = time.perf_counter()
            self.run_official(it)
            t_official = time.perf_counter() - t0
            if it >= warmup:
                rows["ganzoo"].append(t_ganzoo * 1e3)
                rows["official"].append(t_official * 1e3)
                rows["phases"].append("+".join(due))

    with tempfile.TemporaryDirectory() as tmp:
        cfg = compose_train(Path(tmp), overrides)
        callback = Alternate(OFFICIAL[model](official, cfg))
        build.build_callbacks = lambda c: [callback]  # type: ignore[assignment]
        build.train(cfg)
    return {"model": model, "variant": variant, "config": SMALL[model], **rows}


def summarise(row: dict) -> list[dict]:
    """Medians per set of phases and over all iterations."""
    out = []
    groups = {"all iterations": range(len(row["phases"]))}
    for name in sorted(set(row["phases"]), key=len):
        groups[name] = [i for i, p in enumerate(row["phases"]) if p == name]
    for name, idx in groups.items():
        g = statistics.median(row["ganzoo"][i] for i in idx)
        o = statistics.median(row["official"][i] for i in idx)
        out.append({"phases": name, "n": len(idx), "ganzoo": g, "official": o, "ratio": g / o})
    return out


def run_child(model: str, official: Path, variant: str, args: argparse.Namespace) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    command = [sys.executable, __file__, "--one", model, "--official", str(official)]
    command += ["--variant", variant, "--iterations", str(args.iterations)]
    command += ["--warmup", str(args.warmup)]
    load = os.getloadavg()[0]
    out = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode != 0 or not lines:
        err = (out.stderr.strip().splitlines() or ["no output"])[-1]
        return {"model": model, "variant": variant, "error": err.replace("|", "/")}
    row = json.loads(lines[-1])
    row["load"] = (load, os.getloadavg()[0])
    return row


def _commit() -> str:
    def git(*a: str) -> str:
        return subprocess.run(["git", *a], capture_output=True, text=True, cwd=REPO).stdout.strip()

    dirty = " (uncommitted changes)" if git("status", "--porcelain", "--untracked-files=no") else ""
    return (git("rev-parse", "--short", "HEAD") or "unknown") + dirty


def _official_commit(path: Path) -> str:
    out = subprocess.run(["git", "-C", str(path), "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True)  # fmt: skip
    if out.returncode == 0:
        return out.stdout.strip()
    marker = path / ".git-commit"  # an extracted tree: the commit written beside it, if any
    return marker.read_text().strip()[:7] if marker.is_file() else "unknown commit"


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def append(rows: list[dict], skipped: list[str], args: argparse.Namespace) -> None:
    import torch

    new = not RESULTS.exists()
    with RESULTS.open("a") as f:
        if new:
            f.write(
                "# ganzoo vs the official code: one training iteration, side by side\n\n"
                "Written by `experiments/benchmarks/official_ratio.py`; each run appends a "
                "section. Same small configuration on both sides, 1 thread, ganzoo and official "
                "iterations alternating in one process, medians over the timed iterations; "
                "ratio = ganzoo / official (< 1: ganzoo faster). ganzoo's time includes "
                "Lightning's loop around the training step; the official's is its loop body on "
                "ready-made data.\n"
            )
        f.write(
            f"\n## {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC — "
            f"{_cpu()}, {os.cpu_count()} CPUs, 1 thread; torch {torch.__version__}, "
            f"Python {platform.python_version()}; ganzoo commit {_commit()}\n\n"
            f"{args.warmup} warm-up + {args.iterations} timed iterations per model and variant\n\n"
            "| model | variant | phases | n | ganzoo (ms) | official (ms) | ratio | load avg "
            "before / after | configuration |\n"
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n"
        )
        for r in rows:
            if "error" in r:
                f.write(f"| {r['model']} | {r['variant']} | failed: {r['error']} |||||||\n")
                continue
            load = f"{r['load'][0]:.1f} / {r['load'][1]:.1f}"
            config = " ".join(r["config"]) + f"; official {r['official_commit']}"
            for s in summarise(r):
                f.write(
                    f"| {r['model']} | {r['variant']} | {s['phases']} | {s['n']} "
                    f"| {s['ganzoo']:.1f} | {s['official']:.1f} | **{s['ratio']:.2f}** "
                    f"| {load} | {config} |\n"
                )
                config = load = ""
        for line in skipped:
            f.write(f"\n{line}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(REPOS), help="comma-separated")
    parser.add_argument("--variants", default="eager", help=f"of {', '.join(VARIANTS)}")
    parser.add_argument(
        "--official-root",
        type=Path,
        default=None,
        help="folder with the official repositories (their GitHub names)",
    )
    parser.add_argument("--iterations", type=int, default=24, help="timed iterations")
    parser.add_argument("--warmup", type=int, default=4)
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # child process
    parser.add_argument("--official", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--variant", default="eager", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        row = measure(args.one, args.official, args.variant, args.iterations, args.warmup)
        print(json.dumps(row), flush=True)
        return
    models, variants = args.models.split(","), args.variants.split(",")
    for bad, valid in (
        (set(models) - set(REPOS), REPOS),
        (set(variants) - set(VARIANTS), VARIANTS),
    ):
        if bad:
            parser.error(f"unknown {', '.join(sorted(bad))}; valid: {', '.join(valid)}")
    rows, skipped = [], []
    for model in models:
        path = official_path(model, args.official_root)
        if model not in OFFICIAL:
            skipped.append(f"{model}: skipped (no official driver in this benchmark yet)")
        elif path is None:
            skipped.append(
                f"{model}: skipped (official checkout absent: give --official-root with "
                f"{REPOS[model]}/ in it, or GANZOO_OFFICIAL_{model.upper()}=<path>)"
            )
        else:
            for variant in variants:
                row = run_child(model, path, variant, args)
                row["official_commit"] = _official_commit(path)
                rows.append(row)
                show = summarise(row) if "error" not in row else row["error"]
                print(model, variant, show, flush=True)
            continue
        print(skipped[-1], flush=True)
    append(rows, skipped, args)
    print(f"appended to {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    main()
