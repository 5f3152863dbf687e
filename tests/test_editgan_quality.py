"""EditGAN quality on the synthetic scenes (slow: minutes on a CPU). A small StyleGAN2 (the
synthetic preset at a quarter of its width, 150 iterations), EditGAN on it (60 encoder
iterations, 8 annotated scenes, 150 branch iterations; the untrained LPIPS stand-in), then the
measurements of experiments/editgan/measure.py on held-out scenes, each against a baseline:

- the branch's mIoU on embedded held-out scenes beats predicting every pixel as the most
  frequent annotated class;
- an edit that grows one object changes the image mostly where the mask was edited (more of the
  change inside the region than the region's share of the image), and the achieved mask of that
  object is closer to the target than before the edit;
- the saved vector applied to other scenes showing that class grows it on average.
The full-size numbers are in the README (EditGAN section).
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from ganzoo.cli.build import load_run, train
from ganzoo.tasks.editgan import EditGANTask
from ganzoo.tasks.editing import edit, segment
from tests.conftest import REPO, compose_train

sys.path.insert(0, str(REPO / "experiments" / "editgan"))
from measure import (  # noqa: E402
    branch_and_embedding,
    enlarge_largest_object,
    held_out,
    transfer,
)

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]


def test_editgan_segments_edits_locally_and_transfers(tmp_path: Path) -> None:
    common = ["data=synthetic", "logger=none", "callbacks.samples=null",
              f"paths.output_dir={tmp_path}"]  # fmt: skip
    train(compose_train(tmp_path / "sg2", [
        "model=stylegan2", *common, "steps=150", "data.batch_size=8",
        "model.generator.channel_base=256", "model.generator.channel_max=64",
    ]))  # fmt: skip
    sg2 = tmp_path / "sg2" / "checkpoints" / "last.ckpt"
    train(compose_train(tmp_path / "eg", [
        "model=editgan", *common, f"model.stylegan2_ckpt={sg2}",
        "model.lpips.untrained_stand_in=true",
        "model.encoder_steps=60", "data.annotated=8", "model.annotation_embedding_steps=30",
        "steps=211", "model.encoder.base_channels=8", "model.encoder.feature_dim=64",
    ]))  # fmt: skip
    task, _ = load_run(tmp_path / "eg" / "checkpoints" / "last.ckpt", "cpu")
    assert isinstance(task, EditGANTask)
    images, labels = held_out(8, task.resolution)
    scores, ws = branch_and_embedding(task, images, labels, steps=30)
    majority = int(torch.bincount(task.annotated_labels.reshape(-1)).argmax())
    baseline = float(((labels == majority).sum()) / labels.numel())
    print("branch and embedding:", scores, "majority pixel accuracy", baseline)
    assert scores["branch_pixel_accuracy"] > baseline + 0.05

    with torch.no_grad():
        masks = segment(task, ws)[1].argmax(1)
    settings = replace(task.edit_settings, steps=30)
    done = 0
    for i in range(len(ws)):
        made = enlarge_largest_object(masks[i], grow=2)
        if made is None:
            continue
        target, label = made
        result = edit(task, ws[i : i + 1], target, settings=settings)
        change = (result.image_after - result.image_before).abs().sum(dim=(0, 1))
        inside = float(change[result.region].sum() / change.sum())
        share = float(result.region.float().mean())
        iou_before = _iou(result.mask_before == label, target == label)
        iou_after = _iou(result.mask_after == label, target == label)
        moved = transfer(task, result.vector, ws, masks, i, label)
        print(f"edit {i}: label {label}, change inside {inside:.3f} (region {share:.3f}), "
              f"IoU {iou_before:.3f} -> {iou_after:.3f}, transfer {moved}")  # fmt: skip
        assert inside > share
        assert iou_after > iou_before
        if moved:
            assert sum(m["growth"] for m in moved) / len(moved) > 0
        done += 1
        if done == 2:
            break
    assert done > 0, "no held-out scene shows an object in the branch's masks"


def _iou(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a & b).sum() / (a | b).sum().clamp(min=1))
