"""python -m ganzoo.evaluate — metrics of a checkpoint or of two image folders, as one JSON object.

    python -m ganzoo.evaluate ckpt=outputs/spade-synthetic/checkpoints/last.ckpt \
        metrics=[domain,miou]
    python -m ganzoo.evaluate real=DIR fake=DIR metrics=[fid,kid,is,pr] weights.inception=PATH

A checkpoint is evaluated as the training callback does (ganzoo.callbacks.metrics): the task is
rebuilt from the config stored in the checkpoint (``ganzoo_config``), its weights loaded with
``weights_only=True``, and its EMA generator makes ``metrics.num_samples`` images from the
inputs of the reference split. Two folders are compared image by image as they are (png / jpg /
jpeg files, not recursive, in name order; at most num_samples generated and num_real real ones),
like torch-fidelity's ``--input1 fake --input2 real``. The JSON (numbers and provenance) is
printed on stdout and written to ``evaluation.json`` beside the run of the checkpoint
(``<run>/evaluation.json`` for ``<run>/checkpoints/*.ckpt``; folders: outputs/evaluate/<time>/),
and the values are repeated in one line on stderr. Long steps (generating, extracting features,
training an evaluator) show progress bars on stderr.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from PIL import Image
from torch import Tensor

from ganzoo.callbacks.metrics import build_suite, counts, note_small_counts, prepare_evaluation
from ganzoo.cli.build import build_datamodule, load_run, provenance
from ganzoo.cli.entry import run
from ganzoo.core.console import progress
from ganzoo.core.errors import ConfigError
from ganzoo.metrics.suite import MetricSettings, MetricSuite

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda"):
        raise ConfigError(f"unknown device={name}; valid choices: auto, cpu, cuda")
    return torch.device(name)


def _settings(cfg: DictConfig) -> MetricSettings:
    values = OmegaConf.to_container(cfg.metrics, resolve=True)
    assert isinstance(values, dict)
    settings = MetricSettings.from_dict({str(k): v for k, v in values.items()})
    if not settings.compute:
        raise ConfigError("metrics=none: nothing to evaluate; choose e.g. metrics=[fid,kid]")
    return settings


def evaluate_checkpoint(cfg: DictConfig, settings: MetricSettings, device: torch.device) -> dict:
    """Rebuild the task of a checkpoint and score its EMA generator."""
    path = Path(str(cfg.ckpt))
    task, train_cfg = load_run(path, str(device))  # the losses' VGG19 is not built
    weights = OmegaConf.to_container(cfg.weights, resolve=True)
    assert isinstance(weights, dict)
    evaluation = prepare_evaluation(
        settings,
        build_datamodule(train_cfg),
        task,
        {str(k): v for k, v in weights.items()},
        str(cfg.paths.weights_dir),
        str(cfg.paths.cache_dir),
        device,
    )
    results = evaluation.run(task, rank=0, world_size=1, device=device)
    return {
        "ckpt": str(path),
        "iteration": int(task.iteration),
        "metrics": results,
        "provenance": evaluation.provenance(world_size=1),
    }


def _suite(
    cfg: DictConfig,
    settings: MetricSettings,
    dataset: Any,
    data_name: str,
    task: Any | None,
) -> MetricSuite:
    weights = OmegaConf.to_container(cfg.weights, resolve=True)
    assert isinstance(weights, dict)
    return build_suite(
        settings,
        dataset,
        data_name,
        task,
        {str(k): v for k, v in weights.items()},
        str(cfg.paths.weights_dir),
        str(cfg.paths.cache_dir),
    )


def image_files(folder: str | Path) -> list[Path]:
    """Image files directly in `folder`, sorted by name; a missing or empty folder is an error."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"{folder} is not a folder of images")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise ConfigError(f"{folder} holds no {', '.join(IMAGE_EXTENSIONS)} images")
    return files


def _load(path: Path) -> Tensor:
    """An image file as (3, H, W) float in [-1, 1] (exactly invertible to its uint8 pixels)."""
    with Image.open(path) as image:
        array = np.asarray(image.convert("RGB"), dtype=np.float32)
    return torch.from_numpy(array).permute(2, 0, 1) / 127.5 - 1.0


def _stream(files: list[Path], batch_size: int, device: torch.device) -> Any:
    """Batches (N, 3, H, W) of consecutive files with the same size."""
    batch: list[Tensor] = []
    for path in files:
        image = _load(path)
        if batch and (len(batch) == batch_size or image.shape != batch[0].shape):
            yield torch.stack(batch).to(device)
            batch = []
        batch.append(image)
    if batch:
        yield torch.stack(batch).to(device)


def evaluate_folders(cfg: DictConfig, settings: MetricSettings, device: torch.device) -> dict:
    """Compare a folder of generated images with a folder of real ones."""
    if cfg.real is None or cfg.fake is None:
        raise ConfigError("folder evaluation needs both real=DIR and fake=DIR")
    num_fake, num_real = counts(settings, 1 << 62)
    fake = image_files(str(cfg.fake))[:num_fake]
    real = image_files(str(cfg.real))[:num_real]
    suite = _suite(cfg, settings, [], "image_folder", None).to(device)
    note_small_counts(list(settings.compute), len(fake), len(real))
    if suite.reference_spaces():
        with progress(len(real), "features of the real images", "img") as bar:
            for images in _stream(real, settings.batch_size, device):
                suite.update_real(images)
                bar.update(len(images))
    with progress(len(fake), "features of the generated images", "img") as bar:
        for images in _stream(fake, settings.batch_size, device):
            suite.update_fake(images)
            bar.update(len(images))
    results = suite.compute()
    info = {"real": str(cfg.real), "fake": str(cfg.fake), "num_fake": len(fake)}
    info["num_real"] = len(real) if suite.reference_spaces() else 0
    return {"metrics": results, "provenance": {**info, **suite.provenance()}}


def evaluate(cfg: DictConfig) -> dict:
    """The JSON object `python -m ganzoo.evaluate` prints (and writes to the run dir)."""
    settings = _settings(cfg)
    device = _device(str(cfg.device))
    if cfg.ckpt is not None and (cfg.real is not None or cfg.fake is not None):
        raise ConfigError("give either ckpt=PATH or real=DIR fake=DIR, not both")
    if cfg.ckpt is None and cfg.real is None and cfg.fake is None:
        raise ConfigError("nothing to evaluate: give ckpt=PATH, or real=DIR and fake=DIR")
    with torch.no_grad():
        if cfg.ckpt is not None:
            result = evaluate_checkpoint(cfg, settings, device)
        else:
            result = evaluate_folders(cfg, settings, device)
    result["provenance"]["run"] = provenance()
    return result


def main_fn(cfg: DictConfig) -> None:
    result = evaluate(cfg)
    run_dir = Path(str(cfg.paths.run_dir))
    run_dir.mkdir(parents=True, exist_ok=True)
    target = run_dir / "evaluation.json"
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    os.replace(tmp, target)
    print(json.dumps(result), flush=True)
    values = ", ".join(f"{k} {v:.4g}" for k, v in result["metrics"].items())
    print(f"ganzoo: {values} (written to {target})", file=sys.stderr, flush=True)


def main() -> None:
    run("evaluate", main_fn)


if __name__ == "__main__":
    main()
