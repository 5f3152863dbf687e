"""python -m ganzoo.info model=<m> data=<d> — parameter counts and shapes as one JSON object.
python -m ganzoo.info ckpt=PATH — what a checkpoint holds, as one JSON object: its model and
data, iteration, parameter counts and, for a release converted by ganzoo.convert, the
provenance (source files, their SHA-256, what the release did not hold).

Networks are built on the meta device, so paper-scale configurations cost no memory.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from ganzoo.cli.build import build_task, choice, example_batch
from ganzoo.cli.entry import run
from ganzoo.core.errors import ConfigError


def describe(cfg: DictConfig) -> dict:
    with torch.device("meta"):
        task = build_task(
            cfg, perceptual=lambda: None
        )  # losses are not networks: skip weight files
        batch = example_batch(cfg, task.required_fields(), 1, "meta")
        shapes = task.io_shapes(batch)
    params = {
        name: sum(p.numel() for p in net.parameters() if p.requires_grad)
        for name, net in task.networks().items()
    }
    return {
        "model": choice(cfg, "model"),
        "data": choice(cfg, "data"),
        "resolution": [batch.image.shape[-2], batch.image.shape[-1]],
        "parameters": params,
        "shapes": shapes,
    }


def describe_checkpoint(path: Path) -> dict[str, Any]:
    """Model, data, iteration, parameter counts and provenance of a ganzoo checkpoint."""
    if not path.is_file():
        raise ConfigError(f"ckpt={path} does not exist")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if "ganzoo_config" not in checkpoint:
        raise ConfigError(f"ckpt={path} is not a ganzoo checkpoint (no ganzoo_config)")
    config, state = checkpoint["ganzoo_config"], checkpoint["state_dict"]
    counts: dict[str, int] = {}
    for key, value in state.items():
        if "." in key and value.is_floating_point():
            counts[key.split(".")[0]] = counts.get(key.split(".")[0], 0) + value.numel()
    return {
        "checkpoint": str(path),
        "model": config["model"]["_target_"],
        "data": config["data"]["name"],
        "resolution": config["data"]["resolution"],
        "iteration": int(state["iteration"]) if "iteration" in state else None,
        "tensor_elements": counts,  # parameters and buffers per network
        "source": checkpoint.get("ganzoo_source"),  # converted releases: files and SHA-256
    }


def main_fn(cfg: DictConfig) -> None:
    if cfg.ckpt is not None:
        print(json.dumps(describe_checkpoint(Path(str(cfg.ckpt))), indent=1))
    else:
        print(json.dumps(describe(cfg)))


def main() -> None:
    run("info", main_fn, quiet=True)


if __name__ == "__main__":
    main()
