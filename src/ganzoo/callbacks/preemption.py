"""Pre-emption on clusters: finish the iteration, save a resumable checkpoint, then requeue.

SLURM warns a job before stopping it with a signal: submitit (hydra/launcher=submitit_slurm)
asks for USR2 `signal_delay_s` seconds before the time limit, Lightning's SLURM auto-requeue
listens to USR1. Their handlers resubmit the job and exit (submitit) or save a checkpoint
in the middle of whatever runs; either way the iterations since the last periodic
checkpoint are lost, or an iteration is cut between its D and G steps. While training
runs, PreemptionCheckpoint stands in front of those handlers: it notes the signal, lets the
running iteration finish, writes checkpoints/last.ckpt (ganzoo.callbacks.checkpoint), and
only then calls the handler it stood in for. Signals without a Python handler (a plain
run) are left alone. The requeued job runs in the same run dir and, with `resume: true`,
continues from last.ckpt.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any

import pytorch_lightning as pl

from ganzoo.callbacks.checkpoint import PeriodicCheckpoint
from ganzoo.core.errors import ConfigError

Handler = Callable[[int, FrameType | None], Any]


def _signal(name: str) -> signal.Signals:
    try:
        return signal.Signals[name]
    except KeyError:
        valid = ", ".join(s.name for s in signal.Signals)
        raise ConfigError(
            f"unknown signal {name} in callbacks.preemption; valid: {valid}"
        ) from None


class PreemptionCheckpoint(pl.Callback):
    """Defers SLURM's warning signals to the end of the running iteration and saves there."""

    def __init__(
        self,
        signals: Sequence[str],  # signals whose (Python) handlers requeue the job, e.g. SIGUSR2
    ) -> None:
        self.signals = [_signal(s) for s in signals]
        self._replaced: dict[int, Handler] = {}  # signal -> the handler stood in for
        self._pending: int | None = None  # the signal received, not yet handed over

    def on_fit_start(self, trainer: pl.Trainer, pl_module: Any) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be set from the main thread
        for sig in self.signals:
            current = signal.getsignal(sig)
            if callable(current):
                self._replaced[sig] = current
                signal.signal(sig, self._defer)

    def _defer(self, signum: int, frame: FrameType | None) -> None:
        self._pending = signum
        print(
            f"ganzoo: {signal.Signals(signum).name} received: saving at the end of this "
            "iteration, then requeueing",
            file=sys.stderr,
            flush=True,
        )

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: Any, *args: Any) -> None:
        if not self._replaced:
            return
        pending = self._pending is not None
        if trainer.world_size > 1:  # SLURM signals every task, not all in the same iteration
            pending = bool(trainer.strategy.reduce_boolean_decision(pending, all=False))
        if not pending:
            return
        if self._pending is None:
            self._pending = next(iter(self._replaced))
        self.save(trainer, pl_module)
        self._hand_over()

    def save(self, trainer: pl.Trainer, pl_module: Any) -> None:
        """checkpoints/last.ckpt (and iter_N.ckpt) of the iteration just finished."""
        writers = [cb for cb in trainer.callbacks if isinstance(cb, PeriodicCheckpoint)]  # type: ignore[attr-defined]
        if not writers:
            print("ganzoo: no checkpoint callback: nothing saved", file=sys.stderr)
            return
        writers[0].save(trainer, f"iter_{int(pl_module.iteration):07d}.ckpt")

    def on_exception(self, trainer: pl.Trainer, pl_module: Any, exception: BaseException) -> None:
        self._hand_over()

    def teardown(self, trainer: pl.Trainer, pl_module: Any, stage: str) -> None:
        self._hand_over()

    def _hand_over(self) -> None:
        """Put the replaced handlers back; call the one whose signal came (it may exit)."""
        replaced, pending = self._replaced, self._pending
        self._replaced, self._pending = {}, None
        for sig, handler in replaced.items():
            if signal.getsignal(sig) == self._defer:
                signal.signal(sig, handler)
        if pending is not None and pending in replaced:
            replaced[pending](pending, None)
