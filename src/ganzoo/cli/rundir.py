"""The run dir of `python -m ganzoo.train`: one run at a time, resumed or started over cleanly.

- `RunDirLock`: a run holds `<run_dir>/.ganzoo.lock` (an flock, plus the holder's pid, host,
  start time and command) while it runs; a second run in the same dir fails in one line naming
  the first. A lock left by a process that died (kill -9, a lost node) is taken over: the
  kernel drops an flock with its process, and the file's content says whose it was.
- `resume_checkpoint`: what a run continues from: `ckpt_path`, else `checkpoints/last.ckpt`
  with `resume: true`. A last.ckpt that is empty or truncated (a full disk, a copy cut short)
  falls back to the newest intact `iter_*.ckpt`, saying so; with none, one line.
- `move_previous_run`: a run that starts from scratch in a dir that holds an earlier run's
  files (`resume: false`, or no checkpoint to resume) first moves them (RUN_FILES, nothing
  else) to a sibling `<run_dir>.old-<time>` and says where, so that checkpoints, metrics.csv,
  samples and the W&B run id of the two runs never mix.
- `OutputDirCheck` (a Hydra callback, conf/train.yaml) and `check_free_space`: a run dir that
  cannot be written, or a disk without room for a checkpoint, fails in one line before training.

Only the first process of a run (rank 0 of node 0) locks and moves; the other processes of a
multi-process run (trainer=ddp) are started by it while it holds the lock.
"""

from __future__ import annotations

import datetime
import errno
import fcntl
import json
import os
import shutil
import socket
import sys
import tempfile
import zipfile
from pathlib import Path
from types import TracebackType
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from ganzoo.core.errors import ConfigError, GanzooError

LOCK_NAME = ".ganzoo.lock"
RUN_FILES = (  # what a run (and sample / evaluate / export of its checkpoints) writes in its dir
    "checkpoints",
    "samples",
    "wandb",
    "config.yaml",
    "hparams.yaml",
    "metrics.csv",
    "metrics.jsonl",
    "run_info.json",
    "wandb_run_id",
    "evaluation.json",
    "error.txt",
)


class RunDirBusyError(GanzooError):
    """Another process is running in the same run dir."""


class OutputDirError(GanzooError):
    """The run dir cannot be written, or its disk has no room for a checkpoint."""


def first_process() -> bool:
    """True in the process that starts a run (not in the other ranks of a multi-process run)."""
    ranks = ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID")
    return all(os.environ.get(name, "0") in ("", "0") for name in ranks)


# ----- one run at a time ------------------------------------------------------------------
class RunDirLock:
    """`with RunDirLock(run_dir):` holds the run dir's lock (RunDirBusyError if it is held)."""

    def __init__(self, run_dir: Path, quiet: bool = False) -> None:
        self.path = run_dir / LOCK_NAME
        self.quiet = quiet  # a probe: no message, the holder's record left as it was
        self._fd: int | None = None

    def __enter__(self) -> RunDirLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            state = _flock(fd)
            previous = _read_holder(fd)
            if state == "held" or (state == "unsupported" and _may_run(previous)):
                stale = f" (if it is gone, delete {self.path})" if state == "unsupported" else ""
                raise RunDirBusyError(
                    f"run dir {self.path.parent} is in use by another run ({_who(previous)})"
                    f"{stale}; wait for it to finish, or give this run another run_name or "
                    "hydra.run.dir"
                )
        except BaseException:
            os.close(fd)
            raise
        if self.quiet:
            os.close(fd)
            return self
        if previous:
            print(
                f"ganzoo: taking over the lock of {self.path.parent} left by "
                f"{_who(previous)}, which is no longer running",
                file=sys.stderr,
            )
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "command": " ".join(sys.argv),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
        self._fd = fd
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)  # an empty lock file: free (the file stays, see _flock)
            os.close(self._fd)  # releases the flock
            self._fd = None


def _flock(fd: int) -> str:
    """Lock fd: "locked", "held" (by another process) or "unsupported" (some network file
    systems; then the holder's pid and host in the file decide). The kernel drops an flock
    with its process, so a lock we get is ours even when the file names a dead holder.
    The file is never deleted: a process that opened it before a deletion would lock a file
    nobody else sees."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return "held"
        return "unsupported"
    return "locked"


def _read_holder(fd: int) -> dict[str, Any]:
    text = os.pread(fd, 4096, 0).decode(errors="replace").strip()
    if not text:
        return {}
    try:
        holder = json.loads(text)
    except json.JSONDecodeError:
        return {"pid": "?", "host": "?"}
    return holder if isinstance(holder, dict) else {}


def _may_run(holder: dict[str, Any]) -> bool:
    """Without flock: whether the holder named in the file may still run (a live pid on this
    host, or any process on another host, which cannot be checked from here)."""
    if not holder:
        return False
    if holder.get("host") != socket.gethostname():
        return True
    pid = holder.get("pid")
    if not isinstance(pid, int):
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _who(holder: dict[str, Any]) -> str:
    if not holder:
        return "a process that has not yet written its name"
    started = f", started {holder['started']}" if holder.get("started") else ""
    command = f": {holder['command']}" if holder.get("command") else ""
    return f"pid {holder.get('pid')} on host {holder.get('host')}{started}{command}"


# ----- resume or start over ---------------------------------------------------------------
def checkpoint_problem(path: Path) -> str | None:
    """Why `path` cannot be a checkpoint ('is empty', 'is truncated ...'), None if it looks whole.

    torch.save writes a zip archive whose directory is at the end: a file cut short has none.
    (Cheap: reads the directory only; the contents are checked when the file is loaded.)
    """
    try:
        size = path.stat().st_size
        if size == 0:
            return "is empty (0 bytes)"
        with path.open("rb") as handle:
            magic = handle.read(2)
        if magic != b"PK":
            return None  # not torch's zip format (a legacy file): torch.load decides
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except zipfile.BadZipFile:
        return f"is truncated ({size} bytes, no end of archive)"
    except OSError as err:
        return f"cannot be read ({err.strerror})"
    if not any(name.endswith("/data.pkl") or name == "data.pkl" for name in names):
        return "is not a torch checkpoint (no data.pkl in the archive)"
    return None


def resume_checkpoint(cfg: DictConfig, run_dir: Path) -> str | None:
    """The checkpoint this run continues from, or None to start from scratch."""
    if cfg.ckpt_path is not None:
        path = Path(str(cfg.ckpt_path))
        if not path.is_file():
            raise ConfigError(f"ckpt_path={path} does not exist")
        problem = checkpoint_problem(path)
        if problem is not None:
            raise ConfigError(f"ckpt_path={path} {problem}")
        return str(path)
    if not cfg.resume:
        return None
    folder = run_dir / "checkpoints"
    last = folder / "last.ckpt"
    periodic = sorted(folder.glob("iter_*.ckpt"), reverse=True)  # zero-padded: newest first
    if last.is_file():
        problem = checkpoint_problem(last)
        if problem is None:
            return str(last)
    elif not periodic:
        return None
    else:
        problem = "is missing"
    for path in periodic:
        if checkpoint_problem(path) is None:
            print(
                f"ganzoo: {last} {problem}; resuming from the newest intact periodic "
                f"checkpoint {path.name} instead",
                file=sys.stderr,
            )
            return str(path)
    raise ConfigError(
        f"{last} {problem} and no intact checkpoints/iter_*.ckpt is left to resume from; "
        "resume=false starts over (the old run is moved aside)"
    )


def previous_run_files(run_dir: Path) -> list[Path]:
    """What an earlier run left in run_dir: only the files runs write (RUN_FILES), so that a
    run dir that is also something else (`hydra.run.dir=.`) keeps everything else."""
    return [run_dir / name for name in RUN_FILES if (run_dir / name).exists()]


def move_previous_run(run_dir: Path) -> Path | None:
    """Move an earlier run's files to a sibling `<name>.old-<time>/`; where they went, or None.

    A lone wandb_run_id (W&B never started: no wandb/; or the id was just resolved from this
    run's config before it started) is removed instead, so that the new run gets a new id."""
    files = previous_run_files(run_dir)
    if [p.name for p in files] == ["wandb_run_id"]:
        files[0].unlink()
        return None
    if not files:
        return None
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    target = run_dir.with_name(f"{run_dir.name}.old-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = run_dir.with_name(f"{run_dir.name}.old-{stamp}-{n}")
    target.mkdir()
    for path in files:
        os.replace(path, target / path.name)
    return target


# ----- a writable output folder with room ------------------------------------------------
def check_writable(run_dir: Path) -> None:
    """Create run_dir and write a file in it; OutputDirError in one line if that fails."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=run_dir) as probe:
            probe.write(b"ganzoo")
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as err:
        where = err.filename or run_dir
        raise OutputDirError(
            f"cannot write the run dir {run_dir}: {err.strerror} ({where}); choose a writable "
            "paths.output_dir (or hydra.run.dir)"
        ) from None


def check_free_space(run_dir: Path, checkpoint_bytes: int) -> None:
    """A save writes two checkpoints (iter_N.ckpt and last.ckpt via a temporary file): fail
    before training when the run dir's file system has no room for them."""
    free = shutil.disk_usage(run_dir).free
    if free < 2 * checkpoint_bytes:
        raise OutputDirError(
            f"the disk of run dir {run_dir} has {_mb(free)} free; a checkpoint of this run "
            f"takes about {_mb(checkpoint_bytes)} and each save writes two: free some space or "
            "choose another paths.output_dir"
        )


def checkpoint_bytes(module: torch.nn.Module) -> int:
    """About the size of a full checkpoint: the state (weights, buffers, EMA) and two optimiser
    moments (Adam) per trainable weight."""
    state = sum(t.numel() * t.element_size() for t in module.state_dict().values())
    trainable = sum(p.numel() * p.element_size() for p in module.parameters() if p.requires_grad)
    return state + 2 * trainable


def _mb(n: int) -> str:
    return f"{n / 2**20:.1f} MB"


class OutputDirCheck(Callback):
    """Hydra callback: the run dir must be writable before Hydra writes .hydra/ into it."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        HydraConfig.instance().set_config(config)  # ${hydra:...} in the run dir's name
        run_dir = Path(str(OmegaConf.select(config, "hydra.run.dir")))
        _exit_on_error(run_dir)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        HydraConfig.instance().set_config(config)
        _exit_on_error(Path(str(OmegaConf.select(config, "hydra.sweep.dir"))))


def _exit_on_error(run_dir: Path) -> None:
    """check_writable, and that no other run holds the run dir (the run takes the lock later,
    in ganzoo.cli.build.train; checked here too so that Hydra does not write its .hydra/ into
    the dir of a running run)."""
    try:
        check_writable(run_dir)
        if first_process() and (run_dir / LOCK_NAME).is_file():
            with RunDirLock(run_dir, quiet=True):
                pass
    except GanzooError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)  # SystemExit passes through Hydra (which would print a traceback otherwise)
