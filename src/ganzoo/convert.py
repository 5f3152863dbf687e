"""python -m ganzoo.convert model=<m> data=<d> source=<official file or folder> [out=PATH]

An official release (SPADE, pix2pixHD, StarGAN, AttnGAN/DAMSM, BigGAN-PyTorch, StyleGAN2-ADA)
becomes an ordinary ganzoo checkpoint: the resolved config, the task's state dict (G, EMA G,
D and encoders where the release has them; the EMA is G's weights when it has none) and
`ganzoo_source` — the model, the source files with their names and SHA-256, what the release
did not hold and notes. `ganzoo.sample`, `ganzoo.evaluate`, `ganzoo.export` read it like a
trained run's checkpoint, `ganzoo.info ckpt=` prints its provenance, and
`ganzoo.train init_from=CKPT` fine-tunes from it (weights only, fresh optimisers, iteration 0).

The network is built from the same composed config as training (conf/convert.yaml includes
conf/train.yaml), so the release's variant is chosen with the usual overrides (model.*,
data.num_classes, data.resolution, experiment=...). The reader of each format
(ganzoo.official.<model>) loads files with weights_only=True or the restricted unpickler and
names what differs in one line; `ganzoo.official.assemble` lists missing or unknown keys.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from ganzoo import official
from ganzoo.cli.build import build_task, choice, provenance
from ganzoo.cli.entry import run
from ganzoo.tasks.base import GANTask

_ENTRY_KEYS = ("source", "out", "ckpt")  # keys of this entry, not of the run's config


def run_config(cfg: DictConfig) -> dict[str, Any]:
    """The resolved training config a converted checkpoint stores (without this entry's keys)."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(resolved, dict)
    return {str(k): v for k, v in resolved.items() if k not in _ENTRY_KEYS}


def convert_task(cfg: DictConfig) -> tuple[GANTask, dict[str, Any]]:
    """(the task holding the release's weights, its `ganzoo_source` record)."""
    model = choice(cfg, "model")
    task = build_task(cfg, perceptual=lambda: None)  # loss networks are not part of a release
    task.run_config = run_config(cfg)
    converted = official.reader(model)(Path(str(cfg.source)).expanduser(), task)
    task.load_state_dict(official.assemble(task, converted))
    record = official.provenance(model, converted)
    record["converted_by"] = provenance()
    return task.eval(), record


def default_out(cfg: DictConfig) -> Path:
    name = f"{choice(cfg, 'model')}-{choice(cfg, 'data')}"
    return Path(str(cfg.paths.output_dir)) / "official" / name / "checkpoints" / "converted.ckpt"


def save(task: GANTask, record: dict[str, Any], path: Path) -> Path:
    """Write the checkpoint atomically (a temporary file renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    checkpoint = {
        "state_dict": task.state_dict(),
        "ganzoo_config": task.run_config,
        "ganzoo_source": record,
        "global_step": 0,
        "epoch": 0,
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(checkpoint, tmp)
    os.replace(tmp, path)
    return path


def main_fn(cfg: DictConfig) -> Path:
    task, record = convert_task(cfg)
    out = Path(str(cfg.out)) if cfg.out is not None else default_out(cfg)
    save(task, record, out)
    for note in record["notes"]:
        print(f"ganzoo: note: {note}")
    if record["absent"]:
        print(f"ganzoo: not in the release (kept at initialisation): {', '.join(record['absent'])}")
    files = ", ".join(f"{f['name']} (sha256 {f['sha256'][:12]}…)" for f in record["files"])
    print(f"ganzoo: converted {files} -> {out}")
    print(f"ganzoo: sample it with: python -m ganzoo.sample ckpt={out} {sample_hint(task)}")
    return out


def sample_hint(task: GANTask) -> str:
    """The ganzoo.sample arguments this model's action needs (conf/sample.yaml)."""
    if hasattr(task, "translation_columns"):
        return "action=translate images=[face.png]"
    if hasattr(task, "caption_images"):
        return 'action=caption caption="a small bird with a red head"'
    if hasattr(task, "draw_latents"):
        return "action=generate seeds=[0,1,2,3]"
    if "label_map" in task.required_fields():
        return "label_map=LABELS.png   # a PNG of label ids"
    return ""


def main() -> None:
    run("convert", main_fn, quiet=True)


if __name__ == "__main__":
    main()
