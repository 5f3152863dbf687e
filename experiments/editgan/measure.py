"""EditGAN on the synthetic scenes: train the encoder and the branch on a trained StyleGAN2, then
measure what issue 15 asks for; results as one JSON object (and DIR/results.json).

    python experiments/editgan/measure.py --out outputs/editgan-measure
        --stylegan2 outputs/stylegan2-synthetic/checkpoints/last.ckpt
        [--encoder-steps 300] [--branch-steps 300] [--annotated 16]

- branch: mIoU and pixel accuracy of the branch's segmentation of held-out (val) scenes embedded
  in W+ (encoder + optimisation), against their true label maps;
- embedding: the perceptual distance (the LPIPS configured: the untrained stand-in unless
  weights.vgg16 / weights.lpips_vgg are given) and PSNR of G(ws) against the held-out scenes;
- edits: on held-out scenes, the largest object's mask grown by `--grow` pixels (the branch's
  own mask as the start): the fraction of the image change inside the edited region, the IoU of
  the achieved and the target mask of that class, seconds per edit;
- transfer: each edit vector applied (scale 1) to the other held-out scenes that show the class:
  the relative growth of that class's area (the source edit's growth for comparison);
- timing: seconds per edit (official 30 steps, one thread) at 64x64 and 128x128 with networks of
  the synthetic widths (random weights: the cost does not depend on them).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from ganzoo.cli.build import load_run
from ganzoo.cli.editing import edit_quality
from ganzoo.data.synthetic import SyntheticScenes
from ganzoo.losses.lpips import random_lpips
from ganzoo.models.editgan import FPNEncoder
from ganzoo.tasks.editgan import EditGANTask
from ganzoo.tasks.editing import EditVector, apply_edits, dilate, edit, embed, segment

OBJECTS = range(8, 15)  # circle .. ring in the synthetic scenes


def train_editgan(stylegan2: Path, out: Path, overrides: list[str]) -> Path:
    """An EditGAN run (model_data/editgan_synthetic.yaml + overrides); its last checkpoint."""
    subprocess.run(
        [sys.executable, "-m", "ganzoo.train", "model=editgan", "data=synthetic", "logger=csv",
         f"paths.output_dir={out}", f"model.stylegan2_ckpt={stylegan2}", *overrides],
        check=True,
    )  # fmt: skip
    return out / "editgan-synthetic" / "checkpoints" / "last.ckpt"


def held_out(n: int, resolution: int, seed: int = 7) -> tuple[torch.Tensor, torch.Tensor]:
    """n validation scenes: images (n, 3, R, R) and label maps (n, R, R)."""
    data = SyntheticScenes(split="val", length=max(n, 16), height=resolution, width=resolution,
                           seed=seed, caption_length=18)  # fmt: skip
    items = [data[i] for i in range(n)]
    return torch.stack([s["image"] for s in items]), torch.stack([s["label_map"] for s in items])


def segmentation_scores(pred: torch.Tensor, target: torch.Tensor, k: int) -> dict[str, float]:
    """mIoU over the classes present in prediction or target, and pixel accuracy."""
    confusion = torch.bincount(target.reshape(-1) * k + pred.reshape(-1), minlength=k * k)
    confusion = confusion.reshape(k, k).double()
    inter = confusion.diagonal()
    union = confusion.sum(0) + confusion.sum(1) - inter
    present = union > 0
    return {"miou": float((inter[present] / union[present]).mean()),
            "pixel_accuracy": float(inter.sum() / confusion.sum())}


def branch_and_embedding(task: EditGANTask, images: torch.Tensor, labels: torch.Tensor,
                         steps: int | None) -> tuple[dict[str, float], torch.Tensor]:
    settings = None if steps is None else replace(task.embed_settings, steps=steps)
    start = time.perf_counter()
    ws = torch.cat([embed(task, chunk, settings) for chunk in images.split(8)])
    seconds = (time.perf_counter() - start) / len(images)
    with torch.no_grad():
        recon, logits = segment(task, ws)
        distance = task.lpips()(recon, images).mean()
    mse = ((recon.clamp(-1, 1) - images) / 2).square().mean(dim=(1, 2, 3))
    scores = segmentation_scores(logits.argmax(1), labels, task.num_classes)
    encoder_only = None
    with torch.no_grad():
        task.encoder.eval()
        _, logits_e = segment(task, task.encoder(images))
        encoder_only = segmentation_scores(logits_e.argmax(1), labels, task.num_classes)["miou"]
    return {**{f"branch_{k}": round(v, 4) for k, v in scores.items()},
            "branch_miou_encoder_only": round(encoder_only, 4),
            "embedding_perceptual_distance": round(float(distance), 4),
            "embedding_psnr_db": round(float((-10 * torch.log10(mse)).mean()), 2),
            "embedding_seconds_per_image": round(seconds, 2)}, ws


def evaluator_comparison(task: EditGANTask, images: torch.Tensor, labels: torch.Tensor,
                         cache_dir: Path, generated: int = 64) -> dict[str, float]:
    """The scene evaluator (metrics' synthetic segmenter, default recipe, cached) as a reference:
    its mIoU on the held-out scenes, and the branch's mIoU on `generated` new samples of G
    (z ~ N(0, I), psi 1) measured against the evaluator's segmentation of them."""
    from ganzoo.callbacks.metrics import synthetic_evaluator

    r = task.resolution
    reference = SyntheticScenes(split="val", length=16, height=r, width=r, seed=7,
                                caption_length=18)  # fmt: skip
    evaluator = synthetic_evaluator(reference, {}, cache_dir)
    k = task.num_classes
    real = segmentation_scores(evaluator.segment(images), labels, k)["miou"]
    g = torch.Generator().manual_seed(123)
    z = torch.randn(generated, task.stylegan.z_dim, generator=g)
    with torch.no_grad():
        task.stylegan.eval()
        ws = task.stylegan.mapping(z, None)
        image, logits = segment(task, ws)
    versus = segmentation_scores(logits.argmax(1), evaluator.segment(image), k)
    return {"evaluator_miou_held_out": round(real, 4),
            "branch_miou_generated_vs_evaluator": round(versus["miou"], 4),
            "branch_pixel_agreement_generated_vs_evaluator": round(versus["pixel_accuracy"], 4)}


def enlarge_largest_object(mask: torch.Tensor, grow: int) -> tuple[torch.Tensor, int] | None:
    """The mask with its largest object's region grown by `grow` pixels, and that label."""
    areas = {c: int((mask == c).sum()) for c in OBJECTS}
    label = max(areas, key=lambda c: areas[c])
    if areas[label] == 0:
        return None
    target = mask.clone()
    target[dilate(mask == label, grow)] = label
    return target, label


def edits_and_transfer(task: EditGANTask, ws: torch.Tensor, count: int, grow: int,
                       steps: int | None) -> dict[str, Any]:
    settings = task.edit_settings if steps is None else replace(task.edit_settings, steps=steps)
    with torch.no_grad():
        masks = segment(task, ws)[1].argmax(1)
    edits, transfers = [], []
    for i in range(len(ws)):
        if len(edits) == count:
            break
        made = enlarge_largest_object(masks[i], grow)
        if made is None:
            continue
        target, label = made
        result = edit(task, ws[i : i + 1], target, settings=settings)
        quality = edit_quality(result.image_before, result.image_after, result.region,
                               result.mask_after, result.target)  # fmt: skip
        before_area = int((result.mask_before == label).sum())
        growth = int((result.mask_after == label).sum()) / max(before_area, 1) - 1
        edits.append({"scene": i, "label": label, "seconds": round(result.seconds, 2),
                      "source_growth": round(growth, 3), **quality})  # fmt: skip
        transfers += transfer(task, result.vector, ws, masks, i, label)
    keys = ("change_inside_region", "painted_iou", "mask_agreement", "region_fraction", "seconds",
            "source_growth")  # fmt: skip
    summary = {f"edit_{k}": round(sum(e[k] for e in edits) / max(len(edits), 1), 4) for k in keys}
    grown = [t["growth"] for t in transfers]
    return {**summary, "edits": edits,
            "transfer_mean_growth": round(sum(grown) / max(len(grown), 1), 4),
            "transfer_fraction_grown": round(sum(g > 0 for g in grown) / max(len(grown), 1), 4),
            "transfers": len(grown)}


def transfer(task: EditGANTask, vector: EditVector, ws: torch.Tensor, masks: torch.Tensor,
             source: int, label: int) -> list[dict[str, float]]:
    """The vector applied to every other scene whose mask shows `label`."""
    others = [j for j in range(len(ws)) if j != source and bool((masks[j] == label).any())]
    if not others:
        return []
    moved = apply_edits(task, ws[others], [vector], [1.0], refine_steps=0)
    with torch.no_grad():
        after = segment(task, moved)[1].argmax(1)
    out = []
    for k, j in enumerate(others):
        before = int((masks[j] == label).sum())
        out.append({"scene": j, "growth": int((after[k] == label).sum()) / before - 1})
    return out


def seconds_per_edit(resolution: int, steps: int = 30) -> float:
    """One edit (official 30 steps) with networks of the synthetic widths at `resolution`."""
    spec = {"generator": {"img_resolution": resolution, "z_dim": 512, "w_dim": 512,
                          "mapping_layers": 2, "channel_base": 512, "channel_max": 128},
            "source": "random weights (timing only)"}  # fmt: skip
    task = EditGANTask(
        encoder=lambda **sizes: FPNEncoder(**sizes, base_channels=16, feature_dim=128),
        optim={"lr_g": 3e-5, "lr_d": 1e-3, "betas_g": [0.9, 0.999], "betas_d": [0.9, 0.999]},
        ema={"decay": 0.0}, total_iterations=10, stylegan2_ckpt=None, num_classes=15,
        annotated=1, batch_size=1, encoder_steps=0, real_start=0, num_models=10,
        branch_batch_size=64, p_loss=10, mse_loss=1, encoder_loss=5, sample_batch=2,
        noise_mode="const", annotation_embedding_steps=1, embedding={}, edit={"steps": steps},
        lpips=random_lpips, stylegan2_spec=spec,
    )  # fmt: skip
    task.eval()
    ws = task.stylegan.mapping(torch.randn(1, 512), None).detach()
    with torch.no_grad():
        mask = segment(task, ws)[1].argmax(1)[0]
    target = mask.clone()
    r = resolution
    target[r // 4 : r // 2, r // 4 : r // 2] = (int(mask[r // 3, r // 3]) + 1) % 15
    edit(task, ws, target, settings=replace(task.edit_settings, steps=2))  # warm-up
    return round(edit(task, ws, target).seconds, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stylegan2", type=Path, help="a model=stylegan2 checkpoint (32x32)")
    parser.add_argument("--editgan", type=Path, help="skip training: an EditGAN checkpoint")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--encoder-steps", type=int, default=300)
    parser.add_argument("--branch-steps", type=int, default=300)
    parser.add_argument("--annotated", type=int, default=16)
    parser.add_argument("--held-out", type=int, default=16)
    parser.add_argument("--edits", type=int, default=4)
    parser.add_argument("--grow", type=int, default=2)
    parser.add_argument("--embedding-steps", type=int, default=None)
    parser.add_argument("--edit-steps", type=int, default=None)
    parser.add_argument("--timing", type=int, nargs="*", default=[64, 128])
    parser.add_argument("--evaluator-only", action="store_true",
                        help="with --editgan: only the scene-evaluator comparison")
    args = parser.parse_args()
    torch.set_num_threads(1)
    results: dict[str, Any] = {}
    ckpt = args.editgan
    if ckpt is None:
        start = time.perf_counter()
        steps = args.encoder_steps + math.ceil(args.annotated / 8) + args.branch_steps
        ckpt = train_editgan(args.stylegan2, args.out, [
            f"model.encoder_steps={args.encoder_steps}", f"data.annotated={args.annotated}",
            f"steps={steps}", "model.lpips.untrained_stand_in=true",
        ])  # fmt: skip
        results["train_minutes"] = round((time.perf_counter() - start) / 60, 1)
    task, _ = load_run(ckpt, "cpu")
    assert isinstance(task, EditGANTask)
    images, labels = held_out(args.held_out, task.resolution)
    results.update(evaluator_comparison(task, images, labels, args.out / "cache"))
    if args.evaluator_only:
        print(json.dumps(results))
        return
    scores, ws = branch_and_embedding(task, images, labels, args.embedding_steps)
    results.update(scores)
    results.update(edits_and_transfer(task, ws, args.edits, args.grow, args.edit_steps))
    for r in args.timing:
        results[f"seconds_per_edit_{r}"] = seconds_per_edit(r)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
