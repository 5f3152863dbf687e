"""Stop a run whose losses are no longer finite, naming the loss and the iteration."""

from __future__ import annotations

import math
from typing import Any

import pytorch_lightning as pl

from ganzoo.core.errors import GanzooError


class NonFiniteLossError(GanzooError):
    """A logged loss became NaN or infinite."""


class NanGuard(pl.Callback):
    """Raises after the step whose logged losses contain NaN/inf.

    The run's last checkpoint stays intact (checkpoints are written atomically), so it
    can be resumed, e.g. with another precision or learning rate.
    """

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: Any, *args: Any) -> None:
        for name, value in trainer.callback_metrics.items():
            if name.startswith("loss/") and not math.isfinite(float(value)):
                raise NonFiniteLossError(
                    f"{name} is {float(value)} at iteration {int(pl_module.iteration)}; "
                    "the last checkpoint is intact: resume with a lower lr or another precision"
                )
