"""Sweeps: Hydra multiruns over models and keys with failed jobs isolated, Optuna sweeps that
optimise a named metric, the joblib launcher running jobs in parallel, and the submitit SLURM
launcher's requeue on pre-emption (ganzoo.cli.entry, ganzoo.train, conf/hparams_search,
conf/hydra/launcher, ganzoo.callbacks.preemption)."""

from __future__ import annotations

import csv
import json
import os
import signal
import stat
import time
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import submitit
import torch
import yaml
from hydra._internal.callbacks import Callbacks
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.utils import create_config_search_path
from hydra.core.hydra_config import HydraConfig
from hydra.core.plugins import Plugins
from hydra.types import HydraContext, RunMode
from omegaconf import DictConfig, OmegaConf
from submitit.slurm.slurm import _make_sbatch_string

import ganzoo.cli.build as build
from ganzoo.callbacks.preemption import PreemptionCheckpoint
from ganzoo.cli import resolvers
from ganzoo.cli.entry import SweepConfigError, sweep_job
from ganzoo.cli.preflight import CONFIG_DIR
from ganzoo.core.errors import ConfigError
from ganzoo.train import check_optimized_metric, main_fn
from tests.conftest import run_cli

# conf/hydra/launcher files carry the plugins' names: Hydra's (harmless) schema-matching notice
pytestmark = pytest.mark.filterwarnings("ignore:(?s).*validated against ConfigStore schema")

TINY = ["debug=smoke", "steps=2", "logger=csv", "trainer.enable_progress_bar=false"]


def _jobs(root: Path) -> list[Path]:
    sweeps = list((root / "outputs" / "multirun").iterdir())
    assert len(sweeps) == 1, sweeps
    jobs = [p for p in sweeps[0].iterdir() if p.is_dir() and p.name[0].isdigit()]
    return sorted(jobs, key=lambda p: int(p.name.split("-")[0]))


def _iteration(job: Path) -> int:
    ckpt = torch.load(job / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    return int(ckpt["state_dict"]["iteration"])


def _overrides(job: Path) -> list[str]:
    return list(yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text()))


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error: ")]


def test_multirun_over_models_and_keys_goes_on_after_a_failed_job(tmp_path: Path) -> None:
    # the sweep, with one value of the lr that no optimiser accepts
    result = run_cli(
        "ganzoo.train", "-m", "model=spade,pix2pixhd", "optim.lr_g=1e-4,nan", *TINY,
        f"paths.root_dir={tmp_path}",
    )  # fmt: skip
    assert result.returncode == 1, result.stderr[-3000:]
    jobs = _jobs(tmp_path)
    swept = [[o for o in _overrides(job) if o.startswith(("model=", "optim."))] for job in jobs]
    assert swept == [
        ["model=spade", "optim.lr_g=0.0001"],
        ["model=spade", "optim.lr_g=nan"],
        ["model=pix2pixhd", "optim.lr_g=0.0001"],
        ["model=pix2pixhd", "optim.lr_g=nan"],
    ]
    good, bad = jobs[0::2], jobs[1::2]
    for job, target in zip(good, ["SpadeTask", "Pix2PixHDTask"], strict=True):
        assert _iteration(job) == 2  # the job after the failed one ran to the end
        assert yaml.safe_load((job / "config.yaml").read_text())["model"]["_target_"].endswith(
            target
        )
        assert not (job / "error.txt").exists()
    for job in bad:
        assert not (job / "checkpoints" / "last.ckpt").exists()
        assert "Invalid learning rate: nan" in (job / "error.txt").read_text()
    # each failure: one line as it happens; at the end Hydra repeats the first one, no traceback
    lines = _error_lines(result.stderr)
    assert len(lines) == 3, result.stderr[-3000:]
    assert lines[0].startswith("error: job 1 (") and lines[1].startswith("error: job 3 (")
    assert (
        "optim.lr_g:nan" in lines[0]
        and "failed: ValueError: Invalid learning rate: nan" in lines[0]
    )
    assert lines[2] == lines[0].split(" (traceback: ")[0]
    assert "Traceback" not in result.stderr


class Rendezvous(pl.Callback):
    """Test-only: each job, at the start of training, waits until `n` jobs of its sweep have
    arrived (so it fails if the jobs run one after the other)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def on_fit_start(self, trainer: pl.Trainer, pl_module: Any) -> None:
        meet = Path(str(trainer.default_root_dir)).parent / ".rendezvous"  # in the sweep dir
        meet.mkdir(parents=True, exist_ok=True)
        (meet / str(os.getpid())).touch()
        deadline = time.monotonic() + 120
        while len(list(meet.iterdir())) < self.n:
            if time.monotonic() > deadline:
                raise RuntimeError("no other job started: the jobs did not run in parallel")
            time.sleep(0.05)


def test_joblib_launcher_runs_two_jobs_at_once_and_isolates_a_config_error(tmp_path: Path) -> None:
    result = run_cli(
        "ganzoo.train", "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
        "model.gan_mode=hinge,lsgan,bogus", *TINY, f"paths.root_dir={tmp_path}",
        "+callbacks.rendezvous._target_=tests.test_sweeps.Rendezvous",
        "+callbacks.rendezvous.n=2",
    )  # fmt: skip
    # a GanzooError in a joblib worker (unknown loss) is the job's failure, not the sweep's
    assert result.returncode == 1, result.stderr[-3000:]
    first, second, failed = _jobs(tmp_path)
    assert _iteration(first) == _iteration(second) == 2  # they met: both ran at once
    assert len(list((first.parent / ".rendezvous").iterdir())) == 2  # in two worker processes
    assert not (failed / "checkpoints" / "last.ckpt").exists()
    lines = _error_lines(result.stderr)
    assert len(lines) == 2, result.stderr[-3000:]
    assert lines[0].startswith("error: job 2 (") and "model.gan_mode:bogus" in lines[0]
    assert "failed: unknown adversarial loss 'bogus'; valid: hinge" in lines[0]
    assert "Traceback" not in result.stderr


def test_optuna_sweep_minimises_the_named_metric(tmp_path: Path) -> None:
    result = run_cli(
        "ganzoo.train", "-m", "hparams_search=spade_optuna", "metrics=none",
        "optimized_metric=loss/G/total", "hydra.sweeper.n_trials=2", *TINY,
        f"paths.root_dir={tmp_path}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = _jobs(tmp_path)
    assert len(jobs) == 2
    finals, params = [], []
    for job in jobs:
        with (job / "metrics.csv").open() as f:
            rows = [r for r in csv.DictReader(f) if r.get("loss/G/total")]
        finals.append(float(rows[-1]["loss/G/total"]))  # the value train returned
        params.append(
            {o.split("=")[0]: float(o.split("=")[1]) for o in _overrides(job) if "optim." in o}
        )
    assert params[0] != params[1]  # two points of the search space
    assert all(2.5e-5 <= p["optim.lr_g"] <= 4e-4 for p in params)
    best = yaml.safe_load((jobs[0].parent / "optimization_results.yaml").read_text())
    assert best["best_value"] == pytest.approx(min(finals), rel=1e-6)
    assert best["best_params"]["optim.lr_g"] == pytest.approx(
        params[finals.index(min(finals))]["optim.lr_g"]
    )


@pytest.mark.parametrize(
    "search", sorted(p.stem for p in (CONFIG_DIR / "hparams_search").glob("*.yaml"))
)
def test_every_optuna_search_space_names_real_keys(search: str) -> None:
    resolvers.register()
    loader = ConfigLoaderImpl(config_search_path=create_config_search_path(str(CONFIG_DIR)))
    cfg = loader.load_configuration(
        "train", overrides=[f"hparams_search={search}"], run_mode=RunMode.MULTIRUN
    )
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper") and sweeper.max_failure_rate == 1.0
    assert cfg.hydra.runtime.choices.model == search.split("_")[0]
    check_optimized_metric(cfg)  # the objective is computed by the selected metrics
    for key in sweeper.params:
        assert OmegaConf.select(cfg, key) is not None, f"{search}: no key {key}"


def test_a_metric_the_run_does_not_log_stops_the_sweep_in_one_line(tmp_path: Path) -> None:
    result = run_cli(
        "ganzoo.train", "-m", "hparams_search=spade_optuna", "metrics=none",
        "optimized_metric=loss/G/totl", "hydra.sweeper.n_trials=3", *TINY, "steps=1",
        f"paths.root_dir={tmp_path}",
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-3000:]
    assert len(_jobs(tmp_path)) == 1  # stopped after the first trial
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: optimized_metric=loss/G/totl was not logged; this run logged ")
    assert "loss/G/total" in last and "loss/D/total" in last
    assert "Traceback" not in result.stderr


def test_metric_objectives_are_checked_before_training_and_returned(make_cfg) -> None:
    cfg = make_cfg("debug=smoke", "metrics=none", "optimized_metric=metrics/fid")
    with pytest.raises(SweepConfigError, match="metrics/fid is not computed: metrics=none"):
        main_fn(cfg)
    cfg = make_cfg("debug=smoke", "metrics=[domain,miou]", "optimized_metric=metrics/fid")
    with pytest.raises(SweepConfigError, match="computes metrics/domain_fid, metrics/class_acc"):
        main_fn(cfg)
    # metrics=fid produces metrics/fid: accepted (it would be computed at the end of the run)
    check_optimized_metric(make_cfg("metrics=fid", "optimized_metric=metrics/fid"))
    check_optimized_metric(make_cfg("metrics=kid", "optimized_metric=metrics/kid_mean"))


def test_train_returns_a_metric_computed_at_the_end(make_cfg, tmp_path: Path) -> None:
    cfg = make_cfg(
        *TINY, "callbacks.samples=null", "metrics=domain", "optimized_metric=metrics/domain_fid",
        "metrics.num_samples=8", "metrics.batch_size=8", "metrics.scene_evaluator.steps=3",
        "metrics.scene_evaluator.train_samples=32", f"paths.cache_dir={tmp_path / 'cache'}",
    )  # fmt: skip
    value = main_fn(cfg)
    record = [json.loads(line) for line in (tmp_path / "run/metrics.jsonl").open()]
    assert value == pytest.approx(record[-1]["metrics"]["domain_fid"]) and value > 0


# --- submitit / SLURM: requeue on pre-emption --------------------------------------------------


class SignalDuringStep(pl.Callback):
    """Sends SIGUSR2 to this process in the middle of iteration n (between its D and G steps)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: Any, optimizer: Any) -> None:
        if int(pl_module.iteration) == self.n - 1 and not getattr(self, "sent", False):
            self.sent = True
            os.kill(os.getpid(), signal.SIGUSR2)


class FakeSlurm:
    """Stands in for sbatch and the job's node: runs each array task here, with submitit's
    USR2 handler (checkpoint() of the callable, i.e. a resubmission, then exit)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.parameters: dict[str, Any] = {}
        self.requeued: list[Path] = []
        self.saved_at_signal: list[int] = []

    def map_array(self, executor: Any, fn: Any, *iterables: Any) -> list[Any]:
        self.parameters = dict(executor._executor.parameters)
        results = []
        for args in zip(*iterables, strict=True):
            results.append(self.run(fn, args))
        return results

    def run(self, fn: Any, args: tuple[Any, ...]) -> Any:
        def usr2(signum: int, frame: Any) -> None:  # submitit's checkpoint_and_try_requeue
            job_dir = Path(HydraConfig.get().runtime.output_dir)
            self.saved_at_signal.append(_iteration(job_dir))
            delayed = fn.checkpoint(*args)
            assert isinstance(delayed, submitit.helpers.DelayedSubmission)
            path = self.folder / f"requeued_{len(self.requeued)}.pkl"
            delayed.dump(path)  # what submitit hands to the requeued job (cloudpickle)
            self.requeued.append(path)
            raise SystemExit(-1)

        previous = signal.signal(signal.SIGUSR2, usr2)
        try:
            ret = fn(*args)
        except SystemExit:
            ret = None
        finally:
            signal.signal(signal.SIGUSR2, previous)
        return _Done(ret)


class _Done:
    def __init__(self, ret: Any) -> None:
        self.ret = ret

    def results(self) -> list[Any]:
        return [self.ret]


def _slurm_launcher(overrides: list[str]) -> Any:
    """The launcher as Hydra's multirun sets it up for `-m hydra/launcher=submitit_slurm ...`."""
    resolvers.register()
    loader = ConfigLoaderImpl(config_search_path=create_config_search_path(str(CONFIG_DIR)))
    config = loader.load_configuration(
        "train", overrides=["hydra/launcher=submitit_slurm", *overrides], run_mode=RunMode.MULTIRUN
    )
    return Plugins.instance().instantiate_launcher(
        config=config,
        hydra_context=HydraContext(config_loader=loader, callbacks=Callbacks(config)),
        task_function=lambda cfg: sweep_job(main_fn, cfg),
    )


@pytest.mark.filterwarnings("ignore:The `srun` command is available")  # the stand-in srun
def test_slurm_preemption_saves_after_the_iteration_and_the_requeued_job_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"  # submitit's SLURM executor looks for srun on the PATH
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 1\n")
    (bin_dir / "srun").chmod(stat.S_IRWXU)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("SUBMITIT_EXECUTOR", "slurm")  # as submitit's sbatch script sets them
    monkeypatch.setenv("SLURM_JOB_ID", "4242")  # read by the launcher as hydra.job.id
    slurm = FakeSlurm(tmp_path)
    monkeypatch.setattr(
        submitit.AutoExecutor, "map_array", lambda ex, fn, *it: slurm.map_array(ex, fn, *it)
    )
    original = build.build_callbacks
    monkeypatch.setattr(build, "build_callbacks", lambda c: original(c) + [SignalDuringStep(3)])
    task = [*TINY, "steps=5", "callbacks.checkpoint.every_n_iterations=100"]
    task += ["callbacks.samples=null", f"paths.root_dir={tmp_path}"]
    launcher = _slurm_launcher(["hydra/job_logging=none", "hydra/hydra_logging=none", *task])
    assert launcher.launch([task], initial_job_idx=0) == [None]  # it exited
    (job,) = _jobs(tmp_path)
    # USR2 came during iteration 3: the handler ran once iteration 3 had finished and was saved
    assert slurm.saved_at_signal == [3] and _iteration(job) == 3
    assert (job / "checkpoints" / "iter_0000003.ckpt").is_file()
    # the yaml's settings are valid for submitit, whose sbatch script asks SLURM for USR2
    # two minutes before the end
    sbatch = _make_sbatch_string(command="python", folder=tmp_path, **slurm.parameters)
    assert "#SBATCH --signal=USR2@120" in sbatch and "#SBATCH --time=4320" in sbatch

    # the requeued job (a new process: unpickled later) writes into the same job dir and resumes
    time.sleep(1.1)  # the sweep dir has a time stamp: it must not be resolved again
    monkeypatch.setattr(build, "build_callbacks", original)
    delayed = submitit.helpers.DelayedSubmission.load(slurm.requeued[0])
    assert delayed.result().return_value is None  # the job completed
    assert _jobs(tmp_path) == [job] and _iteration(job) == 5
    with (job / "metrics.csv").open() as f:
        logged = [float(r["iteration"]) for r in csv.DictReader(f) if r.get("loss/G/total")]
    assert logged[:2] == [1, 2] and logged[-2:] == [4, 5]


def test_preemption_callback_leaves_plain_runs_alone() -> None:
    callback = PreemptionCheckpoint(["SIGUSR1", "SIGUSR2"], [])
    assert signal.getsignal(signal.SIGUSR2) == signal.SIG_DFL
    callback.on_fit_start(None, None)  # type: ignore[arg-type]
    assert signal.getsignal(signal.SIGUSR2) == signal.SIG_DFL  # no handler: nothing to defer
    with pytest.raises(ConfigError, match="unknown signal SIGFOO in callbacks.preemption"):
        PreemptionCheckpoint(["SIGFOO"], [])


def test_slurm_launcher_config_composes(tmp_path: Path) -> None:
    launcher = _slurm_launcher(["hydra.launcher.tasks_per_node=2", f"paths.root_dir={tmp_path}"])
    config: DictConfig = launcher.config
    assert type(launcher).__name__ == "SlurmLauncher"
    assert launcher.params["tasks_per_node"] == 2 and launcher.params["signal_delay_s"] == 120
    folder = str(launcher.params["submitit_folder"])
    assert folder.startswith(str(config.hydra.sweep.dir)) and folder.endswith(".submitit/%j")
    assert config.resume is True  # what makes a requeued job continue
