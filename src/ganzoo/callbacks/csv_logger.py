"""A CSV metric log that survives a resume.

Lightning's CSVLogger deletes `metrics.csv` when its folder already holds files, which is
every resumed run. This one appends to the file and keeps its header; rows are keyed by
`step`, so rows a crashed run wrote after its last checkpoint appear twice, and the later
row of a step is the one the resumed run produced.
"""

from __future__ import annotations

import csv
import os

from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter
from pytorch_lightning.loggers.logger import rank_zero_experiment


class _AppendingWriter(ExperimentWriter):
    def _check_log_dir_exists(self) -> None:
        if os.path.isfile(self.metrics_file_path):
            with open(self.metrics_file_path, newline="") as f:
                header = next(csv.reader(f), [])
            self.metrics_keys = sorted(header)
            if header != self.metrics_keys:  # keep the file's columns in the order we write
                self._rewrite_with_new_header(self.metrics_keys)


class ResumableCSVLogger(CSVLogger):
    """CSVLogger writing `<save_dir>/<name>/<version>/metrics.csv`, appending on resume."""

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:  # type: ignore[override]
        if self._experiment is None:
            os.makedirs(self.root_dir or ".", exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment  # type: ignore[return-value]
