"""python -m ganzoo.sample ckpt=PATH [action=render|cluster|generate|mix|interpolate|...] ...

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

Latent models (StyleGAN2, BigGAN) sample without any dataset:

- generate: one image per seed (`seeds=[0,1,2]`), and with `classes=[3,7]` (class-conditional
  models) one per seed and class; PNGs seed0000.png (class0003_seed0000.png) and grid.png
  (a row per class, a column per seed).
- mix: StyleGAN2's style-mixing grid (the official style_mixing.py): the images of
  `row_seeds` down the left, of `col_seeds` along the top, and in cell (r, c) row r's ws with the
  layers `mix_layers` taken from column c; PNGs <row>-<col>.png and grid.png.
- interpolate: a "video as a grid": a row per consecutive pair of `seeds` (and per class), its
  `steps` frames spherically interpolating z (slerp; White, "Sampling Generative Networks", 2016).

`truncation` (null = the run's own setting) is StyleGAN2's psi, BigGAN's truncated-normal
threshold; `truncation_cutoff` (StyleGAN2) truncates only the first ws. The hooks each latent
model's task provides:

    task.draw_latents(seeds: list[int], truncation: float | None) -> Tensor
        one latent per seed (len(seeds), dim), a function of the seed alone
    task.generate(latents: Tensor, class_ids: Tensor | None, truncation: float | None) -> Tensor
        images (N, 3, H, W) in [-1, 1] of the EMA generator; class_ids (N,) long, None for
        unconditional models
    task.style_mix(row_latents, col_latents, layers: list[int], truncation, class_id=None)
        StyleGAN2 only: (R * C, 3, H, W), image r * C + c = row r with `layers` from column c
    task.truncation_cutoff: int | None
        StyleGAN2 only: set from `truncation_cutoff` when given

EditGAN (model=editgan): embed (image files -> W+ latents, reconstructions, masks), edit (an
image and an edited mask -> the edited image and an edit vector file), apply_edit (vectors with
scales -> edited images): ganzoo.cli.editing, over the functions of ganzoo.tasks.editing.

Another model adds its sampling by giving its task one of these methods, or an action here.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, ListConfig, OmegaConf
from PIL import Image
from torch import Tensor

from ganzoo.cli import interactive
from ganzoo.cli.build import build_datamodule, load_run, provenance
from ganzoo.cli.editing import apply_edit_action, edit_action, embed_action
from ganzoo.cli.entry import run
from ganzoo.core import console
from ganzoo.core.errors import ConfigError
from ganzoo.core.image import colorize_labels, grid, save_png, to_uint8, with_headers
from ganzoo.core.weights import sha256_of
from ganzoo.data.batch import Batch, collate
from ganzoo.data.files import center_crop_aspect, resize_image
from ganzoo.data.text import tokenize
from ganzoo.tasks.base import GANTask

CLUSTERS_FILE = "feature_clusters.pt"


def read_ids(path: str | Path) -> Tensor:
    """A PNG of integer ids (label or instance map) -> (H, W) long."""
    image = Image.open(path)
    if image.mode not in ("L", "I", "I;16", "P"):
        raise ConfigError(
            f"{path}: expected a one-channel PNG of ids (mode L, I, I;16 or P), got {image.mode}"
        )
    return torch.from_numpy(np.array(image).astype(np.int64))


def image_size(run_cfg: DictConfig) -> tuple[int, int]:
    """(height, width) of the run's images."""
    w = int(run_cfg.data.resolution)
    return int(round(w / float(run_cfg.data.aspect_ratio))), w


def fit_ids(ids: Tensor, size: tuple[int, int], what: str, notes: list[str]) -> Tensor:
    """An id map resized with nearest neighbour to the model's (H, W), saying so."""
    if tuple(ids.shape) == size:
        return ids
    notes.append(
        f"{what} is {ids.shape[1]}x{ids.shape[0]}, the model makes {size[1]}x{size[0]} images: "
        "resized with nearest neighbour"
    )
    return F.interpolate(ids[None, None].float(), size=size, mode="nearest")[0, 0].long()


def render(
    cfg: DictConfig, task: GANTask, ckpt: Path, size: tuple[int, int] | None = None
) -> dict[str, Any]:
    """Images for one label-map file (resized to `size` (H, W) when given); returns what was
    written."""
    if cfg.label_map is None:
        raise ConfigError("action=render needs label_map=FILE.png (a PNG of label ids)")
    label = read_ids(cfg.label_map)
    notes: list[str] = []
    if cfg.instance_map is not None:
        instance = read_ids(cfg.instance_map)
    else:
        instance = label
        if "instance_map" in task.required_fields():
            notes.append("no instance_map given: one instance per class (the label map itself)")
    if instance.shape != label.shape:
        raise ConfigError(
            f"instance_map is {tuple(instance.shape)}, label_map {tuple(label.shape)}"
        )
    if size is not None:
        label = fit_ids(label, size, f"label_map {cfg.label_map}", notes)
        instance = label if cfg.instance_map is None else fit_ids(instance, size, "", [])
    n = int(cfg.num_samples)
    centres, choice = None, {int(k): int(v) for k, v in (cfg.centres or {}).items()}
    if getattr(task, "render_latents", None) is not None:  # pix2pixHD's feature centres
        clusters = _clusters_path(cfg, ckpt)
        centres = torch.load(clusters, weights_only=True)["centres"] if clusters.is_file() else None
        notes += ignored_centres(choice, centres, label)
    images = interactive.render(task, label, instance, int(cfg.seed), n, centres, choice)
    out = Path(cfg.output) if cfg.output is not None else ckpt.parent.parent / "samples" / "render"
    stem = Path(str(cfg.label_map)).stem
    files = [save_png(to_uint8(images[i : i + 1])[0], out / f"{stem}_{i}.png") for i in range(n)]
    colours = colorize_labels(label[None].to(images.device), 1)
    row = grid([colours] + [images[i : i + 1] for i in range(n)])
    files.append(save_png(row, out / f"{stem}_grid.png"))
    for line in notes:
        console.note(line)
    return {"action": "render", "files": [str(f) for f in files], "note": "; ".join(notes) or None}


def ignored_centres(
    choice: dict[int, int], centres: dict[int, Tensor] | None, label: Tensor
) -> list[str]:
    """Notes for the `centres={class: i}` choices that cannot apply (no centres, no region)."""
    notes = []
    present = set(label.unique().tolist())
    for k in sorted(choice):
        if centres is not None and k not in centres:
            have = ", ".join(map(str, sorted(centres))) or "none"
            notes.append(
                f"centres: class {k} has no clustered centres (action=cluster found regions of "
                f"classes {have}); its regions get zero features and centres={{{k}: "
                f"{choice[k]}}} is ignored"
            )
        elif k not in present:
            notes.append(f"centres: class {k} is not in the label map; centres={{{k}: ..}} unused")
    return notes


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
    seen: set[int] = set()

    def batches() -> Iterator[Batch]:  # noting the classes of the label maps
        for batch in _batches(dataset, n, int(cfg.batch_size)):
            assert batch.label_map is not None
            seen.update(int(v) for v in batch.label_map.unique())
            yield batch

    with torch.no_grad():
        centres = fit(batches(), int(cfg.n_clusters), int(cfg.seed))
    without = sorted(seen - {int(k) for k in centres})
    if without:
        console.note(
            f"cluster: no centres for classes {without} (no region large enough): action=render "
            "gives their regions zero features, and centres= choices for them are ignored"
        )
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
    return {"action": "cluster", "file": str(path), "images": n, "centres_per_class": counts,
            "classes_without_centres": without}  # fmt: skip


def _batches(dataset: Any, n: int, batch_size: int) -> Iterator[Batch]:
    """Items 0..n-1 of a dataset in order, collated into Batches (encode_features: serial)."""
    for start in range(0, n, batch_size):
        yield collate([dataset[i] for i in range(start, min(start + batch_size, n))])


def _clusters_path(cfg: DictConfig, ckpt: Path) -> Path:
    return Path(cfg.clusters) if cfg.clusters is not None else ckpt.parent / CLUSTERS_FILE


# ----- latent models: generate, mix, interpolate --------------------------------------------
def _ints(value: Any, key: str) -> list[int]:
    """A config list of integers (e.g. seeds=[0,1,2])."""
    if not isinstance(value, ListConfig | list) or not value:
        raise ConfigError(f"{key} must be a non-empty list of integers, e.g. {key}=[0,1,2]")
    return [int(v) for v in value]


def _latent_model(task: GANTask, action: str) -> None:
    """The task must have the latent-model hooks."""
    if not all(hasattr(task, hook) for hook in ("draw_latents", "generate")):
        raise ConfigError(
            f"action={action} is for latent models (StyleGAN2, BigGAN); "
            f"{type(task).__name__} has no draw_latents / generate"
        )


def _apply_cutoff(cfg: DictConfig, task: Any) -> None:
    if cfg.truncation_cutoff is None:
        return
    if not hasattr(task, "truncation_cutoff"):
        raise ConfigError(f"truncation_cutoff is for StyleGAN2; {type(task).__name__} has none")
    task.truncation_cutoff = int(cfg.truncation_cutoff)


def _output(cfg: DictConfig, ckpt: Path, action: str) -> Path:
    """`output`, or <run_dir>/samples/<action>."""
    if cfg.output is not None:
        return Path(str(cfg.output))
    return ckpt.parent.parent / "samples" / action


def _class_rows(cfg: DictConfig) -> list[int | None]:
    """One grid row per class of `classes`, or a single row without classes."""
    return [None] if cfg.classes is None else list(_ints(cfg.classes, "classes"))


def _ids(class_id: int | None, n: int, device: torch.device) -> Tensor | None:
    return None if class_id is None else torch.full((n,), class_id, dtype=torch.long, device=device)


def generate(cfg: DictConfig, task: Any, ckpt: Path) -> dict[str, Any]:
    """One image per seed (and class), and a grid: a row per class, a column per seed."""
    seeds = _ints(cfg.seeds, "seeds")
    z = task.draw_latents(seeds, cfg.truncation)
    out = _output(cfg, ckpt, "generate")
    files: list[Path] = []
    rows = []
    for c in _class_rows(cfg):
        images = task.generate(z, _ids(c, len(seeds), z.device), cfg.truncation)
        rows.append(images)
        prefix = "" if c is None else f"class{c:04d}_"
        for s, image in zip(seeds, to_uint8(images), strict=True):
            files.append(save_png(image, out / f"{prefix}seed{s:04d}.png"))
    columns = [torch.stack([row[j] for row in rows]) for j in range(len(seeds))]
    files.append(save_png(grid(columns), out / "grid.png"))
    return {"action": "generate", "files": [str(f) for f in files]}


def mix(cfg: DictConfig, task: Any, ckpt: Path) -> dict[str, Any]:
    """StyleGAN2's style-mixing grid (style_mixing.py): rows x columns of mixed images."""
    if not hasattr(task, "style_mix"):
        raise ConfigError(f"action=mix is for StyleGAN2; {type(task).__name__} has no style_mix")
    row_seeds, col_seeds = _ints(cfg.row_seeds, "row_seeds"), _ints(cfg.col_seeds, "col_seeds")
    classes = _class_rows(cfg)
    if len(classes) != 1:
        raise ConfigError("action=mix takes one class (classes=[k]) for the whole grid")
    extra = {} if classes[0] is None else {"class_id": classes[0]}
    psi = cfg.truncation
    rz, cz = task.draw_latents(row_seeds, psi), task.draw_latents(col_seeds, psi)
    mixed = task.style_mix(rz, cz, _ints(cfg.mix_layers, "mix_layers"), psi, **extra)
    row_images = task.generate(rz, _ids(classes[0], len(row_seeds), rz.device), psi)
    col_images = task.generate(cz, _ids(classes[0], len(col_seeds), cz.device), psi)
    out = _output(cfg, ckpt, "mix")
    files: list[Path] = []
    pixels = to_uint8(mixed)
    for r, rs in enumerate(row_seeds):
        for c, cs in enumerate(col_seeds):
            files.append(save_png(pixels[r * len(col_seeds) + c], out / f"{rs}-{cs}.png"))
    blank = torch.ones_like(row_images[:1])  # white top-left cell
    cells = mixed.reshape(len(row_seeds), len(col_seeds), *mixed.shape[1:])
    columns = [torch.cat([blank, row_images])]
    columns += [torch.cat([col_images[c : c + 1], cells[:, c]]) for c in range(len(col_seeds))]
    files.append(save_png(grid(columns), out / "grid.png"))
    return {"action": "mix", "files": [str(f) for f in files]}


def interpolate(cfg: DictConfig, task: Any, ckpt: Path) -> dict[str, Any]:
    """A grid of frames: a row per consecutive pair of seeds (and class), `steps` columns."""
    seeds = _ints(cfg.seeds, "seeds")
    steps = int(cfg.steps)
    if len(seeds) < 2 or steps < 2:
        raise ConfigError("action=interpolate needs at least 2 seeds and steps >= 2")
    z = task.draw_latents(seeds, cfg.truncation)
    t = torch.linspace(0, 1, steps, device=z.device)
    rows = []
    for c in _class_rows(cfg):
        for i in range(len(seeds) - 1):
            frames = interactive.slerp(z[i], z[i + 1], t)
            rows.append(task.generate(frames, _ids(c, steps, z.device), cfg.truncation))
    columns = [torch.stack([row[j] for row in rows]) for j in range(steps)]
    path = save_png(grid(columns), _output(cfg, ckpt, "interpolate") / "grid.png")
    return {"action": "interpolate", "files": [str(path)], "rows": len(rows), "steps": steps}


def translate(cfg: DictConfig, task: GANTask, run_cfg: DictConfig, ckpt: Path) -> dict[str, Any]:
    """StarGAN: image files -> one grid, a row per image: input | one column per target
    (each attribute flipped, hair colours one-of; a column per class for RaFD), chosen by
    `targets`. Source labels: `source_attributes`, else D's domain classifier. Images are
    centre-cropped to the run's aspect ratio and resized (bilinear) to its resolution."""
    columns_of = getattr(task, "translation_columns", None)
    labels_of = getattr(task, "source_labels", None)
    if columns_of is None or labels_of is None:
        raise ConfigError(
            f"{run_cfg.model._target_} does not translate images (action=translate is for StarGAN)"
        )
    if not cfg.images:
        raise ConfigError("action=translate needs images=[a.png,...] (image files)")
    w = int(run_cfg.data.resolution)
    h = int(round(w / float(run_cfg.data.aspect_ratio)))
    images = torch.stack([_read_rgb(Path(str(f)), w, h) for f in cfg.images]).to(task.device)
    given = cfg.source_attributes
    attrs = None if given is None else torch.tensor(OmegaConf.to_container(given)).float()
    c_org = labels_of(images, attrs)
    names = None if cfg.targets is None else [str(t) for t in cfg.targets]
    columns = columns_of(images, c_org, names)
    out = ckpt.parent.parent / "samples" / "translate" if cfg.output is None else Path(cfg.output)
    table = with_headers(grid([c for _, c in columns]), [k for k, _ in columns])
    path = save_png(table, unused_path(out / "translate_grid.png"))
    return {"action": "translate", "grid": str(path), "columns": [k for k, _ in columns],
            "source_labels": c_org.tolist()}


def unused_path(path: Path) -> Path:
    """`path`, or when it exists the first free `<stem>_2<suffix>`, `<stem>_3<suffix>`, ..."""
    k = 1
    candidate = path
    while candidate.exists():
        k += 1
        candidate = path.with_name(f"{path.stem}_{k}{path.suffix}")
    return candidate


def _read_rgb(path: Path, width: int, height: int) -> Tensor:
    """An image file -> (3, height, width) float in [-1, 1] (centre crop to the aspect, resize)."""
    if not path.is_file():
        raise ConfigError(f"images: {path} does not exist")
    img = center_crop_aspect(Image.open(path).convert("RGB"), width, height)
    array = np.asarray(resize_image(img, width, height, "bilinear"), dtype=np.float32)
    return torch.from_numpy(array).permute(2, 0, 1) / 127.5 - 1.0


def caption_action(cfg: DictConfig, task: GANTask, run_cfg: DictConfig, ckpt: Path) -> dict:
    """AttnGAN: a caption -> `num_samples` images of every stage (stage<k>_<i>.png) and, for each
    stage with word attention, a grid per sample: the stage image | one column per word, the
    image shaded by that word's attention map (attention_stage<k>_<i>.png). Words are tokenised
    as the training captions and looked up in the run's vocabulary; unknown words are dropped."""
    make = getattr(task, "caption_images", None)
    if make is None:
        raise ConfigError(
            f"{run_cfg.model._target_} does not draw captions (action=caption is for AttnGAN)"
        )
    if not cfg.caption:
        raise ConfigError('action=caption needs caption="a small red bird with black wings"')
    dataset = build_datamodule(run_cfg).build(str(run_cfg.data.sample_split))
    vocab = getattr(dataset, "vocab", None) or dataset.table.words  # type: ignore[attr-defined]
    lookup = {str(w): i for i, w in enumerate(vocab) if i > 0}
    words = tokenize(str(cfg.caption))
    known = [w for w in words if w in lookup][: int(run_cfg.data.dataset.caption_length)]
    if not known:
        raise ConfigError(f"caption={cfg.caption!r}: none of its words is in the run's vocabulary")
    n = int(cfg.num_samples)
    tokens = torch.tensor([[lookup[w] for w in known]] * n, device=task.device)
    lengths = torch.full((n,), len(known), dtype=torch.long, device=task.device)
    latents = task.sample_latents(n, torch.Generator().manual_seed(int(cfg.seed)))
    assert latents is not None
    images, maps = make(tokens, lengths, latents.to(task.device))
    out = _output(cfg, ckpt, "caption")
    files: list[Path] = []
    for k, stage in enumerate(images):
        for i, image in enumerate(to_uint8(stage)):
            files.append(save_png(image, out / f"stage{k}_{i}.png"))
    for k, attn in enumerate(maps, start=1):
        stage = images[k]
        heat = F.interpolate(attn, size=stage.shape[-2:], mode="nearest")  # (N, T, H, W)
        heat = heat / heat.flatten(2).amax(2).clamp(min=1e-12)[..., None, None]
        columns = [stage] + [(stage + 1) * heat[:, t : t + 1] - 1 for t in range(len(known))]
        for i in range(n):
            cells = grid([c[i : i + 1] for c in columns])
            panel = with_headers(cells, [f"stage {k}", *known])
            files.append(save_png(panel, out / f"attention_stage{k}_{i}.png"))
    return {
        "action": "caption",
        "words": known,
        "dropped": [w for w in words if w not in lookup],
        "files": [str(f) for f in files],
    }


ACTIONS = ("render", "cluster", "generate", "mix", "interpolate", "translate", "caption")
EDITGAN_ACTIONS = {"embed": embed_action, "edit": edit_action, "apply_edit": apply_edit_action}


def main_fn(cfg: DictConfig) -> dict[str, Any]:
    if cfg.action not in ACTIONS and cfg.action not in EDITGAN_ACTIONS:
        valid = ", ".join((*ACTIONS, *EDITGAN_ACTIONS))
        raise ConfigError(f"unknown action={cfg.action}; valid: {valid}")
    if cfg.ckpt is None:
        raise ConfigError("ganzoo.sample needs ckpt=PATH (a run's checkpoints/last.ckpt)")
    ckpt = Path(str(cfg.ckpt))
    task, run_cfg = load_run(ckpt, str(cfg.device))
    if cfg.action == "render":
        result = render(cfg, task, ckpt, image_size(run_cfg))
    elif cfg.action == "cluster":
        result = cluster(cfg, task, run_cfg, ckpt)
    elif cfg.action == "translate":
        result = translate(cfg, task, run_cfg, ckpt)
    elif cfg.action == "caption":
        result = caption_action(cfg, task, run_cfg, ckpt)
    elif cfg.action in EDITGAN_ACTIONS:  # EditGAN (ganzoo.cli.editing)
        result = EDITGAN_ACTIONS[str(cfg.action)](cfg, task, ckpt)
    else:
        _latent_model(task, str(cfg.action))
        _apply_cutoff(cfg, task)
        latent_actions = {"generate": generate, "mix": mix, "interpolate": interpolate}
        with torch.no_grad():
            result = latent_actions[str(cfg.action)](cfg, task, ckpt)
    print(json.dumps(result))
    return result


def main() -> None:
    run("sample", main_fn, quiet=True)


if __name__ == "__main__":
    main()
