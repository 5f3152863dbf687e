"""Faults a user meets around a run (issue 18), driven as a user would: the real CLI in a
subprocess where the process matters (signals, exit status, a second process, Hydra's start),
in-process runs elsewhere. Each test asserts the outcome: the right checkpoint, the CSV rows,
the exit status and the one-line message."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch

import ganzoo.cli.build as build
import ganzoo.cli.rundir as rundir
from ganzoo.callbacks.checkpoint import CheckpointWriteError, NonFiniteStateError
from ganzoo.core.errors import ConfigError, DataError, GanzooError
from ganzoo.data.cache import write_cache
from tests.conftest import REPO, compose_train, run_cli
from tests.test_datasets import ade, make_ade20k, rgb

pytestmark = pytest.mark.usefixtures("one_thread")

SMOKE = ["model=pix2pixhd", "debug=smoke", "trainer.enable_progress_bar=false"]
FAST = [*SMOKE, "logger=csv", "callbacks.samples=null"]
INSANE_LR = ["optim.lr_g=1e38", "optim.lr_d=1e38"]


# ----- helpers --------------------------------------------------------------------------------
def train_in(run_dir: Path, *overrides: str, callbacks: tuple[pl.Callback, ...] = ()) -> None:
    """`python -m ganzoo.train` in-process (same code path after Hydra), written to run_dir."""
    cfg = compose_train(run_dir, [*FAST, *overrides])
    original = build.build_callbacks
    build.build_callbacks = lambda c: original(c) + list(callbacks)  # type: ignore[assignment]
    try:
        build.train(cfg)
    finally:
        build.build_callbacks = original  # type: ignore[assignment]


def into(run_dir: Path, *args: str) -> list[str]:
    """Command-line arguments of `python -m ganzoo.train` writing to run_dir."""
    return [*args, f"hydra.run.dir={run_dir}"]


def error_line(proc: subprocess.CompletedProcess[str] | Any, stderr: str | None = None) -> str:
    """The one `error:` line of a failed run; no traceback."""
    text = proc.stderr if stderr is None else stderr
    assert "Traceback" not in text, text[-3000:]
    lines = [line for line in text.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, text[-3000:]
    return lines[0]


def iterations(run_dir: Path) -> list[int]:
    """The `iteration` of every loss row of metrics.csv, in file order."""
    with (run_dir / "metrics.csv").open(newline="") as f:
        return [int(float(r["iteration"])) for r in csv.DictReader(f) if r.get("iteration")]


def ckpt_iteration(path: Path) -> int:
    return int(torch.load(path, map_location="cpu", weights_only=True)["state_dict"]["iteration"])


class At(pl.Callback):
    """Calls fn() after iteration n (after the checkpoint callback: a kill right after a save)."""

    def __init__(self, n: int, fn: Any) -> None:
        self.n, self.fn = n, fn

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: Any, *args: Any) -> None:
        if int(pl_module.iteration) == self.n:
            self.fn()


def crash() -> None:
    raise RuntimeError("simulated crash")  # like kill -9 for the files: Lightning logs no more


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 4-iteration run (checkpoints at 2 and 4); tests work on copies of it."""
    run = tmp_path_factory.mktemp("finished") / "run"
    train_in(run, "steps=4")
    return run


def copy_of(run: Path, tmp_path: Path) -> Path:
    target = tmp_path / "run"
    shutil.copytree(run, target)
    return target


# ----- 1. NaN: never a checkpoint of non-finite state -------------------------------------------
def test_non_finite_state_is_never_saved_and_the_message_names_the_good_checkpoint(
    finished_run: Path, tmp_path: Path
) -> None:
    fresh = tmp_path / "fresh"  # the reported case: no finite state is ever saved
    with pytest.raises(NonFiniteStateError, match="no checkpoint of this run holds a finite"):
        train_in(fresh, "steps=10", *INSANE_LR)
    assert not list(fresh.glob("checkpoints/*.ckpt"))

    run = copy_of(finished_run, tmp_path)  # resumed at 4 with an absurd lr: diverges
    proc = run_cli("ganzoo.train", *into(run, *FAST, "steps=10", *INSANE_LR))
    assert proc.returncode == 2
    line = error_line(proc)
    last = run / "checkpoints" / "last.ckpt"
    good = ckpt_iteration(last)
    assert f"{last} (iteration {good}) holds the last finite state" in line, line
    assert f"ckpt_path={run / 'checkpoints' / 'iter_0000004.ckpt'}" in line, line
    for path in run.glob("checkpoints/*.ckpt"):  # every file on disk is finite
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        tensors = list(ckpt["state_dict"].values()) + [
            v for s in ckpt["optimizer_states"] for p in s["state"].values() for v in p.values()
        ]
        assert all(torch.isfinite(t).all() for t in tensors if t.is_floating_point()), path

    # as the message advises: the config's lr, not the checkpoint's, runs from there
    iter4 = run / "checkpoints" / "iter_0000004.ckpt"
    train_in(run, "steps=10", f"ckpt_path={iter4}")
    assert ckpt_iteration(last) == 10
    assert iterations(run) == list(range(1, 11))


# ----- 2. dataset caches: keyed on the root and the files ---------------------------------------
def test_dataset_cache_of_one_root_never_stands_in_for_another(tmp_path: Path) -> None:
    root = make_ade20k(tmp_path / "a" / "ADEChallengeData2016")
    cache = tmp_path / "cache"
    write_cache(ade(root), cache)
    assert ade(root, cache_dir=cache).cache is not None
    copy = tmp_path / "b" / "ADEChallengeData2016"
    shutil.copytree(root, copy)  # same names, sizes and times: only the root differs
    rgb(copy / "images/training/ADE_train_00000002.jpg", 16, 12, seed=99)  # another image
    with pytest.raises(DataError) as err:
        ade(copy, cache_dir=cache)
    message = str(err.value)
    assert "\n" not in message and "stale cache" in message and str(copy.resolve()) in message
    image = root / "images/training/ADE_train_00000002.jpg"
    image.write_bytes(image.read_bytes()[:-50])  # a file of the prepared root cut short
    with pytest.raises(DataError, match=r"rewritten since it was prepared .*ganzoo.data.prepare"):
        ade(root, cache_dir=cache)


# ----- 3, 5, 6. Ctrl-C, a second run, starting over (the real CLI) -------------------------------
def test_ctrl_c_saves_a_concurrent_run_is_refused_and_resume_false_starts_over(
    tmp_path: Path,
) -> None:
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HYDRA_FULL_ERROR": "0"}
    args = [*SMOKE, "logger=default", "callbacks.samples=null", "steps=5000"]
    command = [sys.executable, "-m", "ganzoo.train", *into(run, *args)]
    first = subprocess.Popen(command, cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not ((run / "metrics.csv").is_file() and len(iterations(run)) >= 3):
            assert first.poll() is None and time.monotonic() < deadline, "first run did not train"
            time.sleep(0.2)
        # 6. a second run in the same dir fails at once, naming the first
        first.send_signal(signal.SIGSTOP)  # paused (holding its lock): no CPU spent meanwhile
        second = run_cli("ganzoo.train", *into(run, *FAST, "steps=4"))
        first.send_signal(signal.SIGCONT)
        assert second.returncode == 2 and first.poll() is None
        line = error_line(second)
        assert f"pid {first.pid} on host {socket.gethostname()}" in line, line
        assert "steps=4" not in (run / ".hydra" / "overrides.yaml").read_text()  # untouched
        # 3. Ctrl-C: the iteration finishes, last.ckpt is saved, the run exits with 130
        first.send_signal(signal.SIGINT)
        _, stderr = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 130, stderr[-3000:]
    assert "Traceback" not in stderr
    n = ckpt_iteration(run / "checkpoints" / "last.ckpt")
    assert f"stopped by SIGINT after iteration {n}; saved {run / 'checkpoints' / 'last.ckpt'}" in (
        stderr
    )
    assert 3 <= n < 5000 and iterations(run) == list(range(1, n + 1))
    old_id = (run / "wandb_run_id").read_text()

    # 4. resuming logs each iteration once
    train_in(run, f"steps={n + 3}")
    assert iterations(run) == list(range(1, n + 4))

    # 5. resume=false starts over: the old run moved aside (and said where), a new W&B run
    (run / "notes.txt").write_text("mine")  # not a run's file: stays
    proc = run_cli("ganzoo.train", *into(run, *SMOKE, "resume=false", "steps=2"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    moved = [p for p in tmp_path.iterdir() if p.name.startswith("run.old-")]
    assert len(moved) == 1 and f"was moved to {moved[0]}" in proc.stdout
    assert ckpt_iteration(moved[0] / "checkpoints" / "last.ckpt") == n + 3
    assert (moved[0] / "wandb_run_id").read_text() == old_id
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "iter_0000002.ckpt",
        "last.ckpt",
    ]
    assert iterations(run) == [1, 2] and (run / "wandb_run_id").read_text() != old_id
    assert (run / "notes.txt").read_text() == "mine"


def test_sigterm_saves_at_the_end_of_the_iteration(tmp_path: Path) -> None:
    run = tmp_path / "run"
    kill = At(3, lambda: os.kill(os.getpid(), signal.SIGTERM))  # after this iteration's save
    with pytest.raises(SystemExit) as stop:
        train_in(run, "steps=50", "callbacks.checkpoint.every_n_iterations=500", callbacks=(kill,))
    assert stop.value.code == 128 + signal.SIGTERM
    assert ckpt_iteration(run / "checkpoints" / "last.ckpt") == 4  # the next iteration's end
    assert iterations(run) == [1, 2, 3, 4]
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # handlers put back


# ----- 4. metrics.csv: each iteration once, however the run was killed ---------------------------
def test_metrics_csv_holds_each_iteration_once_across_crashes(tmp_path: Path) -> None:
    run = tmp_path / "run"
    every = "callbacks.checkpoint.every_n_iterations=4"
    with pytest.raises(RuntimeError, match="simulated crash"):  # between checkpoints (4 and 8)
        train_in(run, "steps=10", every, callbacks=(At(7, crash),))
    assert iterations(run) == [1, 2, 3, 4, 5, 6]
    evaluations = run / "metrics.jsonl"  # as callbacks.metrics writes them, at 4 and 6
    evaluations.write_text("".join(json.dumps({"iteration": i}) + "\n" for i in (4, 6)))
    with pytest.raises(RuntimeError, match="simulated crash"):  # right after checkpoint 8
        train_in(run, "steps=10", every, callbacks=(At(8, crash),))
    assert ckpt_iteration(run / "checkpoints" / "last.ckpt") == 8
    assert iterations(run) == list(range(1, 9))
    assert evaluations.read_text() == json.dumps({"iteration": 4}) + "\n"
    train_in(run, "steps=10", every)
    assert iterations(run) == list(range(1, 11))


# ----- 6, 7, 9. stale lock, failed start, truncated and empty checkpoints -----------------------
def test_stale_lock_failed_start_and_damaged_last_ckpt(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = copy_of(finished_run, tmp_path)
    dead = subprocess.Popen(["true"])
    dead.wait()
    holder = {"pid": dead.pid, "host": socket.gethostname(), "command": "python -m ganzoo.train"}
    (run / rundir.LOCK_NAME).write_text(json.dumps(holder))
    config = (run / "config.yaml").read_text()

    # 7. a start that fails (here: fewer steps than done) leaves config.yaml as it was
    with pytest.raises(ConfigError, match="past steps=2"):
        train_in(run, "steps=2")
    assert (run / "config.yaml").read_text() == config
    assert f"lock of {run} left by pid {dead.pid}" in capsys.readouterr().err  # 6. taken over

    # 9. a truncated last.ckpt: back to the newest intact periodic checkpoint, saying so
    last = run / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:1000])
    (run / "checkpoints" / "iter_0000004.ckpt").write_bytes(b"")
    train_in(run, "steps=5")
    err = capsys.readouterr().err
    assert f"{last} is truncated (1000 bytes, no end of archive); resuming from the newest " in err
    assert "intact periodic checkpoint iter_0000002.ckpt instead" in err
    assert ckpt_iteration(last) == 5 and iterations(run) == [1, 2, 3, 4, 5]
    assert "steps: 5" in (run / "config.yaml").read_text()

    # an empty last.ckpt with nothing to fall back on: one line
    last.write_bytes(b"")
    for path in run.glob("checkpoints/iter_*.ckpt"):
        path.write_bytes(b"")
    with pytest.raises(ConfigError) as error:
        train_in(run, "steps=6")
    assert str(error.value) == (
        f"{last} is empty (0 bytes) and no intact checkpoints/iter_*.ckpt is left to resume "
        "from; resume=false starts over (the old run is moved aside)"
    )
    with pytest.raises(ConfigError, match=r"^ckpt=.*last.ckpt is empty \(0 bytes\)$"):
        build.load_run(last, "cpu")  # ganzoo.sample / evaluate / export


# ----- 9. an output folder that cannot be written, or is full ----------------------------------
def test_unwritable_output_folder_fails_before_hydra_writes(tmp_path: Path) -> None:
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    if os.access(folder, os.W_OK):  # root ignores modes; sysfs refuses new folders to anyone
        folder = Path("/sys/ganzoo-test")
    proc = run_cli("ganzoo.train", *FAST, f"paths.output_dir={folder}")
    assert proc.returncode == 2
    assert error_line(proc).startswith(f"error: cannot write the run dir {folder}/pix2pixhd-")


def test_full_disk_fails_before_training_and_a_failed_save_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = tmp_path / "run"
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(rundir.shutil, "disk_usage", lambda p: usage._replace(free=10_000))
    with pytest.raises(GanzooError, match=r"has 0.0 MB free; a checkpoint of this run takes"):
        train_in(run, "steps=4")
    assert not (run / "metrics.csv").exists() and not (run / "checkpoints").exists()
    monkeypatch.undo()

    def disk_full(*args: Any, **kwargs: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pl.Trainer, "save_checkpoint", disk_full)
    with pytest.raises(CheckpointWriteError) as error:
        train_in(run, "steps=4")
    message = str(error.value)
    assert message.startswith(f"could not write {run / 'checkpoints' / 'iter_0000002.ckpt'}: ")
    assert "No space left on device" in message and "\n" not in message
    assert not list(run.glob("checkpoints/*"))  # no temporary file left behind
