"""Stop a run whose losses are no longer finite, naming the loss, the iteration and the
checkpoint that holds the last finite state."""

from __future__ import annotations

import math
from typing import Any

import pytorch_lightning as pl

from ganzoo.callbacks.checkpoint import PeriodicCheckpoint
from ganzoo.core.errors import GanzooError


class NonFiniteLossError(GanzooError):
    """A logged loss became NaN or infinite."""


class NanGuard(pl.Callback):
    """Raises after the step whose logged losses contain NaN/inf.

    Checkpoints are never written from a non-finite state (PeriodicCheckpoint checks every
    tensor before it saves), so the checkpoint the message names can be resumed, e.g. with
    another precision or learning rate.
    """

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: Any, *args: Any) -> None:
        for name, value in trainer.callback_metrics.items():
            if name.startswith("loss/") and not math.isfinite(float(value)):
                raise NonFiniteLossError(
                    f"{name} is {float(value)} at iteration {int(pl_module.iteration)}; "
                    f"{resume_hint(trainer)}"
                )


def resume_hint(trainer: pl.Trainer) -> str:
    writers = [cb for cb in trainer.callbacks if isinstance(cb, PeriodicCheckpoint)]  # type: ignore[attr-defined]
    if not writers:
        return "no checkpoint is written (callbacks.checkpoint=null)"
    return writers[0].resume_hint()
