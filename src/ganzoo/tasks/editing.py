"""EditGAN editing as plain functions (embed, edit, apply_edits) on a trained model=editgan task;
`ganzoo.sample` (action=embed | edit | apply_edit) and the studio call these, nothing else.

- `embed` (train_encoder.py embed_one_example / model_utils.run_embedding_optimization): ws =
  E(x), then `steps` - 1 Adam steps on ws of p_loss x LPIPS + mse_loss x MSE + 1 x ||ws -
  E(G(ws))||^2, lr 0.1 with the cosine ramp-down (0.25) and linear ramp-up (0.05) of get_lr.
- `edit` (EditGAN_tool.py run_optimization_editGAN, Sec. 3.3): given an image's ws and an edited
  mask, the region r = the pixels whose label the edit changes (or a given one), dilated by 3
  iterations of a 3x3 kernel; `steps` - 1 Adam steps (lr 0.02) on ws of
  rgb_loss_weight (15) x (10 x LPIPS + 5 x 1 x MSE) of the image outside r against the original,
  + 1 x ||ws - E(G(ws))||^2 + 1 x cross-entropy of the branch's mean logits inside r against
  the edited mask. The result's ws - the input ws is the edit vector.
- `apply_edits` (run_optimization_post_process): ws + sum_k scale_k x delta_k; with refine_steps
  > 1, the self-supervised refinement: the region = pixels of the vectors' classes before or
  after (dilated), and the same RGB loss outside plus cross-entropy inside against the branch's
  own mask of the edited ws.

As the official code: images are compared in [0, 1]; the encoder's regulariser feeds it the [0,
1] image; the result is the last iterate (the official keeps `latent.detach()`, which aliases
the optimised tensor); the branch features are upsampled `nearest` while optimising and
bilinearly to segment (EditGAN_tool.py's upsamplers / bi_upsamplers).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganzoo.core.config import dataclass_from_dict
from ganzoo.core.errors import ConfigError
from ganzoo.models.editgan import upsample_features

if TYPE_CHECKING:
    from ganzoo.tasks.editgan import EditGANTask

VECTOR_FORMAT = "ganzoo.editgan.edit_vector/1"


@dataclass(frozen=True)
class EmbedSettings:
    """Per-image optimisation after the encoder (tool_car.json embedding_steps 100)."""

    steps: int = 100  # iterations (steps - 1 Adam steps, as the official loop)
    lr: float = 0.1  # peak lr of get_lr
    rampdown: float = 0.25  # cosine ramp-down over the last quarter
    rampup: float = 0.05  # linear ramp-up over the first 5 %
    p_loss: float = 10.0  # LPIPS weight
    mse_loss: float = 1.0  # L2 weight
    encoder_loss_weight: float = 1.0  # ||ws - E(G(ws))||^2 weight

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> EmbedSettings:
        return dataclass_from_dict(cls, values, "model.embedding")


@dataclass(frozen=True)
class EditSettings:
    """The δw+ optimisation of an edit and of the refinement (tool_car.json)."""

    steps: int = 30  # iterations (steps - 1 Adam steps)
    lr: float = 0.02  # Adam lr
    rgb_loss_weight: float = 15.0  # weight of the RGB terms outside the region
    p_loss: float = 10.0  # LPIPS weight inside the RGB term
    mse_loss: float = 1.0  # L2 weight inside the RGB term ...
    mse_scale: float = 5.0  # ... times this (the official `5 * mse_loss`)
    ce_loss_weight: float = 1.0  # cross-entropy inside the region
    encoder_loss_weight: float = 1.0  # ||ws - E(G(ws))||^2 (edit only, not the refinement)
    roi_dilation: int = 3  # 3x3 dilations of the region (cv2.dilate iterations=3)
    upsample: str = "nearest"  # branch features while optimising (the official upsamplers)
    refine_steps: int = 0  # apply_edit refinement iterations (0 = apply the vector as is)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> EditSettings:
        settings = dataclass_from_dict(cls, values, "model.edit")
        if settings.upsample not in ("nearest", "bilinear"):
            raise ConfigError(f"model.edit.upsample={settings.upsample}; valid: nearest, bilinear")
        return settings


@dataclass
class EditVector:
    """A latent edit: delta (num_ws, w_dim) and where it came from."""

    delta: Tensor  # (num_ws, w_dim)
    classes: list[int]  # the labels the edit painted inside its region
    region: Tensor  # (H, W) bool: the region it changed on its source image
    scale: float = 1.0  # the strength it was found at
    source: dict[str, Any] = field(default_factory=dict)  # image, checkpoint, settings

    def save(self, path: str | Path) -> Path:
        """Write as a torch file of plain tensors and values (atomic)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        payload = {
            "format": VECTOR_FORMAT,
            "delta": self.delta.detach().cpu().float(),
            "classes": [int(c) for c in self.classes],
            "region": self.region.detach().cpu().bool(),
            "scale": float(self.scale),
            "source": {
                k: v if isinstance(v, int | float) else str(v) for k, v in self.source.items()
            },
        }
        torch.save(payload, tmp)
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> EditVector:
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise ConfigError(f"edit vector {path} does not exist") from None
        if not isinstance(payload, dict) or payload.get("format") != VECTOR_FORMAT:
            raise ConfigError(f"{path} is not an EditGAN edit vector (written by action=edit)")
        return cls(
            payload["delta"], list(payload["classes"]), payload["region"],
            float(payload["scale"]), dict(payload["source"]),
        )  # fmt: skip


@dataclass
class EditResult:
    """What `edit` returns: the edited ws, the vector, images and masks before / after."""

    ws: Tensor  # (1, num_ws, w_dim) edited
    vector: EditVector
    image_before: Tensor  # (1, 3, R, R) in [-1, 1]
    image_after: Tensor
    mask_before: Tensor  # (R, R) long: the branch's segmentation
    mask_after: Tensor
    target: Tensor  # (R, R) long: the edited mask asked for
    region: Tensor  # (R, R) bool: the (undilated) edited region
    seconds: float


@contextmanager
def eval_mode(*modules: nn.Module) -> Iterator[None]:
    """Modules in eval mode (BatchNorm running statistics), their modes restored after."""
    modes = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        yield
    finally:
        for m, mode in zip(modules, modes, strict=True):
            m.train(mode)


def get_lr(t: float, initial_lr: float, rampdown: float, rampup: float) -> float:
    """The embedding lr at fraction t of the run (model_utils.get_lr)."""
    ramp = min(1.0, (1 - t) / rampdown)
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    return initial_lr * ramp * min(1.0, t / rampup)


def dilate(region: Tensor, iterations: int) -> Tensor:
    """(H, W) bool dilated by `iterations` 3x3 square kernels (cv2.dilate)."""
    if iterations <= 0:
        return region.clone()
    k = 2 * iterations + 1
    return F.max_pool2d(region[None, None].float(), k, stride=1, padding=iterations)[0, 0] > 0


def check_images(task: EditGANTask, images: Tensor) -> None:
    """Images must be (N, 3, R, R) floats at the generator's resolution."""
    r = task.resolution
    if images.ndim != 4 or images.shape[1] != 3:
        raise ConfigError(f"images must be RGB (N, 3, {r}, {r}); got shape {tuple(images.shape)}")
    if images.shape[-2:] != (r, r):
        raise ConfigError(f"images are {tuple(images.shape[-2:])}; this model edits {r}x{r}")


def check_mask(task: EditGANTask, mask: Tensor) -> Tensor:
    """A label mask (R, R) of ids in [0, num_classes) -> long."""
    r, k = task.resolution, task.num_classes
    if mask.ndim != 2 or tuple(mask.shape) != (r, r):
        raise ConfigError(f"the mask is {tuple(mask.shape)}; this model segments {r}x{r}")
    bad = sorted({int(v) for v in mask.unique() if not 0 <= int(v) < k})
    if bad:
        raise ConfigError(f"the mask has unknown label ids {bad[:5]}; valid ids are 0..{k - 1}")
    return mask.long()


def segment(task: EditGANTask, ws: Tensor, mode: str = "bilinear") -> tuple[Tensor, Tensor]:
    """G's image (N, 3, R, R) of ws and the branch's mean logits (N, K, R, R) (run_seg)."""
    image, maps = task.synthesize(ws, with_features=True)
    features = upsample_features(maps, task.resolution, mode)  # type: ignore[arg-type]
    with eval_mode(task.branch):
        return image, task.branch.segment(features)


def embed(task: EditGANTask, images: Tensor, settings: EmbedSettings | None = None) -> Tensor:
    """Images (N, 3, R, R) in [-1, 1] -> ws (N, num_ws, w_dim): encoder + optimisation (each
    image its own loss: the sum of per-image losses)."""
    check_images(task, images)
    s = task.embed_settings if settings is None else settings
    lpips = task.lpips()
    with eval_mode(task.encoder), torch.no_grad():
        ws0 = task.encoder(images)
        target_features = lpips.features(images)
    latent = ws0.clone().requires_grad_(True)
    opt = torch.optim.Adam([latent], lr=s.lr)
    target01 = (images + 1) / 2
    with eval_mode(task.encoder):
        for step in range(1, s.steps):
            for group in opt.param_groups:
                group["lr"] = get_lr(step / s.steps, s.lr, s.rampdown, s.rampup)
            image, _ = task.synthesize(latent)
            image01 = (image + 1) / 2
            p = lpips.distance(lpips.features(image), target_features)
            mse = (image01 - target01).square().mean(dim=(1, 2, 3))
            enc = (latent - task.encoder(image01).detach()).square().mean(dim=(1, 2))
            loss = (s.p_loss * p + s.mse_loss * mse + s.encoder_loss_weight * enc).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return latent.detach()


def _optimise_region(
    task: EditGANTask,
    ws: Tensor,  # (1, num_ws, w_dim) start
    reference: Tensor,  # (1, 3, R, R) in [-1, 1]: the image to keep outside the region
    target: Tensor,  # (R, R) long: the labels wanted inside the region
    region: Tensor,  # (R, R) bool, dilated
    s: EditSettings,
    steps: int,
    encoder_loss_weight: float,
) -> Tensor:
    """The shared loop of edit and refinement; returns the last ws."""
    lpips = task.lpips()
    outside = (~region).float()[None, None]
    reference01 = (reference + 1) / 2 * outside
    with torch.no_grad():
        reference_features = lpips.features(reference01 * 2 - 1)
    wanted = target[region]
    latent = ws.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([latent], lr=s.lr)
    with eval_mode(task.encoder, task.branch):
        for _ in range(1, steps):
            image, maps = task.synthesize(latent, with_features=True)
            image01 = (image + 1) / 2 * outside
            p = lpips.distance(lpips.features(image01 * 2 - 1), reference_features).mean()
            mse = (image01 - reference01).square().mean()
            loss = s.rgb_loss_weight * (s.p_loss * p + s.mse_scale * s.mse_loss * mse)
            if encoder_loss_weight:
                enc = F.mse_loss(latent, task.encoder((image + 1) / 2).detach())
                loss = loss + encoder_loss_weight * enc
            features = upsample_features(maps, task.resolution, s.upsample)  # type: ignore[arg-type]
            pixels = features[0][:, region].T  # (P, C) inside the region
            loss = loss + s.ce_loss_weight * F.cross_entropy(task.branch(pixels), wanted)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return latent.detach()


def edit(
    task: EditGANTask,
    ws: Tensor,  # (1, num_ws, w_dim): an embedded or sampled image
    target: Tensor,  # (R, R) label ids: the edited mask
    region: Tensor | None = None,  # (R, R) bool; None = where target differs from the branch's mask
    settings: EditSettings | None = None,
    source: dict[str, Any] | None = None,  # recorded in the vector (e.g. the image file)
) -> EditResult:
    """Optimise δw+ so the image's mask becomes `target` inside the region; see the module."""
    start = time.perf_counter()
    s = task.edit_settings if settings is None else settings
    if ws.ndim != 3 or ws.shape[0] != 1:
        raise ConfigError(f"edit takes one image's ws (1, num_ws, w_dim); got {tuple(ws.shape)}")
    target = check_mask(task, target.to(ws.device))
    with torch.no_grad():
        before, logits = segment(task, ws)
    mask_before = logits.argmax(1)[0]
    changed = target != mask_before if region is None else region.to(ws.device).bool()
    if not bool(changed.any()):
        raise ConfigError("the edited mask equals the image's segmentation: nothing to edit")
    grown = dilate(changed, s.roi_dilation)
    edited = _optimise_region(task, ws, before, target, grown, s, s.steps, s.encoder_loss_weight)
    with torch.no_grad():
        after, logits = segment(task, edited)
    classes = sorted({int(c) for c in target[changed].unique()})
    vector = EditVector(
        (edited - ws)[0], classes, changed.cpu(), 1.0,
        {**(source or {}), "steps": s.steps, "iteration": int(task.iteration)},
    )  # fmt: skip
    return EditResult(
        edited, vector, before, after, mask_before, logits.argmax(1)[0], target, changed,
        time.perf_counter() - start,
    )  # fmt: skip


def apply_edits(
    task: EditGANTask,
    ws: Tensor,  # (N, num_ws, w_dim)
    vectors: Sequence[EditVector],
    scales: Sequence[float],  # strength of each vector
    refine_steps: int | None = None,  # None = model.edit.refine_steps; > 1 refines
) -> Tensor:
    """ws + sum_k scale_k delta_k, optionally refined per image; -> (N, num_ws, w_dim)."""
    if len(vectors) != len(scales) or not vectors:
        raise ConfigError(f"{len(vectors)} edit vectors and {len(scales)} scales: give one each")
    shape = tuple(ws.shape[1:])
    for v in vectors:
        if tuple(v.delta.shape) != shape:
            raise ConfigError(f"an edit vector of shape {tuple(v.delta.shape)} for ws {shape}")
    delta = sum(float(k) * v.delta.to(ws.device) for v, k in zip(vectors, scales, strict=True))
    edited = ws + delta
    s = task.edit_settings
    steps = s.refine_steps if refine_steps is None else int(refine_steps)
    if steps <= 1:
        return edited
    classes = torch.tensor(sorted({c for v in vectors for c in v.classes}), device=ws.device)
    out = []
    for i in range(ws.shape[0]):
        with torch.no_grad():
            reference, logits_before = segment(task, ws[i : i + 1])
            _, logits_after = segment(task, edited[i : i + 1])
        before, after = logits_before.argmax(1)[0], logits_after.argmax(1)[0]
        region = torch.isin(before, classes) | torch.isin(after, classes)
        if not bool(region.any()):
            out.append(edited[i : i + 1])
            continue
        grown = dilate(region, s.roi_dilation)
        start = edited[i : i + 1]
        out.append(_optimise_region(task, start, reference, after, grown, s, steps, 0.0))
    return torch.cat(out)
