"""SPADE learns on the synthetic scenes: its images agree better with the input label maps.

The quantity is the label-to-image papers' own (pix2pixHD Sec. 4, SPADE Sec. 4): segment the
generated images and score them against the input label map. The segmenter is
ganzoo.metrics.colour_segmenter, fitted on real synthetic images, since no pretrained
segmentation network is available offline.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ganzoo.cli.build import build_datamodule, build_task, train
from ganzoo.metrics.colour_segmenter import ColourSegmenter, pixel_accuracy

RUN = [
    "logger=csv",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "callbacks.samples=null",
    "data.resolution=32",
    "data.batch_size=8",
    "steps=250",
    "callbacks.checkpoint.every_n_iterations=250",
    "model.ema.decay=0.9",
    "optim.decay_start=1.0",
]


def _label_accuracy(task, batch, segmenter: ColourSegmenter) -> float:
    images = task.sample_ema(batch, task.sample_latents(batch.size, None))
    return pixel_accuracy(segmenter.predict(images), batch.label_map)


def test_spade_outputs_agree_with_label_maps_after_training(make_cfg, tmp_path: Path) -> None:
    torch.manual_seed(0)
    cfg = make_cfg(*RUN, run_dir=tmp_path / "run")
    dm = build_datamodule(cfg)
    batch = dm.fixed_batch(48)
    segmenter = ColourSegmenter().fit(batch.image, batch.label_map, int(cfg.data.label_nc))
    real = pixel_accuracy(segmenter.predict(batch.image), batch.label_map)

    untrained = build_task(cfg)
    before = _label_accuracy(untrained, batch, segmenter)
    train(cfg)
    trained = build_task(cfg)
    state = torch.load(tmp_path / "run/checkpoints/last.ckpt", weights_only=True)["state_dict"]
    trained.load_state_dict(state)
    after = _label_accuracy(trained, batch, segmenter)

    assert real > 0.8  # the segmenter reads real scenes well
    assert after > 0.5 and after > before + 0.3, (before, after, real)
