"""OmegaConf resolvers the configs use (registered once, by the entry points)."""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

WANDB_TAG_LENGTH = 64  # W&B rejects longer tags


def _add(*values: int | bool) -> int:
    return int(sum(int(v) for v in values))


def _height(width: int, aspect_ratio: float) -> int:
    """Image height from width and width/height ratio (SPADE's crop_size / aspect_ratio)."""
    return int(round(width / aspect_ratio))


def _width(height: int, aspect_ratio: float) -> int:
    """Image width from height and width/height ratio (debug=smoke: a fixed height)."""
    return int(round(height * aspect_ratio))


def evaluation_dir(ckpt: str | None, otherwise: str) -> str:
    """Where ganzoo.evaluate writes: a checkpoint's run dir (<run>/checkpoints/x.ckpt -> <run>,
    else the checkpoint's folder), or `otherwise` for image folders."""
    if ckpt is None:
        return otherwise
    path = Path(str(ckpt))
    return str(path.parent.parent if path.parent.name == "checkpoints" else path.parent)


def wandb_offline() -> bool:
    """Offline unless W&B credentials or an explicit online mode are configured."""
    mode = os.environ.get("WANDB_MODE", "").lower()
    if mode in ("offline", "disabled", "dryrun"):
        return True
    if mode == "online" or os.environ.get("WANDB_API_KEY"):
        return False
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    return not (netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="ignore"))


def run_id(run_dir: str) -> str:
    """A W&B run id kept in <run_dir>/wandb_run_id, so a resumed run continues the same run."""
    path = Path(run_dir) / "wandb_run_id"
    if path.is_file():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    rid = uuid.uuid4().hex[:12]
    path.write_text(rid + "\n")
    return rid


def _multirun() -> Any:
    """Hydra's config of this job when it is one job of a multirun sweep, else None."""
    if not HydraConfig.initialized():
        return None
    hydra_cfg = HydraConfig.get()
    return hydra_cfg if hydra_cfg.mode == RunMode.MULTIRUN else None


def sweep_group() -> str | None:
    """W&B group of a run: the sweep dir's name in a multirun (shared by its jobs), else None."""
    hydra_cfg = _multirun()
    return None if hydra_cfg is None else Path(str(hydra_cfg.sweep.dir)).name


def sweep_overrides() -> list[str]:
    """This job's `key=value` for every key the sweep varies (none outside a multirun).

    The varying keys are the sweep overrides of the command line (`optim.lr_g=1e-4,2e-4`,
    `model=spade,pix2pixhd`, `seed=range(3)`), read from the sweep dir's multirun.yaml (every
    launcher writes it before starting jobs), and the keys of an Optuna sweeper's search space.
    """
    hydra_cfg = _multirun()
    if hydra_cfg is None:
        return []
    parser = OverridesParser.create()
    varying: list[str] = []
    record = Path(str(hydra_cfg.sweep.dir)) / "multirun.yaml"
    if record.is_file():
        sweep = OmegaConf.select(OmegaConf.load(record), "hydra.overrides.task", default=[])
        varying += [
            o.key_or_group for o in parser.parse_overrides(list(sweep)) if o.is_sweep_override()
        ]
    params = OmegaConf.select(hydra_cfg, "sweeper.params", default=None)
    if isinstance(params, DictConfig):
        varying += [str(k) for k in params if str(k) not in varying]
    job = {
        o.key_or_group: str(o.input_line)
        for o in parser.parse_overrides(list(hydra_cfg.overrides.task))
    }
    return [job[key] for key in varying if key in job]


def wandb_tags(*fixed: str) -> list[str]:
    """W&B tags: the given ones (model, data) and this job's values of the sweep's varying keys."""
    tags = [str(t) for t in fixed] + sweep_overrides()
    return [t[:WANDB_TAG_LENGTH] for t in dict.fromkeys(tags)]


def wandb_name(run_name: str) -> str:
    """W&B run name: run_name, followed in a multirun by the job number and varying values."""
    hydra_cfg = _multirun()
    if hydra_cfg is None:
        return run_name
    return " ".join([f"{run_name}#{hydra_cfg.job.num}", *sweep_overrides()])


def short_dirname(name: str, limit: int = 120) -> str:
    """A job dir name of at most `limit` characters: longer ones keep their start + a hash."""
    if len(name) <= limit:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:10]
    return f"{name[: limit - 11]}_{digest}"


def register() -> None:
    for name, fn in (
        ("ganzoo.add", _add),
        ("ganzoo.height", _height),
        ("ganzoo.width", _width),
        ("ganzoo.evaluation_dir", evaluation_dir),
        ("ganzoo.wandb_offline", wandb_offline),
        ("ganzoo.run_id", run_id),
        ("ganzoo.sweep_group", sweep_group),
        ("ganzoo.wandb_tags", wandb_tags),
        ("ganzoo.wandb_name", wandb_name),
        ("ganzoo.short_dirname", short_dirname),
    ):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)
