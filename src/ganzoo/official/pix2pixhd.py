"""NVIDIA/pix2pixHD releases -> model=pix2pixhd.

Sources: a checkpoint folder `checkpoints/<name>/` with `latest_net_G.pth` (+ `_D`, `_E` when
present), as Pix2PixHDModel.save writes them (the label2city_1024p / 512p releases hold G), or
one `<epoch>_net_G.pth` file, whose `_D` / `_E` beside it are read too. Plain state_dicts, read
with weights_only=True.

Names (the official networks.py -> ganzoo.models.pix2pixhd):

    netG global   model.<i>.*            -> generator.global_generator.<i>.*  (i < len - 3)
                  model.<len-2>.*        -> generator.output_layer.1.*        (the output conv)
    netG local    model.<i>.*            -> generator.global_generator.<i>.*  (G1 minus its
                                            output layers: "netG_global" of a local run)
                  model<n>_1.<j>.*       -> generator.local_enhancers.<n-1>.front.<j>.*
                  model<n>_2.<j>.*       -> generator.local_enhancers.<n-1>.back.<j>.*, and the
                                            last enhancer's output conv -> generator.output_layer.1
    D             scale<s>_layer<j>.0.*  -> discriminator.scales.<num_D-1-s>.layers.<j>[.0].*
                  (the official runs its last-registered scale at full resolution; ganzoo's
                  scale 0 is the full-resolution one), or layer<s>.<k>.* of a D built with
                  --no_ganFeat_loss (its convs in order)
    E             model.<i>.*            -> encoder.model.<i>.*

Width: the official --ngf of netG local is the finest enhancer's width; ganzoo's ngf is G1's
(ganzoo.models.pix2pixhd), read here from the file. A release has no EMA generator: the EMA
starts as G.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from torch import Tensor

from ganzoo.official.base import (
    Converted,
    ConvertError,
    load_state,
    net_files,
    optional_network,
    prefixed,
    require,
)

_G_KEY = re.compile(r"^model\.(\d+)\.(.*)$")
_LOCAL_KEY = re.compile(r"^model(\d+)_([12])\.(\d+)\.(.*)$")
_D_FEAT_KEY = re.compile(r"^scale(\d+)_layer(\d+)\.(\d+)\.(.*)$")
_D_FLAT_KEY = re.compile(r"^layer(\d+)\.model\.(\d+)\.(.*)$|^layer(\d+)\.(\d+)\.(.*)$")


def _state(path: Path) -> dict[str, Tensor]:
    return load_state(path, "an official pix2pixHD save_network file")


def _generator(state: dict[str, Tensor], task: Any) -> dict[str, Tensor]:
    """Official GlobalGenerator / LocalEnhancer keys -> ganzoo's, after one-line checks."""
    g = task.generator
    require("model.1.weight" in state, "not an official pix2pixHD generator (no model.1.weight)")
    first = state["model.1.weight"]  # G1's front Conv7: (ngf_G1, input_nc, 7, 7)
    require(
        first.shape[1] == g.input_nc,
        f"source G takes {first.shape[1]} input channels (label_nc + instance edge + feat_num);"
        f" this model {g.input_nc} (data.label_nc, instance maps, model.instance_feat)",
    )
    enhancers = sorted({int(m.group(1)) for k in state if (m := _LOCAL_KEY.match(k))})
    require(
        len(enhancers) == g.n_local_enhancers,
        f"source G is netG {'local' if enhancers else 'global'} with {len(enhancers)} local "
        f"enhancers; model.netG={g.netG} with {g.n_local_enhancers}",
    )
    ngf = g.global_generator[1].out_channels
    require(
        first.shape[0] == ngf,
        f"source G1 has width {first.shape[0]}; model.generator.ngf={ngf} (ganzoo's ngf is G1's "
        "width: the official --ngf x 2^n_local_enhancers)",
    )
    blocks = {int(m.group(1)) for k in state if (m := _G_KEY.match(k)) and "conv_block" in k}
    ours = sum(1 for m in g.global_generator if type(m).__name__ == "ResnetBlock")
    require(
        len(blocks) == ours,
        f"source G1 has {len(blocks)} residual blocks (--n_blocks_global); "
        f"model.generator.n_blocks_global={ours}",
    )
    indices = {int(m.group(1)) for k in state if (m := _G_KEY.match(k))}
    out_index = max(indices) if not enhancers else -1  # the global G's output Conv7
    last = max(enhancers, default=0)
    final = max(
        (int(m.group(3)) for k in state if (m := _LOCAL_KEY.match(k)) and int(m.group(1)) == last
         and m.group(2) == "2"), default=-1,
    )  # fmt: skip
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        if m := _G_KEY.match(key):
            i, rest = int(m.group(1)), m.group(2)
            name = f"output_layer.1.{rest}" if i == out_index else f"global_generator.{i}.{rest}"
        elif m := _LOCAL_KEY.match(key):
            n, part, j, rest = int(m.group(1)), m.group(2), int(m.group(3)), m.group(4)
            if part == "2" and n == last and j == final:
                name = f"output_layer.1.{rest}"
            else:
                side = "front" if part == "1" else "back"
                name = f"local_enhancers.{n - 1}.{side}.{j}.{rest}"
        else:
            raise ConvertError(f"G key {key} is not an official pix2pixHD generator key")
        out[name] = value
    return out


def _discriminator(state: dict[str, Tensor], task: Any) -> dict[str, Tensor]:
    """Official MultiscaleDiscriminator keys -> ganzoo's (module docstring)."""
    d = task.discriminator
    n_layers = len(d.scales[0].layers) - 1  # ganzoo n_layers = official n_layers_D + 1
    feat = {(int(m.group(1)), int(m.group(2))) for k in state if (m := _D_FEAT_KEY.match(k))}
    convs: dict[int, list[str]] = {}  # scale -> its conv prefixes in order
    if feat:
        for s in sorted({s for s, _ in feat}):
            layers = sorted(j for t, j in feat if t == s)
            convs[s] = [f"scale{s}_layer{j}.0." for j in layers]
    else:
        for key in state:
            m = _D_FLAT_KEY.match(key)
            require(m is not None, f"D key {key} is not an official pix2pixHD discriminator key")
            assert m is not None
            s = int(m.group(1) or m.group(4))
            prefix = key[: key.rindex(".") + 1]
            if prefix not in convs.setdefault(s, []):
                convs[s].append(prefix)
        for s in convs:
            convs[s].sort(key=lambda p: int(p.rstrip(".").rsplit(".", 1)[1]))
    num_d = len(convs)
    require(
        num_d == len(d.scales),
        f"source D has {num_d} scales (--num_D); model.discriminator.num_scales={len(d.scales)}",
    )
    source_layers = len(convs[0]) - 1
    require(
        source_layers == n_layers,
        f"source D has n_layers_D {source_layers - 1}; model.discriminator.n_layers="
        f"{n_layers} (= n_layers_D + 1)",
    )
    first = state[convs[0][0] + "weight"]
    require(
        first.shape[1] == d.scales[0].in_channels,
        f"source D takes {first.shape[1]} channels (labels + edges + 3); this model "
        f"{d.scales[0].in_channels}",
    )
    out: dict[str, Tensor] = {}
    for s, prefixes in convs.items():
        ours = num_d - 1 - s  # the official scale num_D-1 runs at full resolution
        for j, prefix in enumerate(prefixes):
            target = f"scales.{ours}.layers.{j}." + ("" if j == n_layers else "0.")
            for key, value in state.items():
                if key.startswith(prefix):
                    out[target + key[len(prefix) :]] = value
    require(len(out) == len(state), "source D has entries outside its convs")
    return out


def _encoder(state: dict[str, Tensor], task: Any) -> dict[str, Tensor]:
    e = task.encoder
    last = max(int(m.group(1)) for k in state if (m := _G_KEY.match(k)))
    feat_num = state[f"model.{last}.weight"].shape[0]
    require(
        feat_num == e.feat_num,
        f"source E gives {feat_num} features; model.encoder.feat_num={e.feat_num}",
    )
    return dict(state)  # model.<i>.* in both


def convert(source: Path, task: Any) -> Converted:
    """An official pix2pixHD checkpoint (folder or *_net_G.pth) -> the task's state dict."""
    files = net_files(source, "pix2pixHD")
    out = Converted(prefixed("generator.", _generator(_state(files["G"]), task)), [files["G"]])
    optional_network(
        out, files, "D", "discriminator.", lambda p: _discriminator(_state(p), task),
        "the discriminator",
    )  # fmt: skip
    if getattr(task, "encoder", None) is not None:
        optional_network(
            out, files, "E", "encoder.", lambda p: _encoder(_state(p), task), "the feature encoder"
        )
    elif "E" in files:
        raise ConvertError(
            f"source has a feature encoder ({files['E'].name}) but model.instance_feat=false"
        )
    return out
