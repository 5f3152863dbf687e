"""python -m ganzoo.sample ckpt=PATH [action=render|cluster] ... — use a trained model.

A run is rebuilt from one checkpoint: the task from the resolved config every checkpoint
stores (ckpt["ganzoo_config"]), its weights loaded with weights_only=True; loss networks that
come from weight files (VGG) are not built. Actions (conf/sample.yaml):

- render: a label-map PNG (label ids; optionally an instance-id PNG) -> `num_samples` images of
  the EMA generator, written with a grid (label map | samples) to <run_dir>/samples/render.
  The latents come from the task's `render_latents(batch, clusters, choice, generator)` when it
  has one (pix2pixHD: instance features from the clustered centres, `centres` choosing one per
  class, Sec. 3.4 and Fig. 7), else from its `sample_latents` with `seed` (SPADE: z with
  use_vae, nothing otherwise).
- cluster: pix2pixHD's encode_features.py: the feature encoder over the run's training split,
  k-means per class, the centres saved with their provenance to <ckpt dir>/feature_clusters.pt.
  Needs a task with `fit_feature_clusters` (pix2pixHD trained with model.instance_feat=true).

Another model adds its sampling by giving its task one of these methods, or an action here.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from PIL import Image
from torch import Tensor

from ganzoo.cli.build import build_datamodule, build_task, provenance
from ganzoo.cli.entry import run
from ganzoo.core.errors import ConfigError
from ganzoo.core.image import colorize_labels, grid, save_png, to_uint8
from ganzoo.core.weights import sha256_of
from ganzoo.data.batch import Batch, collate
from ganzoo.tasks.base import GANTask

CLUSTERS_FILE = "feature_clusters.pt"


def load_run(ckpt: Path, device: str) -> tuple[GANTask, DictConfig]:
    """(task in eval mode on `device` with the checkpoint's weights, the run's config)."""
    if not ckpt.is_file():
        raise ConfigError(f"ckpt={ckpt} does not exist")
    checkpoint = torch.load(ckpt, map_location="cpu", weights_only=True)
    if "ganzoo_config" not in checkpoint:
        raise ConfigError(f"ckpt={ckpt} is not a ganzoo checkpoint (no ganzoo_config)")
    run_cfg = OmegaConf.create(checkpoint["ganzoo_config"])
    task = build_task(run_cfg, perceptual=lambda: None)  # losses are not needed to sample
    task.load_state_dict(checkpoint["state_dict"])
    return task.to(device).eval(), run_cfg


def read_ids(path: str | Path) -> Tensor:
    """A PNG of integer ids (label or instance map) -> (H, W) long."""
    image = Image.open(path)
    if image.mode not in ("L", "I", "I;16", "P"):
        raise ConfigError(
            f"{path}: expected a one-channel PNG of ids (mode L, I, I;16 or P), got {image.mode}"
        )
    return torch.from_numpy(np.array(image).astype(np.int64))


def render(cfg: DictConfig, task: GANTask, ckpt: Path) -> dict[str, Any]:
    """Images for one label-map file; returns what was written."""
    if cfg.label_map is None:
        raise ConfigError("action=render needs label_map=FILE.png (a PNG of label ids)")
    label = read_ids(cfg.label_map)
    note = None
    if cfg.instance_map is not None:
        instance = read_ids(cfg.instance_map)
    else:
        instance = label
        if "instance_map" in task.required_fields():
            note = "no instance_map given: one instance per class (the label map itself)"
    if instance.shape != label.shape:
        raise ConfigError(
            f"instance_map is {tuple(instance.shape)}, label_map {tuple(label.shape)}"
        )
    n = int(cfg.num_samples)
    h, w = label.shape
    batch = Batch(
        image=torch.zeros(n, 3, h, w),  # not read by label-conditional generators' inputs
        label_map=label.expand(n, h, w).clone(),
        instance_map=instance.expand(n, h, w).clone(),
    ).to(task.device)
    g = torch.Generator().manual_seed(int(cfg.seed))
    render_latents: Callable[..., Tensor | None] | None = getattr(task, "render_latents", None)
    if render_latents is not None:
        clusters = _clusters_path(cfg, ckpt)
        centres = torch.load(clusters, weights_only=True)["centres"] if clusters.is_file() else None
        choice = {int(k): int(v) for k, v in (cfg.centres or {}).items()}
        latents = render_latents(batch, centres, choice, g)
    else:
        latents = task.sample_latents(n, g)
    images = task.sample_ema(batch, latents)
    out = Path(cfg.output) if cfg.output is not None else ckpt.parent.parent / "samples" / "render"
    stem = Path(str(cfg.label_map)).stem
    files = [save_png(to_uint8(images[i : i + 1])[0], out / f"{stem}_{i}.png") for i in range(n)]
    colours = colorize_labels(label[None].to(images.device), 1)
    row = grid([colours] + [images[i : i + 1] for i in range(n)])
    files.append(save_png(row, out / f"{stem}_grid.png"))
    return {"action": "render", "files": [str(f) for f in files], "note": note}


def cluster(cfg: DictConfig, task: GANTask, run_cfg: DictConfig, ckpt: Path) -> dict[str, Any]:
    """Per-class k-means centres of the feature encoder's features, saved with provenance."""
    fit = getattr(task, "fit_feature_clusters", None)
    if fit is None or getattr(task, "encoder", None) is None:
        raise ConfigError(
            f"{run_cfg.model._target_} has no instance features to cluster (action=cluster is "
            "for pix2pixHD trained with model.instance_feat=true)"
        )
    if "random_flip" in run_cfg.data.dataset:  # encode_features.py runs with --no_flip
        run_cfg.data.dataset.random_flip = False
    dm = build_datamodule(run_cfg)
    split = str(cfg.split) if cfg.split is not None else dm.train_split
    dataset = dm.build(split)
    size = len(dataset)  # type: ignore[arg-type]
    n = size if cfg.num_images is None else min(int(cfg.num_images), size)
    with torch.no_grad():
        centres = fit(_batches(dataset, n, int(cfg.batch_size)), int(cfg.n_clusters), int(cfg.seed))
    path = _clusters_path(cfg, ckpt)
    payload = {
        "centres": centres,  # {label id: (k, feat_num) float32}
        "provenance": {
            "checkpoint": str(ckpt.resolve()),
            "checkpoint_sha256": sha256_of(ckpt),
            "iteration": int(task.iteration),
            "data": str(run_cfg.data.name),
            "split": split,
            "num_images": n,
            "n_clusters": int(cfg.n_clusters),
            "seed": int(cfg.seed),
            **{k: str(v) for k, v in provenance().items()},
        },
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    counts = {int(k): int(v.shape[0]) for k, v in centres.items()}
    return {"action": "cluster", "file": str(path), "images": n, "centres_per_class": counts}


def _batches(dataset: Any, n: int, batch_size: int) -> Iterator[Batch]:
    """Items 0..n-1 of a dataset in order, collated into Batches (encode_features: serial)."""
    for start in range(0, n, batch_size):
        yield collate([dataset[i] for i in range(start, min(start + batch_size, n))])


def _clusters_path(cfg: DictConfig, ckpt: Path) -> Path:
    return Path(cfg.clusters) if cfg.clusters is not None else ckpt.parent / CLUSTERS_FILE


ACTIONS = ("render", "cluster")


def main_fn(cfg: DictConfig) -> dict[str, Any]:
    if cfg.action not in ACTIONS:
        raise ConfigError(f"unknown action={cfg.action}; valid: {', '.join(ACTIONS)}")
    if cfg.ckpt is None:
        raise ConfigError("ganzoo.sample needs ckpt=PATH (a run's checkpoints/last.ckpt)")
    ckpt = Path(str(cfg.ckpt))
    task, run_cfg = load_run(ckpt, str(cfg.device))
    if cfg.action == "render":
        result = render(cfg, task, ckpt)
    else:
        result = cluster(cfg, task, run_cfg, ckpt)
    print(json.dumps(result))
    return result


def main() -> None:
    run("sample", main_fn, quiet=True)


if __name__ == "__main__":
    main()
