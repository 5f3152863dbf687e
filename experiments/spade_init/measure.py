"""SPADE initialisation, as run on GPUs vs as written (issue 14 item 1): measured.

    OMP_NUM_THREADS=1 .venv/bin/python experiments/spade_init/measure.py [RUN_FALSE RUN_TRUE]

1. Adam's first step relative to the weights it moves: for both `model.init_sn_weights`
   settings, one SpadeTask iteration on the synthetic scenes (model_data/spade_synthetic.yaml,
   batch 8, the same seed and batch), then, per spectral-norm conv, |dW| / |W| of weight_orig
   (Frobenius); the median over G's and D's SN convs is printed.
2. With two finished runs (`python -m ganzoo.train model=spade data=synthetic steps=400 seed=0
   logger=csv model.init_sn_weights=false|true`), their losses: the mean of each logged term
   over the first and the last quarter of the run.
"""

from __future__ import annotations

import csv
import sys
import tempfile
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from ganzoo.cli.build import build_datamodule, build_task
from ganzoo.data.batch import collate
from ganzoo.nn.spectral_norm import has_spectral_norm

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.conftest import compose_train  # noqa: E402 -- composes conf/ as ganzoo.train does


def first_step(init_sn_weights: bool) -> dict[str, float]:
    run = Path(tempfile.mkdtemp())
    cfg = compose_train(run, ["model=spade", "data=synthetic", "seed=0",
                              f"model.init_sn_weights={str(init_sn_weights).lower()}"])  # fmt: skip
    torch.manual_seed(0)
    task = build_task(cfg)
    batch = build_datamodule(cfg).fixed_batch(8)
    before = {n: p.detach().clone() for n, p in task.named_parameters()}
    samples = [
        {"image": batch.image[i], "label_map": batch.label_map[i],
         "instance_map": batch.instance_map[i]} for i in range(batch.size)
    ]  # fmt: skip
    trainer = pl.Trainer(max_epochs=1, limit_train_batches=1, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, accelerator="cpu")  # fmt: skip
    trainer.fit(task, DataLoader(samples, batch_size=8, collate_fn=collate))
    params = dict(task.named_parameters())
    result: dict[str, float] = {}
    for net in ("generator", "discriminator"):
        ratios, sizes = [], []
        for name, module in getattr(task, net).named_modules():
            if has_spectral_norm(module):
                key = f"{net}.{name}.weight_orig"
                w0 = before[key]
                ratios.append(float((params[key].detach() - w0).norm() / w0.norm()))
                sizes.append(float(w0.std()))
        result[f"{net} median |dW|/|W|"] = float(torch.tensor(ratios).median())
        result[f"{net} median weight std"] = float(torch.tensor(sizes).median())
    return result


def losses(run: Path) -> dict[str, tuple[float, float]]:
    path = next(run.rglob("metrics.csv"))
    rows = list(csv.DictReader(path.open()))
    keys = [k for k in rows[0] if k.startswith("loss/") and k.endswith(("gan", "feat", "fake",
                                                                        "real"))]  # fmt: skip
    out = {}
    for k in keys:
        values = [float(r[k]) for r in rows if r.get(k)]
        first = values[: max(1, len(values) // 4)]
        last = values[-max(1, len(values) // 4) :]
        out[k] = (sum(first) / len(first), sum(last) / len(last))
    out["iterations"] = (float(rows[0]["iteration"]), float(rows[-1]["iteration"]))
    return out


def main() -> None:
    for flag in (False, True):
        print(f"init_sn_weights={str(flag).lower()}:", first_step(flag))
    if len(sys.argv) == 3:
        for flag, run in zip(("false", "true"), sys.argv[1:], strict=True):
            print(f"init_sn_weights={flag}: (first quarter, last quarter)", losses(Path(run)))


if __name__ == "__main__":
    main()
