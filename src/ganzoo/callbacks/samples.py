"""Sample grids a person can look at: fixed inputs and latents, EMA generator, PNG files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch

from ganzoo.core.image import grid, save_png
from ganzoo.data.batch import Batch


class SampleGrid(pl.Callback):
    """Every N iterations (and at the end) writes samples/iter_XXXXXXX.png on rank 0.

    Rows are the first `num_samples` items of the sample split with latents drawn once
    from `seed`, so the same row shows the same input across the whole run. Columns
    come from the task's `grid_columns` (e.g. label map | EMA generator | real).
    """

    def __init__(
        self,
        dirpath: str,  # <run_dir>/samples
        every_n_iterations: int,  # period of the grids
        num_samples: int,  # rows per grid
        seed: int,  # seeds the fixed latents
    ) -> None:
        self.dirpath = Path(dirpath)
        self.every = every_n_iterations
        self.num_samples = num_samples
        self.seed = seed
        self._batch: Batch | None = None
        self._latents: torch.Tensor | None = None
        self.last_path: Path | None = None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: Any) -> None:
        if not trainer.is_global_zero:
            return
        self._batch = trainer.datamodule.fixed_batch(self.num_samples)  # type: ignore[attr-defined]
        g = torch.Generator().manual_seed(self.seed)
        self._latents = pl_module.sample_latents(self._batch.size, g)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: Any, *args: Any) -> None:
        it = int(pl_module.iteration)
        if self.every > 0 and it % self.every == 0:
            self.write(trainer, pl_module, it)

    def on_train_end(self, trainer: pl.Trainer, pl_module: Any) -> None:
        self.write(trainer, pl_module, int(pl_module.iteration))

    def write(self, trainer: pl.Trainer, pl_module: Any, iteration: int) -> Path | None:
        if not trainer.is_global_zero or self._batch is None:
            return None
        batch = self._batch.to(pl_module.device)
        latents = None if self._latents is None else self._latents.to(pl_module.device)
        fake = pl_module.sample_ema(batch, latents)
        columns = pl_module.grid_columns(batch, fake)
        image = grid([c for _, c in columns])
        self.last_path = save_png(image, self.dirpath / f"iter_{iteration:07d}.png")
        names = [name for name, _ in columns]  # for ganzoo.compare's column headers
        (self.dirpath / "columns.json").write_text(json.dumps({"columns": names}) + "\n")
        self._log_image(trainer, image, [name for name, _ in columns], iteration)
        return self.last_path

    @staticmethod
    def _log_image(trainer: pl.Trainer, image: np.ndarray, names: list[str], step: int) -> None:
        for logger in trainer.loggers:
            log_image = getattr(logger, "log_image", None)  # WandbLogger has it, CSV does not
            if log_image is not None:
                log_image(key="samples", images=[image], caption=[" | ".join(names)], step=step)
