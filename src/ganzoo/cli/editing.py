"""EditGAN's actions of `python -m ganzoo.sample` (files in, files out); the editing itself is
ganzoo.tasks.editing (embed, edit, apply_edits), which the studio calls too.

    ganzoo.sample ckpt=<editgan run>/checkpoints/last.ckpt action=embed images=[a.png,b.png]
        -> <stem>_ws.pt (the W+ latent), <stem>_reconstruction.png, <stem>_mask.png (colours),
           <stem>_labels.png (the branch's label ids: paint it and pass it as mask=), grid.png
    ganzoo.sample ckpt=... action=edit image=a.png mask=edited.png     (image: a PNG or a _ws.pt)
        -> before.png, after.png, mask_before.png, target.png, mask_after.png,
           <stem>_edit.pt (the edit vector), grid.png (image | mask | target | edited | its mask)
    ganzoo.sample ckpt=... action=apply_edit images=[b.png] vectors=[a.pt,c.pt] scales=[1.0,0.5]
        -> <stem>_edited.png, <stem>_edited_ws.pt, grid.png (image | edited | masks)
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, ListConfig
from PIL import Image
from torch import Tensor

from ganzoo.core.errors import ConfigError
from ganzoo.core.image import colorize_labels, grid, save_png, to_uint8
from ganzoo.core.weights import sha256_of
from ganzoo.data.files import center_crop_aspect, resize_image
from ganzoo.tasks.editgan import EditGANTask
from ganzoo.tasks.editing import (
    EditSettings,
    EditVector,
    EmbedSettings,
    apply_edits,
    edit,
    embed,
    segment,
)

WS_FORMAT = "ganzoo.editgan.ws/1"


def read_rgb(path: str | Path, resolution: int) -> Tensor:
    """An RGB image file -> (3, R, R) in [-1, 1] (centre crop, bilinear resize); other modes
    (grey, RGBA, palette) are a one-line error."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"image {path} does not exist")
    opened = Image.open(path)
    if opened.mode != "RGB":
        raise ConfigError(f"{path}: EditGAN edits RGB images; this one is mode {opened.mode}")
    image = center_crop_aspect(opened, resolution, resolution)
    array = np.asarray(resize_image(image, resolution, resolution, "bilinear"), np.float32)
    return torch.from_numpy(array).permute(2, 0, 1) / 127.5 - 1.0


def read_mask(path: str | Path) -> Tensor:
    """A one-channel PNG of label ids (mode L, I, I;16 or P) -> (H, W) long."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"mask {path} does not exist")
    image = Image.open(path)
    if image.mode not in ("L", "I", "I;16", "P"):
        raise ConfigError(
            f"{path}: the mask must be a one-channel PNG of label ids (L, I, I;16 or P), "
            f"got mode {image.mode}"
        )
    return torch.from_numpy(np.array(image).astype(np.int64))


def save_ids(mask: Tensor, path: Path) -> Path:
    """(H, W) label ids as a one-channel PNG (mode L): what action=edit reads as mask=."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(mask.cpu().numpy().astype(np.uint8), mode="L").save(path)
    return path


def save_ws(ws: Tensor, path: Path, source: str) -> Path:
    """One image's ws (num_ws, w_dim) as a torch file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": WS_FORMAT, "ws": ws.detach().cpu(), "source": source}, path)
    return path


def load_image_ws(
    task: EditGANTask, path: str | Path, settings: EmbedSettings | None = None
) -> tuple[Tensor, Tensor]:
    """(ws (1, num_ws, w_dim), image (1, 3, R, R)) of a _ws.pt file or an image (embedded)."""
    path = Path(path)
    if path.suffix == ".pt":
        if not path.is_file():
            raise ConfigError(f"image {path} does not exist")
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(payload, dict) or payload.get("format") != WS_FORMAT:
            raise ConfigError(f"{path} is not a latent written by action=embed")
        ws = payload["ws"][None].to(task.device)
        with torch.no_grad():
            image = task.synthesize(ws)[0]
        return ws, image
    image = read_rgb(path, task.resolution)[None].to(task.device)
    return embed(task, image, settings), image


def _task(task: Any) -> EditGANTask:
    if not isinstance(task, EditGANTask):
        raise ConfigError(f"this action is for model=editgan runs; the checkpoint holds a "
                          f"{type(task).__name__}")
    return task


def _files(value: Any, key: str) -> list[str]:
    if not isinstance(value, ListConfig | list) or not value:
        raise ConfigError(f"{key} must be a non-empty list of files, e.g. {key}=[a.png,b.png]")
    return [str(v) for v in value]


def _out(cfg: DictConfig, ckpt: Path, action: str) -> Path:
    if cfg.output is not None:
        return Path(str(cfg.output))
    return ckpt.parent.parent / "samples" / action


def _colours(task: EditGANTask, mask: Tensor) -> Tensor:
    return colorize_labels(mask.reshape(-1, *mask.shape[-2:]), task.num_classes)


def embed_action(cfg: DictConfig, task: Any, ckpt: Path) -> dict[str, Any]:
    task = _task(task)
    files = _files(cfg.images, "images")
    images = torch.stack([read_rgb(f, task.resolution) for f in files]).to(task.device)
    ws = embed(task, images, _embed_settings(cfg, task))
    with torch.no_grad():
        recon, logits = segment(task, ws)
    out = _out(cfg, ckpt, "embed")
    written: list[Path] = []
    for f, w, r in zip(files, ws, to_uint8(recon), strict=True):
        stem = Path(f).stem
        written.append(save_ws(w, out / f"{stem}_ws.pt", str(Path(f).resolve())))
        written.append(save_png(r, out / f"{stem}_reconstruction.png"))
    masks = logits.argmax(1)
    for f, m, ids in zip(files, to_uint8(_colours(task, masks)), masks, strict=True):
        written.append(save_png(m, out / f"{Path(f).stem}_mask.png"))
        written.append(save_ids(ids, out / f"{Path(f).stem}_labels.png"))
    written.append(save_png(grid([images, recon, _colours(task, masks)]), out / "grid.png"))
    lpips = task.lpips()(recon, images)
    return {"action": "embed", "files": [str(p) for p in written],
            "lpips": [round(float(v), 5) for v in lpips]}


def edit_action(cfg: DictConfig, task: Any, ckpt: Path) -> dict[str, Any]:
    task = _task(task)
    if cfg.image is None or cfg.mask is None:
        raise ConfigError("action=edit needs image=FILE (a PNG or an embed _ws.pt) and "
                          "mask=FILE.png (the edited label ids)")
    ws, _ = load_image_ws(task, str(cfg.image), _embed_settings(cfg, task))
    target = read_mask(str(cfg.mask))
    source = {"image": str(cfg.image), "mask": str(cfg.mask), "checkpoint": str(ckpt),
              "checkpoint_sha256": sha256_of(ckpt)}
    result = edit(task, ws, target, settings=_edit_settings(cfg, task), source=source)
    out = _out(cfg, ckpt, "edit")
    stem = Path(str(cfg.image)).stem.removesuffix("_ws")
    pics = {"before": result.image_before, "after": result.image_after,
            "mask_before": _colours(task, result.mask_before),
            "target": _colours(task, result.target),
            "mask_after": _colours(task, result.mask_after)}
    written = [save_png(to_uint8(v)[0], out / f"{k}.png") for k, v in pics.items()]
    written.append(result.vector.save(out / f"{stem}_edit.pt"))
    written.append(save_ws(result.ws[0], out / f"{stem}_edited_ws.pt", str(cfg.image)))
    written.append(save_png(grid(list(pics.values())), out / "grid.png"))
    return {"action": "edit", "files": [str(p) for p in written],
            "classes": result.vector.classes, "seconds": round(result.seconds, 3),
            **edit_quality(result.image_before, result.image_after, result.region,
                           result.mask_after, result.target)}


def _embed_settings(cfg: DictConfig, task: EditGANTask) -> EmbedSettings:
    s = task.embed_settings
    return s if cfg.embedding_steps is None else replace(s, steps=int(cfg.embedding_steps))


def _edit_settings(cfg: DictConfig, task: EditGANTask) -> EditSettings:
    s = task.edit_settings
    return s if cfg.edit_steps is None else replace(s, steps=int(cfg.edit_steps))


def edit_quality(before: Tensor, after: Tensor, region: Tensor, achieved: Tensor,
                 target: Tensor) -> dict[str, float]:
    """Locality: the fraction of the image change (sum |after - before|) inside the region;
    the IoU of the achieved and the target mask over the classes the edit painted, and the
    pixel agreement of the achieved mask with the target."""
    change = (after - before).abs().sum(dim=(0, 1))  # (R, R)
    inside = float(change[region].sum() / change.sum().clamp(min=1e-12))
    painted = target[region].unique()
    a, t = torch.isin(achieved, painted), torch.isin(target, painted)
    iou = float((a & t).sum() / (a | t).sum().clamp(min=1))
    return {"change_inside_region": round(inside, 4), "painted_iou": round(iou, 4),
            "mask_agreement": round(float((achieved == target).float().mean()), 4),
            "region_fraction": round(float(region.float().mean()), 4)}


def apply_edit_action(cfg: DictConfig, task: Any, ckpt: Path) -> dict[str, Any]:
    task = _task(task)
    vectors = [EditVector.load(v) for v in _files(cfg.vectors, "vectors")]
    scales = [1.0] * len(vectors) if cfg.scales is None else [float(s) for s in cfg.scales]
    sources = _files(cfg.images, "images") if cfg.images else [str(cfg.image or "")]
    if sources == [""]:
        raise ConfigError("action=apply_edit needs images=[a.png,...] (or _ws.pt files)")
    pairs = [load_image_ws(task, s, _embed_settings(cfg, task)) for s in sources]
    ws = torch.cat([p[0] for p in pairs])
    edited = apply_edits(task, ws, vectors, scales,
                         None if cfg.refine_steps is None else int(cfg.refine_steps))
    with torch.no_grad():
        before, logits_b = segment(task, ws)
        after, logits_a = segment(task, edited)
    out = _out(cfg, ckpt, "apply_edit")
    written: list[Path] = []
    for s, w, img in zip(sources, edited, to_uint8(after), strict=True):
        stem = Path(s).stem.removesuffix("_ws")
        written.append(save_png(img, out / f"{stem}_edited.png"))
        written.append(save_ws(w, out / f"{stem}_edited_ws.pt", s))
    columns = [before, _colours(task, logits_b.argmax(1))]
    columns += [after, _colours(task, logits_a.argmax(1))]
    written.append(save_png(grid(columns), out / "grid.png"))
    return {"action": "apply_edit", "files": [str(p) for p in written], "scales": scales,
            "vectors": [json.dumps(v.source) for v in vectors]}
