"""In-memory versions of ganzoo.sample's actions, for interactive front ends (ganzoo.studio).

Each function takes a task rebuilt by `cli.build.load_run` and calls the same task hooks as
the matching `ganzoo.sample` action (render: `render_latents` / `sample_latents` and
`sample_ema`; generate / mix / interpolate: `draw_latents`, `generate`, `style_mix`;
translate: `source_labels`, `translation_columns`; caption: `caption_images`), with the same
seeds, so an image shown in the studio is the one `ganzoo.sample` writes for the same input.
Nothing here reads files or configs beyond the run's own config; no UI code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import Tensor

from ganzoo.cli.build import build_datamodule
from ganzoo.core.errors import ConfigError
from ganzoo.data.batch import Batch
from ganzoo.data.label_names import label_palette
from ganzoo.data.text import tokenize
from ganzoo.tasks.base import GANTask

Palette = list[tuple[str, tuple[int, int, int]]]


# ----- label maps ----------------------------------------------------------------------------
def run_palette(run_cfg: DictConfig) -> Palette:
    """(name, RGB) for each label id the run's generator takes."""
    dontcare = bool(run_cfg.data.contain_dontcare_label)
    return label_palette(str(run_cfg.data.name), int(run_cfg.data.label_nc) + int(dontcare))


def labels_to_rgb(labels: np.ndarray, colours: Palette) -> np.ndarray:
    """(H, W) ids -> (H, W, 3) uint8 in the palette's colours."""
    table = np.array([c for _, c in colours], dtype=np.uint8)
    return table[np.clip(labels, 0, len(table) - 1)]


def rgb_to_labels(rgb: np.ndarray, colours: Palette) -> np.ndarray:
    """(H, W, 3) painted colours -> (H, W) ids of the nearest palette colour (brush edges are
    anti-aliased, so a pixel between two colours takes the closer class)."""
    table = torch.tensor([c for _, c in colours], dtype=torch.float32)  # (K, 3)
    pixels = torch.from_numpy(np.ascontiguousarray(rgb[..., :3])).float().reshape(-1, 3)
    nearest = torch.cdist(pixels, table).argmin(1)
    return nearest.reshape(rgb.shape[:2]).numpy().astype(np.int64)


def resize_labels(labels: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize of an id map (ids are never blended)."""
    if labels.shape == (height, width):
        return labels
    t = torch.from_numpy(labels)[None, None].float()
    return F.interpolate(t, size=(height, width), mode="nearest")[0, 0].long().numpy()


def model_size(run_cfg: DictConfig) -> tuple[int, int]:
    """(height, width) of the run's images."""
    w = int(run_cfg.data.resolution)
    return int(round(w / float(run_cfg.data.aspect_ratio))), w


# ----- render (SPADE, pix2pixHD) ---------------------------------------------------------------
@torch.no_grad()
def render(
    task: GANTask,
    label: Tensor,  # (H, W) long label ids
    instance: Tensor | None = None,  # (H, W) long instance ids; None = the label map
    seed: int = 0,  # latents (SPADE use_vae), random centre choices (pix2pixHD)
    num_samples: int = 1,
    clusters: Mapping[int, Tensor] | None = None,  # pix2pixHD feature centres per class
    centres: Mapping[int, int] | None = None,  # pix2pixHD: centre index per class
    style: Tensor | None = None,  # SPADE use_vae: z (1, z_dim) from `encode_style`
) -> Tensor:
    """The EMA generator's images (num_samples, 3, H, W) in [-1, 1], as `sample action=render`."""
    n, (h, w) = num_samples, label.shape
    instance = label if instance is None else instance
    batch = Batch(
        image=torch.zeros(n, 3, h, w),
        label_map=label.expand(n, h, w).clone(),
        instance_map=instance.expand(n, h, w).clone(),
    ).to(task.device)
    g = torch.Generator().manual_seed(int(seed))
    render_latents = getattr(task, "render_latents", None)
    if render_latents is not None:
        latents = render_latents(batch, clusters, dict(centres or {}), g)
    else:
        latents = task.sample_latents(n, g)
        if style is not None and latents is not None:
            latents = style.to(latents.device).expand_as(latents).clone()
    return task.sample_ema(batch, latents)


@torch.no_grad()
def encode_style(task: GANTask, image: Tensor) -> Tensor:
    """SPADE with use_vae: an image (3, H, W) in [-1, 1] -> its style code mu (1, z_dim)."""
    encoder = getattr(task, "encoder", None)
    if encoder is None or not getattr(task, "use_vae", False):
        raise ConfigError("a style image needs a SPADE run trained with model.use_vae=true")
    mu, _ = encoder(image[None].to(task.device))
    return mu


# ----- latent models (StyleGAN2, BigGAN) ------------------------------------------------------
def _ids(class_id: int | None, n: int, device: torch.device) -> Tensor | None:
    return None if class_id is None else torch.full((n,), class_id, dtype=torch.long, device=device)


@torch.no_grad()
def generate(
    task: Any,
    seeds: Sequence[int],
    truncation: float | None,
    class_id: int | None,
    cutoff: int | None = None,
) -> Tensor:
    """One image per seed, as `sample action=generate` (N, 3, H, W)."""
    if hasattr(task, "truncation_cutoff"):  # StyleGAN2: None truncates every ws
        task.truncation_cutoff = None if cutoff is None else int(cutoff)
    z = task.draw_latents(list(seeds), truncation)
    return task.generate(z, _ids(class_id, len(seeds), z.device), truncation)


@torch.no_grad()
def style_mix(
    task: Any,
    rows: Sequence[int],
    cols: Sequence[int],
    layers: Sequence[int],
    truncation: float | None,
    class_id: int | None,
) -> Tensor:
    """The style-mixing grid of `sample action=mix` as images (R * C, 3, H, W)."""
    extra = {} if class_id is None else {"class_id": class_id}
    rz, cz = task.draw_latents(list(rows), truncation), task.draw_latents(list(cols), truncation)
    return task.style_mix(rz, cz, list(layers), truncation, **extra)


def slerp(a: Tensor, b: Tensor, t: Tensor) -> Tensor:
    """Spherical interpolation between latents a and b (D,) at fractions t (T,) -> (T, D)."""
    cos = F.cosine_similarity(a, b, dim=0).clamp(-1, 1)
    omega = torch.acos(cos)
    t = t[:, None]
    if float(omega.sin()) < 1e-6:  # (anti)parallel: linear interpolation
        return torch.lerp(a[None], b[None], t)
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)


@torch.no_grad()
def interpolate(
    task: Any, seed_a: int, seed_b: int, steps: int, truncation: float | None, class_id: int | None
) -> Tensor:
    """Frames slerping z from seed_a to seed_b, as `sample action=interpolate` (T, 3, H, W)."""
    z = task.draw_latents([seed_a, seed_b], truncation)
    frames = slerp(z[0], z[1], torch.linspace(0, 1, steps, device=z.device))
    return task.generate(frames, _ids(class_id, steps, z.device), truncation)


# ----- translate (StarGAN) and caption (AttnGAN) ---------------------------------------------
@torch.no_grad()
def translate(task: Any, image: Tensor, targets: Sequence[str] | None) -> list[tuple[str, Tensor]]:
    """An image (3, H, W) -> [(column name, image (1, 3, H, W))]: the input and one per target."""
    images = image[None].to(task.device)
    c_org = task.source_labels(images, None)
    return task.translation_columns(images, c_org, None if targets is None else list(targets))


def vocabulary(run_cfg: DictConfig) -> dict[str, int]:
    """The run's caption vocabulary: word -> token id (0 is padding)."""
    dataset = build_datamodule(run_cfg).build(str(run_cfg.data.sample_split))
    vocab = getattr(dataset, "vocab", None) or dataset.table.words  # type: ignore[attr-defined]
    return {str(w): i for i, w in enumerate(vocab) if i > 0}


@torch.no_grad()
def caption(
    task: Any, lookup: Mapping[str, int], text: str, seed: int, max_words: int
) -> tuple[list[str], list[Tensor], list[Tensor]]:
    """A caption -> (known words, stage images [(1, 3, h, w)], attention maps [(1, T, h, w)]),
    as `sample action=caption` with num_samples=1; unknown words are dropped."""
    known = [w for w in tokenize(text) if w in lookup][:max_words]
    if not known:
        raise ConfigError(f"caption {text!r}: none of its words is in the run's vocabulary")
    tokens = torch.tensor([[lookup[w] for w in known]], device=task.device)
    lengths = torch.tensor([len(known)], device=task.device)
    latents = task.sample_latents(1, torch.Generator().manual_seed(int(seed)))
    images, maps = task.caption_images(tokens, lengths, latents.to(task.device))
    return known, list(images), list(maps)
