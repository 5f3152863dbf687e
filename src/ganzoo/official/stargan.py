"""yunjey/stargan releases -> model=stargan.

Sources: a models folder (`stargan_celeba_128/models/` with `200000-G.ckpt` and
`200000-D.ckpt`, as solver.py saves them; the highest iteration is read) or one `<N>-G.ckpt`
file (then the discriminator is not in the release). The released models are CelebA 128 and
256 (c_dim 5), RaFD 128 (c_dim 8) and the joint CelebA + RaFD model (G sees c_dim + c2_dim +
2 mask channels, D classifies c_dim + c2_dim); pick the matching data (data=celeba,
data.resolution=256, data=rafd, data=celeba_rafd).

ganzoo's StarGAN networks have the official module layout, so the keys are the official ones.
Files saved by PyTorch before 0.4.1 have no InstanceNorm `num_batches_tracked`; it is set to 0
(unused: the official G normalises with each image's own statistics). The official code has
no EMA generator: the EMA starts as G.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ganzoo.official.base import Converted, ConvertError, load_torch, prefixed, require

_CKPT = re.compile(r"^(\d+)-([GD])\.ckpt$")


def _pick(source: Path) -> tuple[Path, Path | None]:
    """(G file, D file or None) of a folder (highest iteration) or a G file."""
    if source.is_file():
        m = _CKPT.match(source.name)
        require(
            not (m and m.group(2) == "D"),
            f"{source.name} is a discriminator: give the <N>-G.ckpt file or the folder",
        )
        return source, None
    require(source.is_dir(), f"source={source} does not exist")
    found: dict[int, dict[str, Path]] = {}
    for path in source.iterdir():
        if m := _CKPT.match(path.name):
            found.setdefault(int(m.group(1)), {})[m.group(2)] = path
    with_g = [n for n, files in found.items() if "G" in files]
    require(bool(with_g), f"source={source}: no <N>-G.ckpt file (e.g. 200000-G.ckpt) in the folder")
    files = found[max(with_g)]
    return files["G"], files.get("D")


def _state(path: Path) -> dict[str, Tensor]:
    state = load_torch(path)
    require(isinstance(state, dict), f"{path}: not a state dict")
    return dict(state)


def _with_counters(state: dict[str, Tensor], notes: list[str]) -> dict[str, Tensor]:
    """num_batches_tracked (0) for every InstanceNorm of a file saved before PyTorch 0.4.1."""
    out = dict(state)
    added = 0
    for key in [k for k in state if k.endswith(".running_mean")]:
        counter = key[: -len("running_mean")] + "num_batches_tracked"
        if counter not in out:
            out[counter] = torch.zeros((), dtype=torch.long)
            added += 1
    if added:
        notes.append(f"{added} InstanceNorm num_batches_tracked entries (PyTorch < 0.4.1) set to 0")
    return out


def _label_text(task: Any) -> str:
    if task.joint:
        return f"{task.label_dim} (model.c_dim {task.c_dim} + c2_dim {task.c2_dim} + 2 mask)"
    return f"{task.label_dim} (model.c_dim={task.c_dim})"


def check_generator(state: dict[str, Tensor], task: Any) -> None:
    require("main.0.weight" in state, "not a StarGAN generator: no main.0.weight")
    g = task.generator
    in_channels, conv_dim = state["main.0.weight"].shape[1], state["main.0.weight"].shape[0]
    labels = in_channels - 3
    require(
        labels == task.label_dim,
        f"source G takes {labels} label channels; this model {_label_text(task)}",
    )
    ours = g.main[0].out_channels
    require(conv_dim == ours, f"source G conv_dim {conv_dim}; model.generator.conv_dim={ours}")
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"main\.(\d+)\.main\.0\.", k))}
    ours_blocks = sum(type(m).__name__ == "ResidualBlock" for m in g.main)
    require(
        len(blocks) == ours_blocks,
        f"source G has {len(blocks)} residual blocks; model.generator.repeat_num={ours_blocks}",
    )


def check_discriminator(state: dict[str, Tensor], task: Any) -> None:
    require("conv2.weight" in state, "not a StarGAN discriminator: no conv2.weight")
    d = task.discriminator
    classes, kernel = state["conv2.weight"].shape[0], state["conv2.weight"].shape[-1]
    require(
        classes == d.c_dim,
        f"source D classifies {classes} domains; this model {d.c_dim} (model.c_dim + c2_dim)",
    )
    convs = [k for k in state if re.match(r"main\.\d+\.weight$", k)]
    ours = sum(1 for m in d.main if isinstance(m, torch.nn.Conv2d))
    require(
        len(convs) == ours,
        f"source D has {len(convs)} strided convs; model.discriminator.repeat_num={ours}",
    )
    size = kernel * 2 ** len(convs)
    require(
        size == d.image_size,
        f"source image_size {size}; data.resolution={d.image_size}",
    )
    conv_dim, ours_dim = state["main.0.weight"].shape[0], d.main[0].out_channels
    require(
        conv_dim == ours_dim,
        f"source D conv_dim {conv_dim}; model.discriminator.conv_dim={ours_dim}",
    )


def convert(source: Path, task: Any) -> Converted:
    """A StarGAN models folder or <N>-G.ckpt file -> the task's state."""
    g_path, d_path = _pick(source)
    notes: list[str] = []
    g_state = _state(g_path)
    check_generator(g_state, task)
    state = prefixed("generator.", _with_counters(g_state, notes))
    sources = [g_path]
    absent: tuple[str, ...] = ()
    if d_path is not None:
        d_state = _state(d_path)
        check_discriminator(d_state, task)
        state.update(prefixed("discriminator.", d_state))
        sources.append(d_path)
    else:
        absent = ("discriminator.",)
    if m := _CKPT.match(g_path.name):
        notes.append(f"the release was trained for {int(m.group(1))} iterations")
    return Converted(state=state, sources=sources, absent=absent, notes=notes)


__all__ = ["ConvertError", "check_discriminator", "check_generator", "convert"]
