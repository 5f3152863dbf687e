"""The training progress bar: iterations with the main losses, and a summary line at the end.

Lightning's bar shows only values logged with ``prog_bar=True``; ganzoo's tasks log every
loss term (``loss/<phase>/<term>``, for metrics.csv). This bar shows each phase's total
(``G``, ``D``, ``G_reg``, ...) and the latest metrics, and prints the same values once when
training ends (with `metrics=...`, the last evaluation's numbers).
"""

from __future__ import annotations

import sys
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import TQDMProgressBar


def main_values(metrics: dict[str, Any]) -> dict[str, float]:
    """{phase: total} of every `loss/<phase>/total`, then {name: value} of `metrics/<name>`."""
    values: dict[str, float] = {}
    for key, value in metrics.items():
        parts = key.split("/")
        if len(parts) == 3 and parts[0] == "loss" and parts[2] == "total":
            values[parts[1]] = float(value)
    for key, value in metrics.items():
        if key.startswith("metrics/"):
            values[key.split("/", 1)[1]] = float(value)
    return values


class LossProgressBar(TQDMProgressBar):
    """Lightning's tqdm bar with each phase's total loss (no version number)."""

    def get_metrics(self, trainer: pl.Trainer, pl_module: Any) -> dict[str, Any]:
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)
        items.update({k: f"{v:.3g}" for k, v in main_values(trainer.callback_metrics).items()})
        return items

    def on_train_end(self, trainer: pl.Trainer, pl_module: Any) -> None:
        super().on_train_end(trainer, pl_module)
        summary(trainer, pl_module)


def summary(trainer: pl.Trainer, pl_module: Any) -> None:
    """One line on stderr (rank 0): the iteration reached and the main losses and metrics."""
    if not trainer.is_global_zero:
        return
    values = main_values(trainer.callback_metrics)
    shown = ", ".join(f"{k} {v:.4g}" for k, v in values.items()) or "nothing logged"
    it = int(getattr(pl_module, "iteration", trainer.global_step))
    print(f"ganzoo: iteration {it}: {shown}", file=sys.stderr, flush=True)


class Summary(pl.Callback):
    """Only the summary line (when the progress bar is off)."""

    def on_train_end(self, trainer: pl.Trainer, pl_module: Any) -> None:
        summary(trainer, pl_module)


def progress_bar(enabled: bool) -> pl.Callback:  # trainer.enable_progress_bar
    """The bar when the trainer shows one (Lightning refuses a bar callback otherwise)."""
    return LossProgressBar() if enabled else Summary()
