"""python -m ganzoo.info model=<m> data=<d> — parameter counts and shapes as one JSON object.

Networks are built on the meta device, so paper-scale configurations cost no memory.
"""

from __future__ import annotations

import json

import torch
from omegaconf import DictConfig

from ganzoo.cli.build import build_task, choice, example_batch
from ganzoo.cli.entry import run


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


def main_fn(cfg: DictConfig) -> None:
    print(json.dumps(describe(cfg)))


def main() -> None:
    run("train", main_fn, quiet=True)


if __name__ == "__main__":
    main()
