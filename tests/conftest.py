"""Shared fixtures: compose the real configs (conf/) the way `python -m ganzoo.train` does."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from ganzoo.cli import resolvers
from ganzoo.cli.preflight import CONFIG_DIR

REPO = Path(__file__).resolve().parents[1]

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


def compose_train(run_dir: Path, overrides: list[str], config_name: str = "train") -> DictConfig:
    """The composed train config with Hydra's runtime info set, runs written to run_dir."""
    resolvers.register()
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name, overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(run_dir)
        cfg.hydra.job.num = 0
    HydraConfig.instance().set_config(cfg)
    GlobalHydra.instance().clear()
    return cfg


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One intra-op thread for a module's tests: the 2 CPU cores of the test machines are shared
    with other jobs (use with `pytestmark = pytest.mark.usefixtures("one_thread")`)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def make_cfg(tmp_path: Path) -> Callable[..., DictConfig]:
    def make(*overrides: str, run_dir: Path | None = None) -> DictConfig:
        return compose_train(run_dir or tmp_path / "run", list(overrides))

    return make


def max_relative_error(ours: torch.Tensor, ref: torch.Tensor) -> float:
    """max |ours - ref| over max |ref|: the golden forward tests' measure."""
    scale = ref.float().abs().max().clamp_min(1e-12)
    return float((ours.float() - ref.float()).abs().max() / scale)


def close(ours: torch.Tensor, ref: torch.Tensor, rel: float = 1e-5) -> bool:
    """Equal to `rel` of the golden tensor's largest magnitude."""
    return max_relative_error(ours, ref) <= rel


def assert_close(ours: torch.Tensor, ref: torch.Tensor, rel: float = 1e-5) -> None:
    err = max_relative_error(ours, ref)
    assert err <= rel, f"max relative error {err:.2e} > {rel:g}"


def norm_relative_error(ours: torch.Tensor, ref: torch.Tensor) -> float:
    """||ours - ref|| / ||ref|| in float64: the golden training tests' measure."""
    return float((ours.double() - ref.double()).norm() / ref.double().norm().clamp_min(1e-30))


def fit_batches(
    task: Any, samples: list[dict[str, Any]], batch_size: int, batches: int = 3
) -> None:
    """Train `task` on `batches` batches of `samples` (in order) with a bare Lightning trainer:
    the golden parity tests' replay of the official code's iterations."""
    import pytorch_lightning as pl
    from torch.utils.data import DataLoader

    from ganzoo.data.batch import collate

    trainer = pl.Trainer(
        max_epochs=1, limit_train_batches=batches, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu",
    )  # fmt: skip
    trainer.fit(task, DataLoader(samples, batch_size=batch_size, collate_fn=collate))


def run_cli(module: str, *args: str, cwd: Path | None = None, timeout: int = 300):
    """Run `python -m <module> args...` and return the CompletedProcess (text)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HYDRA_FULL_ERROR": "0"}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        cwd=cwd or REPO,
        env=env,
        timeout=timeout,
    )
