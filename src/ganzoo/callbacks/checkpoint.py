"""Atomic periodic checkpoints: iter_XXXXXX.ckpt every N iterations and last.ckpt."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytorch_lightning as pl


class PeriodicCheckpoint(pl.Callback):
    """Writes full Lightning checkpoints (weights, optimisers, EMA, loops, RNG, config).

    Each file is written to a temporary name and renamed, so a crash never leaves a
    truncated checkpoint; last.ckpt always points at the newest state.
    """

    def __init__(
        self,
        dirpath: str,  # checkpoint folder (<run_dir>/checkpoints)
        every_n_iterations: int,  # period of the numbered checkpoints
    ) -> None:
        self.dirpath = Path(dirpath)
        self.every = every_n_iterations

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: Any, *args: Any) -> None:
        it = int(pl_module.iteration)
        if self.every > 0 and it % self.every == 0:
            self.save(trainer, f"iter_{it:07d}.ckpt")

    def on_train_end(self, trainer: pl.Trainer, pl_module: Any) -> None:
        self._save_atomic(trainer, self.dirpath / "last.ckpt")

    def save(self, trainer: pl.Trainer, name: str) -> None:
        self._save_atomic(trainer, self.dirpath / name)
        self._save_atomic(trainer, self.dirpath / "last.ckpt")

    def _save_atomic(self, trainer: pl.Trainer, path: Path) -> None:
        tmp = path.with_name(f".{path.name}.tmp")
        if trainer.is_global_zero:
            path.parent.mkdir(parents=True, exist_ok=True)
        trainer.save_checkpoint(tmp, weights_only=False)  # full state: resumable
        if trainer.is_global_zero:
            os.replace(tmp, path)
        trainer.strategy.barrier("ganzoo_checkpoint")
