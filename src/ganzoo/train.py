"""python -m ganzoo.train [group=choice ...] [key=value ...] — train a GAN (see conf/train.yaml)."""

from __future__ import annotations

from omegaconf import DictConfig

from ganzoo.cli.build import train
from ganzoo.cli.entry import run


def main_fn(cfg: DictConfig) -> float | None:
    metrics = train(cfg)
    target = cfg.optimized_metric
    return None if target is None else metrics[str(target)]


def main() -> None:
    run("train", main_fn)


if __name__ == "__main__":
    main()
