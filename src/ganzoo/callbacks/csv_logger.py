"""A CSV metric log that holds each iteration once, across crashes and resumes.

Lightning's CSVLogger deletes `metrics.csv` when its folder already holds files, which is
every resumed run. This one appends to the file and keeps its header, and keeps it in step
with the checkpoints (ganzoo.callbacks.checkpoint):

- a resumed run first cuts the file back to the iteration of the checkpoint it continues
  (`keep_through`): rows a crashed run wrote after that checkpoint are logged again by the
  resumed run, so none appears twice;
- a checkpoint is written only after the row of the iteration it covers (`write_row_ahead`:
  Lightning itself logs that row after the callbacks' on_train_batch_end, where checkpoints
  are saved), so a run killed right after a checkpoint does not lose that row.

Every row also gets a `time` column: wall-clock seconds the run has spent so far, summed over
its sessions (a resumed run continues from the last kept row's `time`; the pause between
sessions is not counted), so runs can be compared against wall time (`python -m ganzoo.compare`).
"""

from __future__ import annotations

import csv
import os
import time
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter
from pytorch_lightning.loggers.logger import rank_zero_experiment
from pytorch_lightning.utilities.rank_zero import rank_zero_only


class _AppendingWriter(ExperimentWriter):
    def __init__(self, log_dir: str) -> None:
        self._time_offset = 0.0  # seconds the earlier sessions of this run took
        self._ahead: tuple[int, Any] | None = None  # (step, iteration) of a row written early
        super().__init__(log_dir)
        self._started = time.monotonic()

    def _check_log_dir_exists(self) -> None:
        if os.path.isfile(self.metrics_file_path):
            header, rows = self._read()
            self._time_offset = _last_time(rows)
            self.metrics_keys = sorted(header)
            if header != self.metrics_keys:  # keep the file's columns in the order we write
                self._rewrite_with_new_header(self.metrics_keys)

    def _read(self) -> tuple[list[str], list[dict[str, str]]]:
        with open(self.metrics_file_path, newline="") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            return list(reader.fieldnames or []), rows

    def keep_through(self, iteration: int) -> None:
        """Drop the rows past `iteration` (loss rows by their `iteration`, metric rows by their
        `step`, which is the iteration they evaluated), atomically."""
        self.save()
        if not os.path.isfile(self.metrics_file_path):
            return
        header, rows = self._read()
        kept = [r for r in rows if _row_iteration(r) <= iteration]
        self._started = time.monotonic()
        self._time_offset = _last_time(kept)
        if len(kept) == len(rows):
            return
        tmp = f"{self.metrics_file_path}.tmp"
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=header)
            writer.writeheader()
            writer.writerows(kept)
        os.replace(tmp, self.metrics_file_path)

    def log_metrics(self, metrics_dict: dict[str, Any], step: int | None = None) -> None:
        if self._ahead is not None and self._ahead == (step, metrics_dict.get("iteration")):
            self._ahead = None  # this row was written before the checkpoint that covers it
            return
        elapsed = self._time_offset + time.monotonic() - self._started
        super().log_metrics({**metrics_dict, "time": round(elapsed, 3)}, step)


def _row_iteration(row: dict[str, str]) -> float:
    value = row.get("iteration") or row.get("step") or "0"
    return float(value)


def _last_time(rows: list[dict[str, str]]) -> float:
    return max((float(r["time"]) for r in rows if r.get("time")), default=0.0)


class ResumableCSVLogger(CSVLogger):
    """CSVLogger writing `<save_dir>/<name>/<version>/metrics.csv`, appending on resume."""

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:  # type: ignore[override]
        if self._experiment is None:
            os.makedirs(self.root_dir or ".", exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment  # type: ignore[return-value]

    @rank_zero_only
    def keep_through(self, iteration: int) -> None:
        """Cut metrics.csv back to the rows of iterations <= `iteration` (a resumed run's start)."""
        writer = self.experiment
        assert isinstance(writer, _AppendingWriter)
        writer.keep_through(iteration)

    @rank_zero_only
    def write_row_ahead(self, trainer: pl.Trainer) -> None:
        """Write now the row Lightning will log for the running iteration (if it logs one at
        this step), and drop Lightning's own copy of it when it comes."""
        connector = trainer._logger_connector  # noqa: SLF001 - the row Lightning is about to log
        if not connector.should_update_logs:
            return
        metrics: dict[str, Any] = {k: float(v) for k, v in connector.metrics["log"].items()}
        if not metrics:
            return
        metrics.setdefault("epoch", trainer.current_epoch)
        step = trainer.fit_loop.epoch_loop._batches_that_stepped  # noqa: SLF001 - Lightning's step
        writer = self.experiment
        assert isinstance(writer, _AppendingWriter)
        self.log_metrics(metrics, step)
        self.save()
        writer._ahead = (step, metrics.get("iteration"))
