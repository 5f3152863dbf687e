"""FID throughput and result: ganzoo.evaluate against torch-fidelity on the same images.

    python experiments/benchmarks/fid_throughput.py [--n 64] [--batch-size 32] [--device cpu]
        [--weights PATH]

Writes n real and n generated-like images (64x64 synthetic scenes; the "fake" set is other
scenes with their colours inverted) as PNGs, then times, end to end (weight file loaded, PNGs
read, Inception features of both sets, FID):
- ganzoo: `python -m ganzoo.evaluate real=DIR fake=DIR metrics=fid` (the function it calls),
  with the standard resize policy (tf_bilinear) and with metrics.resize=clean;
- torch-fidelity: `calculate_metrics(input1=fake, input2=real, fid=True)`.
Each is run twice and the second run is timed (file-system caches warm). images/s counts both
sets (2 n images). The FID of each run and the relative difference to torch-fidelity's are
recorded: tf_bilinear must agree to 1e-4, clean is another protocol and differs.

Weights: `--weights PATH` (e.g. the published pt_inception-2015-12-05-6726825d.pth); without it,
a randomly initialised Inception with He-scaled weights (tests/test_metrics.py) stands in, which
costs the same time but gives FIDs with no meaning beyond the agreement check.
Appends a section to experiments/benchmarks/results/fid_throughput.md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.conftest import compose_train  # noqa: E402
from tests.test_metrics import _scenes, _write_pngs, write_random_inception  # noqa: E402

from ganzoo.core.weights import sha256_of  # noqa: E402
from ganzoo.evaluate import evaluate  # noqa: E402


def timed(run: Callable[[], float]) -> tuple[float, float]:
    """(seconds of the second call, its FID)."""
    run()
    start = time.perf_counter()
    fid = run()
    return time.perf_counter() - start, fid


def ganzoo_fid(real: Path, fake: Path, weights: Path, args: argparse.Namespace, resize: str):
    def run() -> float:
        cfg = compose_train(
            Path(tempfile.mkdtemp()),
            [
                "metrics=fid",
                f"real={real}",
                f"fake={fake}",
                f"weights.inception={weights}",
                f"metrics.batch_size={args.batch_size}",
                f"metrics.num_samples={args.n}",
                f"metrics.resize={resize}",
                f"device={args.device}",
            ],
            config_name="evaluate",
        )
        return float(evaluate(cfg)["metrics"]["fid"])

    return run


def fidelity_fid(real: Path, fake: Path, weights: Path, args: argparse.Namespace):
    from torch_fidelity import calculate_metrics

    def run() -> float:
        result = calculate_metrics(
            input1=str(fake),
            input2=str(real),
            fid=True,
            cuda=args.device == "cuda",
            batch_size=args.batch_size,
            feature_extractor_weights_path=str(weights),
            cache=False,
            verbose=False,
        )
        return float(result["frechet_inception_distance"])

    return run


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=64, help="images per set")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--weights", type=Path, default=None, help="FID Inception file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        weights = args.weights or write_random_inception(root / "random_inception.pth")
        real = _write_pngs(root / "real", _scenes(args.n, height=64)["image"])
        fake = _write_pngs(root / "fake", -_scenes(args.n, start=args.n, height=64)["image"])
        runs = {
            "torch-fidelity 0.4 calculate_metrics": fidelity_fid(real, fake, weights, args),
            "ganzoo.evaluate, resize=tf_bilinear": ganzoo_fid(
                real, fake, weights, args, "tf_bilinear"
            ),
            "ganzoo.evaluate, resize=clean": ganzoo_fid(real, fake, weights, args, "clean"),
        }
        results = {name: timed(run) for name, run in runs.items()}
        digest = sha256_of(weights)[:12]
    reference = results["torch-fidelity 0.4 calculate_metrics"][1]
    rows = []
    for name, (seconds, fid) in results.items():
        rel = abs(fid - reference) / abs(reference)
        rows.append(
            f"| {name} | {2 * args.n / seconds:.1f} | {seconds:.1f} | {fid:.6f} | {rel:.1e} |"
        )
        print(rows[-1], flush=True)
    write(rows, args, "given file" if args.weights else "random He-scaled", digest)


def write(rows: list[str], args: argparse.Namespace, kind: str, digest: str) -> None:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO
    ).stdout.strip()
    device = (
        torch.cuda.get_device_name()
        if args.device == "cuda"
        else f"CPU x{os.cpu_count()} ({torch.get_num_threads()} threads)"
    )
    out = REPO / "experiments/benchmarks/results/fid_throughput.md"
    new = not out.exists()
    with out.open("a") as f:
        if new:
            f.write(
                "# FID throughput: ganzoo.evaluate vs torch-fidelity on the same PNGs\n\n"
                "Written by `experiments/benchmarks/fid_throughput.py`; each run appends a "
                "section. images/s counts both sets, end to end (weights, PNG decoding, "
                "Inception, FID); second of two runs.\n"
            )
        f.write(
            f"\n## {datetime.date.today()} — {device}, torch {torch.__version__}, "
            f"Python {platform.python_version()}, commit {commit}\n\n"
            f"{args.n} + {args.n} images of 64x64 synthetic scenes, batch {args.batch_size}, "
            f"Inception weights: {kind} (sha256 {digest}...)\n\n"
            "| run | images/s | seconds | FID | relative difference to torch-fidelity |\n"
            "| --- | --- | --- | --- | --- |\n"
        )
        f.write("\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
