"""Where and from what code a run ran: <run_dir>/run_info.json and every logger's config.

The record answers "which commit, was the tree clean, on what machine, with which versions"
for every number a run produces. `python -m ganzoo.compare` shows it next to the metrics; W&B
shows it as the config entry `run_info`. A resumed run appends its session to `sessions`
(the top-level fields describe the latest session).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

SOURCE_DIR = Path(__file__).resolve().parent


def _git(*args: str) -> str | None:
    """Output of a git command run in ganzoo's source tree, None when git or the repo is absent."""
    try:
        proc = subprocess.run(
            ["git", *args], capture_output=True, text=True, cwd=SOURCE_DIR, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def git_state() -> dict[str, Any]:
    """Commit, branch and dirty flag (uncommitted changes to tracked files) of ganzoo's source."""
    commit = _git("rev-parse", "HEAD")
    if commit is None:
        return {"git_commit": "unknown", "git_branch": None, "git_dirty": None}
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "git_commit": commit,
        "git_branch": _git("rev-parse", "--abbrev-ref", "HEAD"),
        "git_dirty": None if status is None else bool(status),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def machine() -> dict[str, Any]:
    """Host, CPU, GPUs and the versions of the software that matters for the numbers."""
    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return {
        "host": platform.node(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "gpus": gpus,
        "cuda": torch.version.cuda if gpus else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "lightning": pl.__version__,
        "ganzoo": _version("ganzoo"),
        "wandb": _version("wandb"),
    }


def collect() -> dict[str, Any]:
    """This session's record: time (UTC), command line, git state, machine."""
    return {
        "started_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
        **git_state(),
        **machine(),
    }


class RunInfo(pl.Callback):
    """At the start of fit (rank 0) writes run_info.json and logs it as the hparam `run_info`."""

    def __init__(self, run_dir: str) -> None:  # <run_dir>/run_info.json
        self.path = Path(run_dir) / "run_info.json"
        self.info: dict[str, Any] = {}

    def on_fit_start(self, trainer: pl.Trainer, pl_module: Any) -> None:
        if not trainer.is_global_zero:
            return
        session = {**collect(), "world_size": trainer.world_size, "num_nodes": trainer.num_nodes}
        sessions = []
        if self.path.is_file():
            sessions = list(json.loads(self.path.read_text()).get("sessions", []))
        self.info = {**session, "sessions": [*sessions, session]}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.info, indent=2) + "\n")
        tmp.replace(self.path)
        for logger in trainer.loggers:
            logger.log_hyperparams({"run_info": session})
