"""Readers of the official releases: their files -> a ganzoo task's state dict.

One module per conf/model choice, each with `convert(source: Path, task) -> Converted`
(ganzoo.official.base). `assemble` checks what a reader produced against the task, once for
every reader: every key the task has must come from the release (or sit under a prefix the
reader declared `absent`), nothing the task lacks may be left over, every shape must agree;
a release without an EMA generator gives the EMA the generator's weights. Nothing is
silently dropped or kept at random init without being named.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from ganzoo.official.base import Converted, ConvertError, sha256

READERS: dict[str, str] = {  # conf/model choice -> module with convert(source, task)
    "spade": "ganzoo.official.spade",
    "pix2pixhd": "ganzoo.official.pix2pixhd",
    "stargan": "ganzoo.official.stargan",
    "attngan": "ganzoo.official.attngan",
    "damsm": "ganzoo.official.damsm",
    "biggan": "ganzoo.official.biggan",
    "stylegan2": "ganzoo.official.stylegan2",
}

_COUNTERS = ("iteration", "images_seen")  # the task's own buffers: a converted run starts at 0
_LISTED = 8  # keys named in a mismatch message


def reader(model: str) -> Callable[[Path, Any], Converted]:
    """The `convert` function for a conf/model choice; an unknown one lists the valid ones."""
    if model not in READERS:
        raise ConvertError(
            f"model={model} has no official-release reader; valid: {', '.join(sorted(READERS))}"
        )
    try:
        module = importlib.import_module(READERS[model])
    except ModuleNotFoundError:
        raise ConvertError(f"model={model}: its official-release reader is not available") from None
    fn: Callable[[Path, Any], Converted] = module.convert
    return fn


def _listed(keys: list[str]) -> str:
    more = f" (+{len(keys) - _LISTED} more)" if len(keys) > _LISTED else ""
    return ", ".join(keys[:_LISTED]) + more


def assemble(task: nn.Module, converted: Converted) -> dict[str, Tensor]:
    """The full state dict for `task` from a reader's output; ConvertError on any mismatch."""
    own: dict[str, Tensor] = task.state_dict()
    state = dict(converted.state)
    if not any(k.startswith("generator_ema.") for k in state) and "generator_ema." not in (
        converted.absent
    ):
        ema_keys = [k for k in own if k.startswith("generator_ema.")]
        for key in ema_keys:
            source_key = "generator." + key[len("generator_ema.") :]
            if source_key in state:
                state[key] = state[source_key].clone()
        if ema_keys:
            converted.notes.append("the release has no EMA generator: generator_ema = generator")
    for name in _COUNTERS:
        if name in own:
            state[name] = own[name].new_zeros(())
    kept = [k for k in own if k.startswith(converted.absent)] if converted.absent else []
    for key in kept:
        state.setdefault(key, own[key])
    unexpected = sorted(k for k in state if k not in own)
    missing = sorted(k for k in own if k not in state)
    if unexpected:
        raise ConvertError(f"keys this ganzoo model does not have: {_listed(unexpected)}")
    if missing:
        raise ConvertError(f"keys missing from the release: {_listed(missing)}")
    for key, value in state.items():
        if tuple(value.shape) != tuple(own[key].shape):
            raise ConvertError(
                f"{key}: the source has shape {list(value.shape)}, "
                f"this ganzoo model {list(own[key].shape)}"
            )
        state[key] = value.to(own[key].dtype)
    return state


def provenance(model: str, converted: Converted) -> dict[str, Any]:
    """What the checkpoint records of its release: files, checksums, what was not in it."""
    return {
        "model": model,
        "files": [{"name": p.name, "path": str(p), "sha256": sha256(p)} for p in converted.sources],
        "absent": list(converted.absent),
        "notes": list(converted.notes),
    }
