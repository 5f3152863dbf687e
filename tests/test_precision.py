"""Mixed precision in GANTask: one GradScaler per optimiser, clipping after unscaling, resume."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.plugins.precision import MixedPrecision
from torch import Tensor
from torch.utils.data import DataLoader

from ganzoo.data.batch import Batch, collate
from ganzoo.tasks.base import Phase
from tests.test_gantask import ToyTask


class OverflowingG(ToyTask):
    """G's loss overflows float16 once scaled at iteration 0; D's stays finite."""

    def phases(self) -> Sequence[Phase]:
        return (Phase("D", "D", "d_main"), Phase("G", "G", "g_main", updates_ema=True))

    def g_main(self, batch: Batch) -> dict[str, Tensor]:
        terms = super().g_main(batch)
        if int(self.iteration) == 0:
            terms["gan"] = terms["gan"] * 1e5  # x the initial scale 1024: inf in float16
        return terms


class CalmG(ToyTask):
    def g_main(self, batch: Batch) -> dict[str, Tensor]:
        return {"gan": super().g_main(batch)["gan"] * 1e-3}


def _trainer(steps: int, tmp_path: Path) -> pl.Trainer:
    plugin = MixedPrecision(
        "16-mixed", device="cpu", scaler=torch.amp.GradScaler("cpu", init_scale=1024.0)
    )
    return pl.Trainer(
        max_epochs=1,
        limit_train_batches=steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        plugins=[plugin],
        default_root_dir=tmp_path,
    )


def _data(steps: int) -> DataLoader:
    data = [{"image": torch.randn(3, 1, 1)} for _ in range(4 * steps)]
    return DataLoader(data, batch_size=4, collate_fn=collate)


def test_each_optimiser_keeps_its_own_grad_scaler(tmp_path: Path) -> None:
    torch.manual_seed(0)
    task = OverflowingG()
    g_before = task.generator.weight.detach().clone()
    trainer = _trainer(1, tmp_path)
    trainer.fit(task, _data(1))
    scalers = task._grad_scalers
    assert set(scalers) == {"G", "D"} and scalers["G"] is not scalers["D"]
    # G overflowed: its step was skipped and its scale halved; D's scale is untouched
    assert torch.equal(task.generator.weight.detach(), g_before)
    assert scalers["G"].get_scale() == 1024.0 / 2
    assert scalers["D"].get_scale() == 1024.0


def test_clipping_sees_unscaled_gradients(tmp_path: Path) -> None:
    torch.manual_seed(0)
    task = ToyTask(n_critic=1, clip_g=0.5, clip_d=0.5)
    _trainer(3, tmp_path).fit(task, _data(3))
    # norms recorded after the base class clipped and the step's unscaling: had the clip
    # acted on scaled gradients (x 1024) they would end at 0.5 / 1024 after unscaling
    assert task.grad_norms and max(task.grad_norms) <= 0.5 + 1e-4
    assert min(task.grad_norms) > 1e-3


def test_grad_scalers_are_checkpointed_and_restored(tmp_path: Path) -> None:
    torch.manual_seed(0)
    task = OverflowingG()
    trainer = _trainer(1, tmp_path)
    trainer.fit(task, _data(1))
    path = tmp_path / "last.ckpt"
    trainer.save_checkpoint(path, weights_only=False)
    saved = torch.load(path, weights_only=False)["grad_scalers"]
    assert saved["G"]["scale"] == task._grad_scalers["G"].get_scale()
    assert saved["G"]["scale"] == 512.0  # halved by the overflow, not the initial 1024
    resumed = CalmG(n_critic=1)  # finite gradients: one step leaves the scales as they start
    resumed.on_load_checkpoint({"grad_scalers": saved})
    _trainer(1, tmp_path).fit(resumed, _data(1))
    assert resumed._grad_scalers["G"].get_scale() == 512.0
    assert resumed._grad_scalers["D"].get_scale() == saved["D"]["scale"] == 1024.0


def test_full_precision_turns_autocast_off() -> None:
    task = ToyTask()
    x = torch.randn(2, 2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert task.generator(x).dtype == torch.bfloat16
        with task.full_precision():
            assert task.generator(x).dtype == torch.float32


PRECISION_MODELS = ["spade", "pix2pixhd", "biggan", "stargan", "stylegan2", "attngan"]
# (attngan: debug=smoke sets model.allow_untrained_damsm=true and the tiny sizes of
# conf/debug_model/smoke_attngan.yaml)


def test_every_model_trains_finite_in_bf16_mixed(tmp_path: Path) -> None:
    """Each model's smoke run under bf16 autocast: every logged loss term stays finite.

    (fp16 needs CUDA; on a GPU `trainer.precision=16-mixed` takes the same code path with the
    per-optimiser GradScalers tested above.)"""
    import csv
    import math

    from tests.conftest import run_cli

    result = run_cli(
        "ganzoo.train",
        "-m",
        f"model={','.join(PRECISION_MODELS)}",
        "debug=smoke",
        "trainer.precision=bf16-mixed",
        "logger=csv",
        "callbacks.samples.every_n_iterations=0",
        f"paths.root_dir={tmp_path}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = sorted((tmp_path / "outputs" / "multirun").glob("*/*/metrics.csv"))
    assert len(runs) == len(PRECISION_MODELS)
    for path in runs:
        rows = list(csv.DictReader(path.open()))
        assert len(rows) == 4, path
        losses = [float(v) for r in rows for k, v in r.items() if k.startswith("loss/") and v]
        assert losses and all(math.isfinite(v) for v in losses), path
