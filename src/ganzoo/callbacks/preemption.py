"""Signals: finish the iteration, save a resumable checkpoint, then stop (or requeue).

Ctrl-C (SIGINT) and SIGTERM (`kill`, a scheduler's cancel) stop a run at the end of the
iteration that is running: PreemptionCheckpoint writes checkpoints/last.ckpt (and iter_N.ckpt)
of that iteration and exits with status 128 + the signal's number (130, 143), so that a rerun
of the same command continues exactly there. A second Ctrl-C stops at once, without saving.

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
    """Defers SLURM's warning signals and the stop signals to the end of the running iteration
    and saves there; then hands over to the requeue handler, or exits."""

    def __init__(
        self,
        signals: Sequence[str],  # signals whose (Python) handlers requeue the job, e.g. SIGUSR2
        stop_signals: Sequence[str],  # signals that save and stop the run, e.g. SIGINT, SIGTERM
    ) -> None:
        self.signals = [_signal(s) for s in signals]
        self.stop_signals = [_signal(s) for s in stop_signals]
        self._replaced: dict[int, Handler] = {}  # signal -> the handler stood in for
        self._pending: int | None = None  # the signal received, not yet handed over
        self._stops: dict[int, Any] = {}  # stop signal -> its handler before training
        self._stop: int | None = None  # the stop signal received

    def on_fit_start(self, trainer: pl.Trainer, pl_module: Any) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be set from the main thread
        for sig in self.signals:
            current = signal.getsignal(sig)
            if callable(current):
                self._replaced[sig] = current
                signal.signal(sig, self._defer)

    def on_train_start(self, trainer: pl.Trainer, pl_module: Any) -> None:
        """Stand in for the stop signals' handlers (after Lightning has set its own)."""
        self._stop = None
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in self.stop_signals:
            if sig not in self._replaced:
                self._stops[sig] = signal.getsignal(sig)
                signal.signal(sig, self._request_stop)

    def _request_stop(self, signum: int, frame: FrameType | None) -> None:
        if self._stop is not None and signum == signal.SIGINT:
            self._restore_stops()
            raise KeyboardInterrupt  # a second Ctrl-C: stop at once
        self._stop = signum
        print(
            f"ganzoo: {signal.Signals(signum).name} received: saving checkpoints/last.ckpt at "
            "the end of this iteration, then stopping (Ctrl-C again stops at once, unsaved)",
            file=sys.stderr,
            flush=True,
        )

    def _restore_stops(self) -> None:
        stops, self._stops = self._stops, {}
        for sig, handler in stops.items():
            if signal.getsignal(sig) == self._request_stop:
                signal.signal(sig, handler)

    def _defer(self, signum: int, frame: FrameType | None) -> None:
        self._pending = signum
        print(
            f"ganzoo: {signal.Signals(signum).name} received: saving at the end of this "
            "iteration, then requeueing",
            file=sys.stderr,
            flush=True,
        )

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: Any, *args: Any) -> None:
        self._requeue_if_signalled(trainer, pl_module)
        self._stop_if_signalled(trainer, pl_module)

    def _stop_if_signalled(self, trainer: pl.Trainer, pl_module: Any) -> None:
        if not self._stops:
            return
        stop = self._stop is not None
        if trainer.world_size > 1:  # a signal may reach the processes in different iterations
            stop = bool(trainer.strategy.reduce_boolean_decision(stop, all=False))
        if not stop:
            return
        signum = self._stop if self._stop is not None else int(signal.SIGTERM)
        saved = self.save(trainer, pl_module)
        self._restore_stops()
        if trainer.is_global_zero:
            print(
                f"ganzoo: stopped by {signal.Signals(signum).name} after iteration "
                f"{int(pl_module.iteration)}; saved {saved}: rerun the same command to continue",
                file=sys.stderr,
                flush=True,
            )
        raise SystemExit(128 + signum)

    def _requeue_if_signalled(self, trainer: pl.Trainer, pl_module: Any) -> None:
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

    def save(self, trainer: pl.Trainer, pl_module: Any) -> str:
        """checkpoints/last.ckpt (and iter_N.ckpt) of the iteration just finished; what it wrote."""
        writers = [cb for cb in trainer.callbacks if isinstance(cb, PeriodicCheckpoint)]  # type: ignore[attr-defined]
        if not writers:
            print("ganzoo: no checkpoint callback: nothing saved", file=sys.stderr)
            return "nothing (callbacks.checkpoint=null)"
        writer, it = writers[0], int(pl_module.iteration)
        last = writer.dirpath / "last.ckpt"
        if writer.good != (last, it):  # not saved yet at this iteration
            writer.save(trainer, pl_module, f"iter_{it:07d}.ckpt")
        return str(last)

    def on_train_end(self, trainer: pl.Trainer, pl_module: Any) -> None:
        self._restore_stops()  # the run is complete: a signal now interrupts the final steps

    def on_exception(self, trainer: pl.Trainer, pl_module: Any, exception: BaseException) -> None:
        self._restore_stops()
        self._hand_over()

    def teardown(self, trainer: pl.Trainer, pl_module: Any, stage: str) -> None:
        self._restore_stops()
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
