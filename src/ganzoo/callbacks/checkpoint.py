"""Atomic periodic checkpoints (iter_XXXXXXX.ckpt every N iterations, and last.ckpt), only of
finite state, and the run records that must agree with them (config.yaml, metrics.csv)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from ganzoo.callbacks.csv_logger import ResumableCSVLogger
from ganzoo.core.errors import GanzooError


class NonFiniteStateError(GanzooError):
    """The weights or optimiser state became NaN/inf: nothing is saved from them."""


class CheckpointWriteError(GanzooError):
    """A checkpoint could not be written (disk full, folder gone read-only)."""


class PeriodicCheckpoint(pl.Callback):
    """Writes full Lightning checkpoints (weights, optimisers, EMA, loops, RNG, config).

    Each file is written to a temporary name and renamed, so a crash never leaves a
    truncated checkpoint; last.ckpt always holds the newest saved state. A state with a
    NaN/inf tensor (weights, buffers, optimiser moments) is never saved: the save raises
    NonFiniteStateError instead, naming the checkpoint that holds the last finite state.
    Before a save, the CSV row of the iteration it covers is written (ResumableCSVLogger),
    so that metrics.csv never lacks a row a checkpoint covers.
    """

    def __init__(
        self,
        dirpath: str,  # checkpoint folder (<run_dir>/checkpoints)
        every_n_iterations: int,  # period of the numbered checkpoints
    ) -> None:
        self.dirpath = Path(dirpath)
        self.every = every_n_iterations
        self.good: tuple[Path, int] | None = None  # the checkpoint of the last finite state
        self.start: tuple[Path, int] | None = None  # the checkpoint this session resumed

    def on_train_start(self, trainer: pl.Trainer, pl_module: Any) -> None:
        resumed = trainer.ckpt_path
        self.good = None if resumed is None else (Path(resumed), int(pl_module.iteration))
        self.start = self.good  # where this session started

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: Any, *args: Any) -> None:
        it = int(pl_module.iteration)
        if self.every > 0 and it % self.every == 0:
            self.save(trainer, pl_module, f"iter_{it:07d}.ckpt")

    def on_train_end(self, trainer: pl.Trainer, pl_module: Any) -> None:
        self._check_finite(trainer, pl_module)
        self._save_atomic(trainer, self.dirpath / "last.ckpt")
        self.good = (self.dirpath / "last.ckpt", int(pl_module.iteration))

    def save(self, trainer: pl.Trainer, pl_module: Any, name: str) -> None:
        """<name> and last.ckpt of the iteration just run (its CSV row written first)."""
        self._check_finite(trainer, pl_module)
        for logger in trainer.loggers:
            if isinstance(logger, ResumableCSVLogger):
                logger.write_row_ahead(trainer)
        self._save_atomic(trainer, self.dirpath / name)
        self._save_atomic(trainer, self.dirpath / "last.ckpt")
        self.good = (self.dirpath / "last.ckpt", int(pl_module.iteration))

    def resume_hint(self) -> str:
        """Which checkpoint holds the last finite state, and what to do (for error messages)."""
        if self.good is None:
            return (
                "no checkpoint of this run holds a finite state: start over (resume=false) "
                "with a lower lr or another precision"
            )
        path, iteration = self.good
        how = (
            "rerun with a lower lr or another precision (resume=true continues from it)"
            if path.parent == self.dirpath
            else f"resume with ckpt_path={path} and a lower lr or another precision"
        )
        hint = f"{path} (iteration {iteration}) holds the last finite state: {how}"
        if self.start is not None and self.start[1] < iteration:  # finite is not always sane
            kept = self.dirpath / f"iter_{self.start[1]:07d}.ckpt"
            if kept.is_file():
                hint += (
                    f"; if that diverges too, ckpt_path={kept} continues from where this "
                    f"session started (iteration {self.start[1]})"
                )
        return hint

    def _check_finite(self, trainer: pl.Trainer, pl_module: Any) -> None:
        bad, total = nonfinite_tensors(pl_module, trainer.optimizers)
        if bad:
            shown = ", ".join(bad[:3]) + (", ..." if len(bad) > 3 else "")
            raise NonFiniteStateError(
                f"at iteration {int(pl_module.iteration)}, {len(bad)} of {total} state tensors "
                f"are NaN/inf ({shown}): not saved; {self.resume_hint()}"
            )

    def _save_atomic(self, trainer: pl.Trainer, path: Path) -> None:
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            if trainer.is_global_zero:
                path.parent.mkdir(parents=True, exist_ok=True)
            trainer.save_checkpoint(tmp, weights_only=False)  # full state: resumable
            if trainer.is_global_zero:
                os.replace(tmp, path)
        except OSError as err:
            tmp.unlink(missing_ok=True)
            free = shutil.disk_usage(path.parent).free / 2**20 if path.parent.is_dir() else 0.0
            raise CheckpointWriteError(
                f"could not write {path}: {err.strerror} ({free:.1f} MB free there); "
                f"{self.resume_hint()}"
            ) from None
        trainer.strategy.barrier("ganzoo_checkpoint")


def nonfinite_tensors(module: torch.nn.Module, optimizers: list[Any]) -> tuple[list[str], int]:
    """(names of the floating-point tensors with a NaN/inf, number of such tensors checked)
    among the module's state (weights, buffers, EMA) and the optimisers' states."""
    tensors = {k: v for k, v in module.state_dict().items() if _floating(v)}
    for i, opt in enumerate(optimizers):
        for p, state in enumerate(opt.state.values()):
            for key, value in state.items():
                if _floating(value):
                    tensors[f"optimizer{i}.state.{p}.{key}"] = value
    if not tensors:
        return [], 0
    finite = torch.stack([torch.isfinite(t).all() for t in tensors.values()])
    if bool(finite.all()):  # one device sync
        return [], len(tensors)
    return [k for k, ok in zip(tensors, finite.tolist(), strict=True) if not ok], len(tensors)


def _floating(value: Any) -> bool:
    return isinstance(value, torch.Tensor) and value.is_floating_point()


class RunStart(pl.Callback):
    """What happens once a run has started (its checkpoint, if any, restored), so that the run
    dir's records agree with its checkpoints and the config is what runs:

    - config.yaml is written (a start that fails earlier leaves the previous one, which the
      checkpoints match);
    - metrics.csv and metrics.jsonl are cut back to the restored iteration (rows a crashed
      run wrote after its last checkpoint are logged again by this run);
    - a resumed run's optimisers take their settings (lr, betas, eps) from the config, not
      from the checkpoint (e.g. a lower lr after a NaN), when the two differ.
    """

    HYPER = ("initial_lr", "betas", "eps")  # GANTask sets lr = initial_lr x the schedule

    def __init__(self, config_path: Path, config_yaml: str) -> None:
        self.config_path = config_path
        self.config_yaml = config_yaml
        self._configured: list[list[dict[str, Any]]] = []

    def on_fit_start(self, trainer: pl.Trainer, pl_module: Any) -> None:
        # optimisers exist, their checkpoint state is not loaded yet
        self._configured = [
            [{k: g[k] for k in self.HYPER if k in g} for g in opt.param_groups]
            for opt in trainer.optimizers
        ]

    def on_train_start(self, trainer: pl.Trainer, pl_module: Any) -> None:
        if trainer.ckpt_path is not None:
            self._apply_configured(trainer)
        if not trainer.is_global_zero:
            return
        tmp = self.config_path.with_name(f".{self.config_path.name}.tmp")
        tmp.write_text(self.config_yaml)
        os.replace(tmp, self.config_path)
        iteration = int(pl_module.iteration)
        for logger in trainer.loggers:
            if isinstance(logger, ResumableCSVLogger):
                logger.keep_through(iteration)
        _keep_evaluations_through(self.config_path.parent / "metrics.jsonl", iteration)

    def _apply_configured(self, trainer: pl.Trainer) -> None:
        changes = []
        for i, (opt, groups) in enumerate(zip(trainer.optimizers, self._configured, strict=False)):
            for group, configured in zip(opt.param_groups, groups, strict=False):
                if "initial_lr" not in configured or all(
                    _same(group.get(k), v) for k, v in configured.items()
                ):
                    continue
                old = group["initial_lr"]
                factor = group["lr"] / old if old else 1.0  # the schedule's factor now
                group.update(configured)
                group["lr"] = configured["initial_lr"] * factor
                if not _same(old, configured["initial_lr"]):
                    changes.append(f"optimizer {i} lr {old:g} -> {configured['initial_lr']:g}")
        if changes and trainer.is_global_zero:
            shown = "; ".join(dict.fromkeys(changes))
            print(f"ganzoo: optimiser settings from the config, not the checkpoint: {shown}")


def _keep_evaluations_through(path: Path, iteration: int) -> None:
    """Drop the metric evaluations (callbacks.metrics) of iterations past `iteration`."""
    if not path.is_file():
        return
    lines = path.read_text().splitlines(keepends=True)
    kept = [line for line in lines if _evaluated_at(line) <= iteration]
    if len(kept) < len(lines):
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text("".join(kept))
        os.replace(tmp, path)


def _evaluated_at(line: str) -> float:
    try:
        return float(json.loads(line)["iteration"])
    except (ValueError, KeyError, TypeError):
        return 0.0  # not an evaluation record: kept


def _same(a: Any, b: Any) -> bool:
    return bool(a == b) if not isinstance(a, (tuple, list)) else tuple(a) == tuple(b)
