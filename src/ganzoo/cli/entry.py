"""Runs a Hydra entry point with ganzoo's resolvers, pre-flight checks and one-line errors.

A single run that meets a GanzooError prints `error: <one line>` and exits with status 2.

Multiruns (`-m`) isolate their jobs: a job that fails (any exception) prints
`error: job N (<its overrides>) failed: <one line>`, leaves its traceback in
`<job dir>/error.txt` and releases its memory, and the sweep goes on with the other jobs.
At the end Hydra repeats the first failure and the multirun exits with status 1. A
`SweepConfigError` (e.g. `optimized_metric` names a value the run does not log), which
every job would meet again, stops the whole sweep at once with status 2.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import CompactHydraException
from hydra.types import RunMode
from omegaconf import DictConfig

from ganzoo.cli import resolvers
from ganzoo.cli.preflight import CONFIG_DIR, check_overrides
from ganzoo.core.errors import ConfigError, GanzooError

QUIET = [
    "hydra.output_subdir=null",
    "hydra.run.dir=.",
    "hydra/job_logging=none",
    "hydra/hydra_logging=none",
]


# modules whose FutureWarning / DeprecationWarning a user cannot act on (quiet_libraries)
LIBRARIES = (
    r"(torch|torchvision|pytorch_lightning|lightning_fabric|lightning_utilities|wandb|hydra"
    r"|omegaconf)\b"
)


class SweepConfigError(ConfigError):
    """A config error that every job of a sweep would meet again: it stops the whole sweep."""


class JobFailed(CompactHydraException):
    """One job of a multirun failed (one line; Hydra prints it as is, without a traceback)."""


# conf/hydra/launcher/{joblib,submitit_slurm}.yaml keep the plugins' names (and all their fields),
# so Hydra checks them against the plugins' schemas and warns that this matching is deprecated
warnings.filterwarnings("ignore", message=r"(?s).*is validated against ConfigStore schema")


def quiet_libraries() -> None:
    """Cut the libraries' banners and deprecation noise (GANZOO_VERBOSE=1 keeps them): W&B's
    start and sync banners (offline runs sync with `wandb sync <run_dir>/wandb/...`),
    Lightning's tips and "GPU available" lines, FutureWarning / DeprecationWarning raised
    inside torch, Lightning, W&B, Hydra or OmegaConf (not ganzoo's own)."""
    if os.environ.get("GANZOO_VERBOSE", "0") not in ("", "0"):
        return
    os.environ.setdefault("WANDB_SILENT", "true")
    for name in (
        "pytorch_lightning.utilities.rank_zero",
        "lightning_fabric.utilities.rank_zero",
        "lightning.pytorch.utilities.rank_zero",
    ):
        logging.getLogger(name).setLevel(logging.WARNING)
    for category in (FutureWarning, DeprecationWarning):
        warnings.filterwarnings("ignore", category=category, module=LIBRARIES)


def run(config_name: str, fn: Callable[[DictConfig], Any], quiet: bool = False) -> None:
    """`python -m ganzoo.<entry>`: check the overrides, then let Hydra compose and call fn.

    quiet: no run dir, no logging (for entries that only print, like ganzoo.info).
    """
    resolvers.register()
    quiet_libraries()
    if quiet:
        sys.argv.extend(QUIET)
    try:
        check_overrides(sys.argv[1:], config_name)
    except GanzooError as err:
        _fail(err)

    @hydra.main(config_path=str(CONFIG_DIR), config_name=config_name, version_base="1.3")
    def _main(cfg: DictConfig) -> Any:
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            return sweep_job(fn, cfg)
        try:
            return fn(cfg)
        except GanzooError as err:
            _fail(err)

    _main()


def sweep_job(fn: Callable[[DictConfig], Any], cfg: DictConfig) -> Any:
    """One job of a multirun: its failure is reported in one line and does not stop the others."""
    try:
        value = fn(cfg)
    except SweepConfigError as err:
        _release(failed=True)
        _fail(err)  # SystemExit passes through Hydra's job runner and every launcher
    except Exception as err:
        message = _report(err)
    else:
        _release(failed=False)
        return value
    # raised outside the except block, so that nothing keeps the failed job's traceback (and
    # with it its trainer, model and data) alive while the other jobs run
    _release(failed=True)
    raise JobFailed(message)


def _report(err: Exception) -> str:
    """Print the failure of this job in one line, its traceback to <job dir>/error.txt."""
    hydra_cfg = HydraConfig.get()
    job = f"job {hydra_cfg.job.num} ({hydra_cfg.job.override_dirname or 'no overrides'})"
    path = Path(hydra_cfg.runtime.output_dir) / "error.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{job}\n{''.join(traceback.format_exception(err))}")
    message = f"error: {job} failed: {one_line(err)}"
    print(f"{message} (traceback: {path}; the other jobs go on)", file=sys.stderr, flush=True)
    return message


def one_line(err: BaseException) -> str:
    """The last line of an error's message; other than GanzooErrors, named by their type."""
    lines = str(err).strip().splitlines()
    line = lines[-1] if lines else ""
    if isinstance(err, GanzooError):
        # an error re-raised from a DataLoader worker carries the worker's traceback
        return line.split(": ", 1)[-1] if line.startswith("ganzoo.") else line
    return f"{type(err).__name__}: {line}" if line else type(err).__name__


def _release(failed: bool) -> None:
    """Between the jobs of one process: close the job's W&B run, free its memory."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish(exit_code=1 if failed else 0)
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _fail(err: GanzooError) -> NoReturn:
    print(f"error: {one_line(err)}", file=sys.stderr)
    sys.exit(2)
