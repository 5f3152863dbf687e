"""GANTask behaviour on real SPADE runs: determinism, resume equivalence, EMA, learning."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch

from ganzoo.cli.build import train

FAST = ["debug=smoke", "logger=csv", "trainer.enable_progress_bar=false", "callbacks.samples=null"]


class Recorder(pl.Callback):
    """Keeps every logged loss of every iteration."""

    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: Any, *args: Any) -> None:
        self.rows.append(
            {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("loss/")}
        )


class CrashAt(pl.Callback):
    """Raises after iteration n (after the checkpoint callback has written it)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: Any, *args: Any) -> None:
        if int(pl_module.iteration) == self.n:
            raise RuntimeError("simulated crash")


def _train_with(cfg, *callbacks: pl.Callback, monkeypatch: pytest.MonkeyPatch) -> None:
    import ganzoo.cli.build as build

    original = build.build_callbacks
    monkeypatch.setattr(build, "build_callbacks", lambda c: original(c) + list(callbacks))
    try:
        train(cfg)
    finally:
        monkeypatch.undo()


def test_seeded_runs_are_deterministic(make_cfg, tmp_path: Path, monkeypatch) -> None:
    runs = []
    for name in ("a", "b"):
        rec = Recorder()
        cfg = make_cfg(*FAST, "steps=3", run_dir=tmp_path / name)
        _train_with(cfg, rec, monkeypatch=monkeypatch)
        runs.append(rec.rows)
    assert len(runs[0]) == 3 and runs[0] == runs[1]


def test_resume_after_crash_matches_straight_run(make_cfg, tmp_path: Path, monkeypatch) -> None:
    common = [*FAST, "steps=6", "callbacks.checkpoint.every_n_iterations=3"]
    straight = Recorder()
    _train_with(make_cfg(*common, run_dir=tmp_path / "straight"), straight, monkeypatch=monkeypatch)

    first = Recorder()
    cfg = make_cfg(*common, run_dir=tmp_path / "resumed")
    with pytest.raises(RuntimeError, match="simulated crash"):
        _train_with(cfg, first, CrashAt(3), monkeypatch=monkeypatch)
    assert (tmp_path / "resumed" / "checkpoints" / "last.ckpt").is_file()
    second = Recorder()
    _train_with(make_cfg(*common, run_dir=tmp_path / "resumed"), second, monkeypatch=monkeypatch)

    assert len(straight.rows) == 6 and len(first.rows) == 3 and len(second.rows) == 3
    # the metric log keeps the rows written before the crash (Lightning's CSVLogger deletes them);
    # the crashed iteration's row was written before its checkpoint (CrashAt raises after both)
    with (tmp_path / "resumed" / "metrics.csv").open() as f:
        logged = [float(r["iteration"]) for r in csv.DictReader(f) if r.get("loss/G/total")]
    assert logged == [1, 2, 3, 4, 5, 6]
    for a, b in zip(straight.rows, first.rows + second.rows, strict=True):
        assert a.keys() == b.keys()
        for k in a:
            assert a[k] == pytest.approx(b[k], rel=1e-5, abs=1e-6), k


def test_raising_steps_extends_a_finished_run_as_if_it_had_run_straight(
    make_cfg, tmp_path: Path, monkeypatch
) -> None:
    constant_lr = ["optim.decay_start=1.0", "optim.decay_end=1.0"]  # no schedule to stretch
    straight = Recorder()
    cfg = make_cfg(*FAST, *constant_lr, "steps=6", run_dir=tmp_path / "straight")
    _train_with(cfg, straight, monkeypatch=monkeypatch)
    first, second = Recorder(), Recorder()
    run = tmp_path / "extended"
    _train_with(
        make_cfg(*FAST, *constant_lr, "steps=3", run_dir=run), first, monkeypatch=monkeypatch
    )
    _train_with(
        make_cfg(*FAST, *constant_lr, "steps=6", run_dir=run), second, monkeypatch=monkeypatch
    )
    assert len(first.rows) == 3 and len(second.rows) == 3
    for a, b in zip(straight.rows, first.rows + second.rows, strict=True):
        for k in a:
            assert a[k] == pytest.approx(b[k], rel=1e-5, abs=1e-6), k
    ckpt = torch.load(run / "checkpoints/last.ckpt", weights_only=True)
    assert int(ckpt["state_dict"]["iteration"]) == 6 and ckpt["ganzoo_config"]["steps"] == 6
    from ganzoo.core.errors import ConfigError

    with pytest.raises(ConfigError, match="at iteration 6, past steps=4; set steps >= 6"):
        train(make_cfg(*FAST, *constant_lr, "steps=4", run_dir=run))


def test_checkpoint_restores_state_and_loads_weights_only(make_cfg, tmp_path: Path) -> None:
    cfg = make_cfg(*FAST, "steps=4", run_dir=tmp_path / "run")
    train(cfg)
    ckpt = torch.load(tmp_path / "run/checkpoints/last.ckpt", weights_only=True)
    state = ckpt["state_dict"]
    assert int(state["iteration"]) == 4
    assert any(k.startswith("generator_ema.") for k in state)
    assert ckpt["ganzoo_config"]["steps"] == 4
    assert len(ckpt["optimizer_states"]) == 2
    assert set(ckpt["rng_states"]) == {"torch", "numpy", "python"}
    # the EMA generator differs from G after training but follows it
    g = {k[len("generator.") :]: v for k, v in state.items() if k.startswith("generator.")}
    e = {k[len("generator_ema.") :]: v for k, v in state.items() if k.startswith("generator_ema.")}
    assert g.keys() == e.keys()
    assert any(not torch.equal(g[k], e[k]) for k in g if g[k].is_floating_point())


def test_global_batch_splits_across_processes_or_fails_in_one_line(make_cfg) -> None:
    from types import SimpleNamespace

    from ganzoo.cli.build import build_datamodule
    from ganzoo.core.errors import ConfigError

    dm = build_datamodule(make_cfg("data.global_batch_size=12"))
    dm.trainer = SimpleNamespace(world_size=4)  # type: ignore[assignment]
    dm.setup("fit")
    assert dm.batch_size == 3
    dm = build_datamodule(make_cfg("data.global_batch_size=12"))
    dm.trainer = SimpleNamespace(world_size=5)  # type: ignore[assignment]
    with pytest.raises(ConfigError, match="global_batch_size=12 does not divide across 5"):
        dm.setup("fit")
