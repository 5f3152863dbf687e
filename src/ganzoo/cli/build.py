"""Wiring the entry points share: config -> datamodule, task, callbacks, loggers, trainer."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from ganzoo.callbacks.checkpoint import RunStart
from ganzoo.callbacks.run_info import git_state, machine
from ganzoo.cli.rundir import (
    RunDirLock,
    check_free_space,
    checkpoint_bytes,
    checkpoint_problem,
    first_process,
    move_previous_run,
    resume_checkpoint,
)
from ganzoo.core.errors import ConfigError, DataError, GanzooError
from ganzoo.data.batch import Batch, check_fields
from ganzoo.data.datamodule import GANDataModule
from ganzoo.tasks.base import GANTask


def unwrap(fn: Callable[[], Any]) -> Any:
    """Call fn; a GanzooError raised inside Hydra's instantiate surfaces as itself."""
    try:
        return fn()
    except InstantiationException as err:
        cause: BaseException | None = err
        while cause is not None:
            if isinstance(cause, GanzooError):
                raise cause from None
            cause = cause.__cause__ or cause.__context__
        raise


def choice(cfg: DictConfig, group: str) -> str:
    """The chosen config of a group (e.g. 'spade'), from Hydra's record of the run."""
    return str(HydraConfig.get().runtime.choices[group])


def check_adapter(cfg: DictConfig) -> None:
    """The dataset adapter named by data.dataset._target_ must exist."""
    target = str(cfg.data.dataset._target_)
    module, _, name = target.rpartition(".")
    try:
        getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        raise DataError(
            f"data={cfg.data.name}: the file adapter {target} is not part of this version of "
            "ganzoo yet; its config exists for `ganzoo.info` (train on data=synthetic meanwhile)"
        ) from None


def build_task(cfg: DictConfig, **overrides: Any) -> GANTask:
    """Instantiate conf/model with the optimiser and run length."""
    optim = OmegaConf.to_container(cfg.optim, resolve=True)
    task = unwrap(
        lambda: instantiate(
            cfg.model, optim=optim, total_iterations=int(cfg.steps), _convert_="all", **overrides
        )
    )
    if not isinstance(task, GANTask):
        raise ConfigError(f"model._target_ must be a GANTask subclass, got {type(task).__name__}")
    return task


def build_datamodule(cfg: DictConfig) -> GANDataModule:
    check_adapter(cfg)
    dm = unwrap(lambda: instantiate(cfg.data))
    assert isinstance(dm, GANDataModule)
    return dm


def example_batch(cfg: DictConfig, fields: tuple[str, ...], n: int, device: str) -> Batch:
    """A Batch of zeros with the given fields at the data config's resolution."""
    w = int(cfg.data.resolution)
    h = int(round(w / float(cfg.data.aspect_ratio)))

    def length() -> int:  # captions: full-length token rows (the caption datasets set it)
        return int(cfg.data.dataset.caption_length)

    make: dict[str, Callable[[], torch.Tensor]] = {
        "image": lambda: torch.zeros(n, 3, h, w, device=device),
        "label_map": lambda: torch.zeros(n, h, w, dtype=torch.long, device=device),
        "instance_map": lambda: torch.zeros(n, h, w, dtype=torch.long, device=device),
        "class_id": lambda: torch.zeros(n, dtype=torch.long, device=device),
        "attributes": lambda: torch.zeros(n, int(cfg.data.num_attributes), device=device),
        "domain_mask": lambda: torch.zeros(n, 2, device=device),  # StarGAN: two datasets
        "caption_tokens": lambda: torch.ones(n, length(), dtype=torch.long, device=device),
        "caption_lengths": lambda: torch.full((n,), length(), dtype=torch.long, device=device),
    }
    return Batch(**{f: make[f]() for f in fields})


def build_callbacks(cfg: DictConfig) -> list[pl.Callback]:
    return [_instantiate(c) for c in cfg.callbacks.values() if c is not None]


def build_loggers(cfg: DictConfig) -> list[Any]:
    return [_instantiate(c) for c in cfg.logger.values() if c is not None]


def _instantiate(node: Any) -> Any:
    return unwrap(lambda: instantiate(node))


def provenance() -> dict[str, str]:
    """Where a run ran: git commit, host, versions (a short form of run_info.json)."""
    git, host = git_state(), machine()
    return {
        "git_commit": str(git["git_commit"]),
        **{k: str(host[k]) for k in ("host", "python", "torch", "lightning")},
    }


def train(cfg: DictConfig) -> dict[str, float]:
    """Build everything from the composed config and fit; returns the last logged values.

    The run holds its run dir's lock throughout (ganzoo.cli.rundir: one run per dir)."""
    run_dir = Path(str(cfg.paths.run_dir))
    run_dir.mkdir(parents=True, exist_ok=True)
    if not first_process():  # started by the first process of this run, which holds the lock
        return _train(cfg, run_dir)
    with RunDirLock(run_dir):
        return _train(cfg, run_dir)


def _train(cfg: DictConfig, run_dir: Path) -> dict[str, float]:
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    ckpt = resume_checkpoint(cfg, run_dir)
    if ckpt is None and first_process() and (moved := move_previous_run(run_dir)) is not None:
        print(f"ganzoo: starting over: the previous run in {run_dir} was moved to {moved}")
    dm = build_datamodule(cfg)
    task = build_task(cfg)
    check_fields(choice(cfg, "model"), task.required_fields(), str(cfg.data.name), dm.provides)
    dm.validate()
    if first_process():
        check_free_space(run_dir, checkpoint_bytes(task))
    resolved = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(resolved, dict)
    task.run_config = {str(k): v for k, v in resolved.items()}
    records = RunStart(run_dir / "config.yaml", OmegaConf.to_yaml(OmegaConf.create(resolved)))
    loggers = build_loggers(cfg)
    for lg in loggers:
        lg.log_hyperparams({**resolved, "provenance": provenance()})
    trainer = unwrap(
        lambda: instantiate(
            cfg.trainer,
            callbacks=[*build_callbacks(cfg), records],
            logger=loggers,
            default_root_dir=run_dir,
        )
    )
    if ckpt is not None:
        print(f"ganzoo: resuming from {ckpt}")
        if cfg.init_from is not None:
            print(f"ganzoo: init_from={cfg.init_from} ignored: the run resumes its own checkpoint")
    elif cfg.init_from is not None:
        init_from(task, Path(str(cfg.init_from)))
    trainer.fit(task, datamodule=dm, ckpt_path=ckpt, weights_only=True)
    return {k: float(v) for k, v in trainer.callback_metrics.items()}


def init_from(task: GANTask, path: Path) -> None:
    """Fine-tuning: the networks' weights of a ganzoo checkpoint (trained or converted) into
    `task`; optimisers, schedules and the iteration count start fresh (unlike a resume)."""
    if not path.is_file():
        raise ConfigError(f"init_from={path} does not exist")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if "ganzoo_config" not in checkpoint:
        raise ConfigError(f"init_from={path} is not a ganzoo checkpoint (no ganzoo_config)")
    theirs = str(checkpoint["ganzoo_config"]["model"]["_target_"])
    ours = type(task).__module__ + "." + type(task).__name__
    if theirs != ours:
        raise ConfigError(f"init_from={path} holds a {theirs} run; this run is {ours}")
    own = task.state_dict()
    counters = ("iteration", "images_seen")
    state = {k: v for k, v in checkpoint["state_dict"].items() if k not in counters}
    unknown = sorted(k for k in state if k not in own)
    missing = sorted(k for k in own if k not in state and k not in counters)
    shapes = [k for k in state if k in own and tuple(state[k].shape) != tuple(own[k].shape)]
    for problem, keys in (("unknown", unknown), ("missing", missing), ("of other shapes", shapes)):
        if keys:
            listed = ", ".join(keys[:6]) + (f" (+{len(keys) - 6} more)" if len(keys) > 6 else "")
            raise ConfigError(f"init_from={path}: keys {problem} in this model: {listed}")
    task.load_state_dict({**own, **state})
    source = checkpoint.get("ganzoo_source")
    origin = f" (converted from {source['files'][0]['name']})" if source and source["files"] else ""
    print(f"ganzoo: initialised from {path}{origin}: weights only, fresh optimisers, iteration 0")


def load_run(ckpt: Path, device: str) -> tuple[GANTask, DictConfig]:
    """(task in eval mode on `device` with the checkpoint's weights, the run's config)."""
    if not ckpt.is_file():
        raise ConfigError(f"ckpt={ckpt} does not exist")
    if (problem := checkpoint_problem(ckpt)) is not None:
        raise ConfigError(f"ckpt={ckpt} {problem}")
    checkpoint = torch.load(ckpt, map_location="cpu", weights_only=True)
    if "ganzoo_config" not in checkpoint:
        raise ConfigError(f"ckpt={ckpt} is not a ganzoo checkpoint (no ganzoo_config)")
    run_cfg = OmegaConf.create(checkpoint["ganzoo_config"])
    task = build_task(run_cfg, perceptual=lambda: None)  # losses are not needed to sample
    task.load_state_dict(checkpoint["state_dict"])
    return task.to(device).eval(), run_cfg
