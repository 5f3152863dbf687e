"""BigGAN-PyTorch releases (ajbrock/BigGAN-PyTorch) -> model=biggan.

Sources: a weights folder (`weights/<experiment>/` with G.pth, G_ema.pth, D.pth and
state_dict.pth, as utils.save_weights writes them; the `_best0`, `_copy0` suffixes are other
files of the same kind: name one to read it), a single G / G_ema file, or a generator converted
from TF-Hub by the official TFHub/converter.py (`biggan-128.pth`, `biggan-256.pth`: the
official G keys without the sv0 entries, built with BN_eps = SN_eps = 1e-4, dim_z 120 / 140 and
attention at 64 / 128).

Names. ganzoo's BigGAN uses the official spectral norm with the official keys (ganzoo.nn.
biggan_sn: `weight`, `bias`, `u0`, `sv0`), so conv, linear, embedding and attention entries
map 1:1. BatchNorm statistics live in torch BatchNorm modules: the official ccbn's
`bn1.stored_mean` / `stored_var` (or `bn1.bn.*` with --mybn / --cross_replica) become
`bn1.bn.running_mean` / `running_var`, the output BN's `output_layer.0.gain` becomes
`output_layer.0.weight`; `num_batches_tracked` (absent officially, unused at momentum 0.1)
starts at 0. Missing sv0 entries (TF-Hub files; logging only) become 1.

state_dict.pth holds the counters and the run's config (with nn.ReLU objects and numpy scalars,
the only globals allowed when it is read with weights_only=True; a file with anything else is
skipped with a note); its config is checked against the task, its `itr` recorded in the notes.
A converted run starts at iteration 0.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ganzoo.official.base import Converted, find_file, load_torch, prefixed, require

_BLOCKS_TO_RESOLUTION_G = {3: 32, 4: 64, 5: 128, 6: 256, 7: 512}  # BigGAN.py G_arch
_BLOCKS_TO_RESOLUTION_D = {4: 32, 5: 64, 6: 128, 7: 256}  # D_arch
_FIRST_MULT_G = {32: 4, 64: 16, 128: 16, 256: 16, 512: 16}  # in_channels[0] / G_ch
_FIRST_MULT_D = {32: 4, 64: 1, 128: 1, 256: 1}  # out_channels[0] / D_ch
_TFHUB = re.compile(r"biggan-(\d+)\.pth$")
_BN_STAT = re.compile(  # ccbn / output bn statistics, plain, --mybn or --cross_replica
    r"^(?P<bn>.*\.bn[12]|output_layer\.0)\.(?:bn\.)?"
    r"(?P<stat>stored_mean|stored_var|running_mean|running_var)$"
)


def _blocks(state: dict[str, Tensor]) -> int:
    ids = {int(m.group(1)) for k in state if (m := re.match(r"blocks\.(\d+)\.0\.conv1\.", k))}
    require(bool(ids), "not a BigGAN-PyTorch network: no blocks.<i>.0.conv1 entries")
    return max(ids) + 1


def _attention_blocks(state: dict[str, Tensor]) -> list[int]:
    found = (re.match(r"blocks\.(\d+)\.1\.gamma$", k) for k in state)
    return sorted({int(m.group(1)) for m in found if m})


def _check_generator(state: dict[str, Tensor], task: Any, name: str) -> None:
    """One-line errors for a G of another class count, resolution, width, z or attention."""
    g = task.generator
    require("shared.weight" in state, f"{name}: not a BigGAN-PyTorch G (no shared.weight)")
    classes, shared_dim = state["shared.weight"].shape
    require(
        classes == task.num_classes,
        f"source has {classes} classes; data.num_classes={task.num_classes}",
    )
    blocks = _blocks(state)
    resolution = _BLOCKS_TO_RESOLUTION_G.get(blocks)
    require(
        resolution == g.resolution,
        f"source resolution {resolution} ({blocks} G blocks); data.resolution={g.resolution}",
    )
    ch = state["blocks.0.0.conv1.weight"].shape[1] // _FIRST_MULT_G[g.resolution]
    ours = g.first_channels // _FIRST_MULT_G[g.resolution]
    require(ch == ours, f"source G_ch {ch}; model.generator.ch={ours}")
    require(
        shared_dim == g.shared.embedding_dim,
        f"source shared_dim {shared_dim}; model.generator.shared_dim={g.shared.embedding_dim}",
    )
    dim_z = state["linear.weight"].shape[1] * g.num_slots
    require(dim_z == g.dim_z, f"source dim_z {dim_z}; model.generator.dim_z={g.dim_z}")
    ours_attn = [i for i, stage in enumerate(g.blocks) if len(stage) > 1]
    theirs = _attention_blocks(state)
    require(
        theirs == ours_attn,
        f"source has self-attention after G blocks {theirs}; model.generator.attention gives "
        f"{ours_attn}",
    )


def _check_discriminator(state: dict[str, Tensor], task: Any) -> None:
    d = task.discriminator
    require("embed.weight" in state, "D file: not a BigGAN-PyTorch D (no embed.weight)")
    classes = state["embed.weight"].shape[0]
    require(
        classes == task.num_classes,
        f"source D has {classes} classes; data.num_classes={task.num_classes}",
    )
    blocks = _blocks(state)
    resolution = _BLOCKS_TO_RESOLUTION_D.get(blocks)
    require(
        resolution == d.resolution,
        f"source D resolution {resolution} ({blocks} D blocks); data.resolution={d.resolution}",
    )
    ch = state["blocks.0.0.conv1.weight"].shape[0] // _FIRST_MULT_D[d.resolution]
    ours = d.blocks[0][0].conv1.out_channels // _FIRST_MULT_D[d.resolution]
    require(ch == ours, f"source D_ch {ch}; model.discriminator.ch={ours}")


def generator_state(official: dict[str, Tensor]) -> dict[str, Tensor]:
    """Official G keys -> ganzoo BigGANGenerator keys (see the module docstring)."""
    out: dict[str, Tensor] = {}
    norms: set[str] = set()
    for key, value in official.items():
        if key.endswith(".accumulation_counter") or key.endswith(".num_batches_tracked"):
            continue  # myBN's standing-stat counter / SyncBN's counter: not ganzoo state
        m = _BN_STAT.match(key)
        if m:
            bn = m.group("bn")
            stat = "running_mean" if m.group("stat").endswith("mean") else "running_var"
            inner = bn if bn == "output_layer.0" else bn + ".bn"
            out[f"{inner}.{stat}"] = value
            norms.add(inner)
            continue
        if key == "output_layer.0.gain":
            out["output_layer.0.weight"] = value
            continue
        out[key] = value
    for inner in norms:
        out[f"{inner}.num_batches_tracked"] = torch.zeros((), dtype=torch.long)
    for key in [k for k in out if k.endswith(".u0")]:
        out.setdefault(key[: -len("u0")] + "sv0", torch.ones(1))  # TF-Hub files lack sv0
    return out


def _run_state_globals() -> list[Any]:
    """What a state_dict.pth may hold besides plain data: the config's nn.ReLU objects and the
    numpy scalars of best_IS / best_FID (under numpy 1 and numpy 2 names)."""
    import numpy as np  # noqa: PLC0415

    scalar = np.float64(0).__reduce__()[0]  # numpy._core.multiarray.scalar
    return [
        nn.ReLU,
        np.dtype,
        type(np.dtype(np.float64)),
        (scalar, "numpy.core.multiarray.scalar"),
        (scalar, "numpy._core.multiarray.scalar"),
    ]


def _load_state(path: Path) -> dict[str, Any] | None:
    """state_dict.pth (counters + config), read with weights_only=True and only the globals of
    `_run_state_globals` allowed; None when it holds anything else (it is optional)."""
    try:
        with torch.serialization.safe_globals(_run_state_globals()):
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 -- optional file: the caller notes it was not read
        return None
    return dict(state) if isinstance(state, dict) else None


def _check_config(config: dict[str, Any], task: Any) -> list[str]:
    """The run's config against the task: one-line errors on what the weights cannot show."""
    g = task.generator
    checks = (
        ("n_classes", task.num_classes, "data.num_classes"),
        ("resolution", g.resolution, "data.resolution"),
        ("hier", g.hier, "model.generator.hier"),
    )
    for key, ours, name in checks:
        if key in config:
            require(config[key] == ours, f"source {key} {config[key]}; {name}={ours}")
    notes = []
    for key, ours, name in (
        ("BN_eps", g.blocks[0][0].bn1.bn.eps, "model.generator.bn_eps"),
        ("SN_eps", g.linear.sn_eps, "model.generator.sn_eps"),
    ):
        if key in config and float(config[key]) != float(ours):
            notes.append(f"the release was trained with {key} {config[key]}; {name}={ours}")
    return notes


def convert(source: Path, task: Any) -> Converted:
    """A BigGAN-PyTorch weights folder or G / G_ema / TF-Hub file -> the task's state."""
    notes: list[str] = []
    sources: list[Path] = []
    state: dict[str, Tensor] = {}
    absent: list[str] = []
    tfhub = source.is_file() and bool(_TFHUB.search(source.name))
    if source.is_file():
        g_path, ema_path, d_path, sd_path = source, None, None, None
    else:
        g_path = find_file(source, ["G.pth", "G_ema.pth"], "generator (G.pth)")
        ema_path = source / "G_ema.pth" if (source / "G_ema.pth").is_file() else None
        d_path = source / "D.pth" if (source / "D.pth").is_file() else None
        sd_path = source / "state_dict.pth" if (source / "state_dict.pth").is_file() else None
        if not (source / "G.pth").is_file():
            notes.append("no G.pth: the generator is G_ema.pth")
    official_g = load_torch(g_path)
    require(isinstance(official_g, dict), f"{g_path}: not a state dict")
    sources.append(g_path)
    _check_generator(official_g, task, g_path.name)
    if not any(k.endswith(".sv0") for k in official_g):
        tfhub = True
    if tfhub:
        notes.append(
            "TF-Hub generator (TFHub/converter.py): built there with BN_eps = SN_eps = 1e-4; "
            "sv0 (logging only) set to 1"
        )
        g = task.generator
        if (g.blocks[0][0].bn1.bn.eps, g.linear.sn_eps) != (1e-4, 1e-4):
            notes.append(
                "set model.generator.bn_eps=1e-4 model.generator.sn_eps=1e-4 for the official "
                "outputs of a TF-Hub generator"
            )
    state.update(prefixed("generator.", generator_state(official_g)))
    if ema_path is not None and ema_path != g_path:
        official_ema = load_torch(ema_path)
        require(isinstance(official_ema, dict), f"{ema_path}: not a state dict")
        _check_generator(official_ema, task, ema_path.name)
        state.update(prefixed("generator_ema.", generator_state(official_ema)))
        sources.append(ema_path)
    elif source.is_file() and "ema" in source.name.lower():
        state.update(prefixed("generator_ema.", generator_state(official_g)))
    if d_path is not None:
        official_d = load_torch(d_path)
        require(isinstance(official_d, dict), f"{d_path}: not a state dict")
        _check_discriminator(official_d, task)
        state.update(prefixed("discriminator.", dict(official_d)))
        sources.append(d_path)
    else:
        absent.append("discriminator.")
    run_state = _load_state(sd_path) if sd_path is not None else None
    if sd_path is not None and run_state is None:
        notes.append("state_dict.pth not read: it holds objects beyond plain data and nn.ReLU")
    if sd_path is not None and run_state is not None:
        sources.append(sd_path)
        config = run_state.get("config")
        if isinstance(config, dict):
            notes += _check_config(config, task)
        if "itr" in run_state:
            notes.append(f"the release was trained for {int(run_state['itr'])} G iterations")
    return Converted(state=state, sources=sources, absent=tuple(absent), notes=notes)
