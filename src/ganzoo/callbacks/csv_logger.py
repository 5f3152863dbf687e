"""A CSV metric log that survives a resume.

Lightning's CSVLogger deletes `metrics.csv` when its folder already holds files, which is
every resumed run. This one appends to the file and keeps its header; rows are keyed by
`step`, so rows a crashed run wrote after its last checkpoint appear twice, and the later
row of a step is the one the resumed run produced.

Every row also gets a `time` column: wall-clock seconds the run has spent so far, summed over
its sessions (a resumed run continues from the file's last `time`; the pause between sessions
is not counted), so runs can be compared against wall time (`python -m ganzoo.compare`).
"""

from __future__ import annotations

import csv
import os
import time
from typing import Any

from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter
from pytorch_lightning.loggers.logger import rank_zero_experiment


class _AppendingWriter(ExperimentWriter):
    def __init__(self, log_dir: str) -> None:
        self._time_offset = 0.0  # seconds the earlier sessions of this run took
        super().__init__(log_dir)
        self._started = time.monotonic()

    def _check_log_dir_exists(self) -> None:
        if os.path.isfile(self.metrics_file_path):
            with open(self.metrics_file_path, newline="") as f:
                reader = csv.DictReader(f)
                header = list(reader.fieldnames or [])
                times = [float(r["time"]) for r in reader if r.get("time")]
            self._time_offset = max(times, default=0.0)
            self.metrics_keys = sorted(header)
            if header != self.metrics_keys:  # keep the file's columns in the order we write
                self._rewrite_with_new_header(self.metrics_keys)

    def log_metrics(self, metrics_dict: dict[str, Any], step: int | None = None) -> None:
        elapsed = self._time_offset + time.monotonic() - self._started
        super().log_metrics({**metrics_dict, "time": round(elapsed, 3)}, step)


class ResumableCSVLogger(CSVLogger):
    """CSVLogger writing `<save_dir>/<name>/<version>/metrics.csv`, appending on resume."""

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:  # type: ignore[override]
        if self._experiment is None:
            os.makedirs(self.root_dir or ".", exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment  # type: ignore[return-value]
