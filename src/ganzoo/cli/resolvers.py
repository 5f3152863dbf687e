"""OmegaConf resolvers the configs use (registered once, by the entry points)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from omegaconf import OmegaConf


def _add(*values: int | bool) -> int:
    return int(sum(int(v) for v in values))


def _height(width: int, aspect_ratio: float) -> int:
    """Image height from width and width/height ratio (SPADE's crop_size / aspect_ratio)."""
    return int(round(width / aspect_ratio))


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


def register() -> None:
    for name, fn in (
        ("ganzoo.add", _add),
        ("ganzoo.height", _height),
        ("ganzoo.wandb_offline", wandb_offline),
        ("ganzoo.run_id", run_id),
    ):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)
