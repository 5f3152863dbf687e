"""NVlabs/stylegan2-ada-pytorch network pickles (`*.pkl` with G, D, G_ema, augment_pipe).

The pickle is read by `ganzoo.core.safe_pickle` (no code from it is imported or run): its
modules come back as records of their state, and their constructor kwargs (`init_kwargs`)
are checked against the ganzoo task before any weight is mapped, each difference a one-line
ConvertError naming the source value and the config key (e.g. `source resolution 1024;
data.resolution=64`). The names are the official ones 1:1 (ganzoo.models.stylegan2 keeps
them: mapping.fc0, synthesis.b4.conv1.noise_const, b4.epilogue -> b4 ...), including
`mapping.w_avg` (the truncation centre). ADA's augmentation probability p, when the pickle
holds an augment_pipe, becomes the task's `augment_p`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from torch import Tensor

from ganzoo.core.safe_pickle import PersistentObject, UnsafePickleError, load_safe_pickle
from ganzoo.official.base import Converted, ConvertError, find_file, prefixed, require

NAMES = ("network-snapshot.pkl", "G.pkl")  # a folder source: the first of these in it
# The task's own training state that a network pickle does not hold (kept at its init).
_TRAINING_STATE = ("pl_mean", "ada_sign_sum", "ada_sign_count", "augment_pipe.", "class_counts")


def convert(source: Path, task: Any) -> Converted:
    """The StyleGAN2Task state of an official pickle (G, D, G_ema; augment p when present)."""
    path = find_file(source, NAMES, "stylegan2-ada-pytorch network pickle (*.pkl)")
    try:
        data = load_safe_pickle(path)
    except UnsafePickleError as err:
        raise ConvertError(str(err)) from None
    require(isinstance(data, dict), f"{path}: not a network pickle (no dict of G, D, G_ema)")
    nets = {k: v for k, v in data.items() if isinstance(v, PersistentObject)}
    require(
        "G" in nets or "G_ema" in nets,
        f"{path}: no generator in the pickle (it holds {', '.join(map(str, data)) or 'nothing'})",
    )
    notes: list[str] = []
    absent = [p for p in _TRAINING_STATE if _has_prefix(task, p)]
    g_source = nets.get("G") or nets["G_ema"]
    check_generator(g_source.init_kwargs, task, notes)
    state = prefixed("generator.", g_source.state_dict())
    if "G" not in nets:
        notes.append("the pickle has no G: the trained generator starts from G_ema")
    if "G_ema" in nets:
        check_generator(nets["G_ema"].init_kwargs, task, [])
        state.update(prefixed("generator_ema.", nets["G_ema"].state_dict()))
    if "D" in nets:
        check_discriminator(nets["D"].init_kwargs, task, notes)
        state.update(prefixed("discriminator.", nets["D"].state_dict()))
    else:
        absent.append("discriminator.")
        notes.append("the pickle has no D: the discriminator keeps its random init")
    state.update(_augment_p(nets.get("augment_pipe"), task, notes))
    if "augment_p" not in state and _has_prefix(task, "augment_p"):
        absent.append("augment_p")
    return Converted(state=state, sources=[path], absent=tuple(absent), notes=notes)


def _has_prefix(task: Any, prefix: str) -> bool:
    return any(k.startswith(prefix) for k in task.state_dict())


def _augment_p(pipe: PersistentObject | None, task: Any, notes: list[str]) -> dict[str, Tensor]:
    if pipe is None:
        return {}
    p = pipe.state_dict().get("p")
    if p is None or not _has_prefix(task, "augment_p"):
        return {}
    notes.append(f"ADA augmentation probability p = {float(p):.4f} carried from the pickle")
    return {"augment_p": p.reshape([]).float()}


def _differ(what: str, source: Any, key: str, ours: Any) -> None:
    """One line `source <what> <value>; <config key>=<value>` when the two differ."""
    same = source == ours
    if isinstance(source, float) and isinstance(ours, float):
        same = math.isclose(source, ours, rel_tol=1e-9)
    require(same, f"source {what} {_show(source)}; {key}={_show(ours)}")


def _show(value: Any) -> str:
    return "null" if value is None else str(value)


def check_generator(kwargs: dict[str, Any], task: Any, notes: list[str]) -> None:
    """The G of the pickle against the task's G: one line naming the first difference."""
    g = task.generator
    require(bool(kwargs), "the pickle's generator records no constructor arguments")
    _differ("resolution", kwargs.get("img_resolution"), "data.resolution", g.img_resolution)
    c_dim = int(kwargs.get("c_dim", 0))
    if c_dim != g.c_dim:
        ours = f"model.conditional=true, data.num_classes={g.c_dim}"
        if g.c_dim == 0:
            ours = "model.conditional=false"
        raise ConvertError(f"source has {c_dim} classes (c_dim); {ours}")
    _differ("z_dim", kwargs.get("z_dim"), "model.generator.z_dim", g.z_dim)
    _differ("w_dim", kwargs.get("w_dim"), "model.generator.w_dim", g.w_dim)
    _differ("img_channels", kwargs.get("img_channels"), "model.generator.img_channels", 3)
    mapping = dict(kwargs.get("mapping_kwargs") or {})
    synthesis = dict(kwargs.get("synthesis_kwargs") or {})
    _differ(
        "mapping layers",
        mapping.get("num_layers", 8),
        "model.generator.mapping_layers",
        g.mapping.num_layers,
    )
    _differ(
        "mapping lr_multiplier",
        float(mapping.get("lr_multiplier", 0.01)),
        "model.generator.mapping_lr_multiplier",
        float(g.mapping.fc0.bias_gain),
    )
    _differ(
        "w_avg_beta", mapping.get("w_avg_beta", 0.995), "model.generator.w_avg_beta",
        g.mapping.w_avg_beta,
    )  # fmt: skip
    _differ("G architecture", synthesis.get("architecture", "skip"), "the ganzoo G", "skip")
    base, cmax = synthesis.get("channel_base", 32768), synthesis.get("channel_max", 512)
    top = g.img_resolution
    ours_top = getattr(g.synthesis, f"b{top}").conv1.weight.shape[0]
    ours_4 = g.synthesis.b4.const.shape[0]
    _differ(
        "channels at 4x4 / at the output resolution",
        (min(base // 4, cmax), min(base // top, cmax)),
        "model.generator.channel_base/channel_max give",
        (ours_4, ours_top),
    )
    clamp = synthesis.get("conv_clamp")
    _differ("conv_clamp", clamp, "model.generator.conv_clamp", g.synthesis.b4.conv1.conv_clamp)
    _fp16_note(synthesis.get("num_fp16_res", 0), g.synthesis, "G", notes)


def check_discriminator(kwargs: dict[str, Any], task: Any, notes: list[str]) -> None:
    """The D of the pickle against the task's D: one line naming the first difference."""
    d = task.discriminator
    require(bool(kwargs), "the pickle's discriminator records no constructor arguments")
    _differ("D resolution", kwargs.get("img_resolution"), "data.resolution", d.img_resolution)
    _differ("D c_dim", int(kwargs.get("c_dim", 0)), "the task's c_dim", d.c_dim)
    _differ("D architecture", kwargs.get("architecture", "resnet"), "the ganzoo D", "resnet")
    base, cmax = kwargs.get("channel_base", 32768), kwargs.get("channel_max", 512)
    ours = d.b4.conv.weight.shape[0]
    _differ(
        "D channels at 4x4", min(base // 4, cmax),
        "model.discriminator.channel_base/channel_max give", ours,
    )  # fmt: skip
    epilogue = dict(kwargs.get("epilogue_kwargs") or {})
    _differ(
        "mbstd_group_size", epilogue.get("mbstd_group_size", 4),
        "model.discriminator.mbstd_group_size", d.b4.mbstd.group_size,
    )  # fmt: skip
    _differ(
        "mbstd_num_channels", epilogue.get("mbstd_num_channels", 1),
        "model.discriminator.mbstd_num_channels", d.b4.mbstd.num_channels,
    )  # fmt: skip
    if d.c_dim > 0:
        mapping = dict(kwargs.get("mapping_kwargs") or {})
        _differ(
            "D mapping layers", mapping.get("num_layers", 8),
            "model.discriminator.mapping_layers", d.mapping.num_layers,
        )  # fmt: skip
    clamp = kwargs.get("conv_clamp")
    _differ("D conv_clamp", clamp, "model.discriminator.conv_clamp", d.b4.conv.conv_clamp)
    _fp16_note(kwargs.get("num_fp16_res", 0), d, "D", notes)


def _fp16_note(num_fp16_res: Any, net: Any, name: str, notes: list[str]) -> None:
    """float16 blocks are a run-time choice, not weights: a difference is a note, not an error."""
    source, ours = int(num_fp16_res or 0), int(getattr(net, "num_fp16_res", 0))
    if source != ours:
        notes.append(
            f"the source {name} computed its {source} highest resolutions in float16; this "
            f"ganzoo {name} uses {ours} (model.generator.num_fp16_res; on a CUDA GPU outputs "
            "differ at float16 rounding, set it to match for the official numerics)"
        )
