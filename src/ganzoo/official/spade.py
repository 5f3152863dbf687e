"""NVlabs/SPADE releases -> model=spade.

Sources: a checkpoint folder `checkpoints/<name>/` holding `latest_net_G.pth` (+ `_D`, `_E`),
as the official util.save_network writes them (the released ade20k, cityscapes, coco models
have G and D), or one `<epoch>_net_G.pth` file, whose `<epoch>_net_D.pth` / `_E.pth` beside it
are read too. Each is a plain state_dict (read with weights_only=True).

Names. ganzoo's SPADE keeps the official module names in G (fc, head_0, G_middle_*, up_*,
conv_img; conv_0/1/s, norm_0/1/s with mlp_shared.0, mlp_gamma, mlp_beta, param_free_norm) and
the official spectral norm (ganzoo.nn.spectral_norm: `weight_orig`, `weight_u`, `weight_v`, the
torch-hook keys), so G maps 1:1; the sync-BN statistics of SynchronizedBatchNorm2d are a
BatchNorm2d's (running_mean, running_var, num_batches_tracked). The discriminator and encoder
are renamed:

    discriminator_<s>.model0.0.*       -> scales.<s>.layers.0.0.*        (first conv)
    discriminator_<s>.model<n>.0.0.*   -> scales.<s>.layers.<n>.0.*      (SN + IN convs)
    discriminator_<s>.model<L>.0.*     -> scales.<s>.layers.<L>.*        (logits conv)
    layer<k>.0.*                       -> layers.<k-1>.0.*               (encoder convs)

With `sn_impl: parametrizations` the hook keys become `parametrizations.weight.original`,
`…weight.0._u`, `…weight.0._v`. A release has no EMA generator: the EMA starts as G.
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

_D_KEY = re.compile(r"^discriminator_(\d+)\.model(\d+)\.(.*)$")
_E_KEY = re.compile(r"^layer(\d+)\.0\.(.*)$")


def _state(path: Path) -> dict[str, Tensor]:
    return load_state(path, "an official SPADE save_network file")


def _check_generator(state: dict[str, Tensor], task: Any) -> None:
    """One-line errors for a G of another label count, VAE setting, width or resolution."""
    g = task.generator
    require("head_0.conv_0.weight_orig" in state or "head_0.conv_0.weight" in state,
            "not an official SPADEGenerator (no head_0.conv_0)")  # fmt: skip
    shared = state["head_0.norm_0.mlp_shared.0.weight"]
    require(
        shared.shape[1] == g.semantic_nc,
        f"source G takes {shared.shape[1]} label channels (label_nc + dontcare + instance edge);"
        f" this model takes {g.semantic_nc} (data.label_nc, contain_dontcare_label, "
        "instance maps)",
    )
    hidden = g.head_0.norm_0.mlp_shared[0].out_channels
    require(
        shared.shape[0] == hidden,
        f"source SPADE embedding has {shared.shape[0]} channels; "
        f"model.generator.spade_hidden={hidden}",
    )
    fc = state["fc.weight"]
    source_vae = fc.ndim == 2
    require(
        source_vae == g.use_vae,
        f"source G {'starts from z (--use_vae)' if source_vae else 'starts from the label map'};"
        f" model.use_vae={str(g.use_vae).lower()}",
    )
    head = state.get("head_0.conv_0.weight_orig", state.get("head_0.conv_0.weight"))
    assert head is not None
    ngf = head.shape[0] // 16  # head_0 runs at 16 ngf channels
    require(ngf == g.ngf, f"source G has ngf {ngf}; model.generator.ngf={g.ngf}")
    most = any(k.startswith("up_4.") for k in state)
    require(
        most == (g.num_upsampling_layers == "most"),
        f"source G {'has' if most else 'has no'} up_4 (num_upsampling_layers "
        f"{'most' if most else 'normal / more'}); model.generator.num_upsampling_layers="
        f"{g.num_upsampling_layers}",
    )
    if source_vae:
        cells = fc.shape[0] // (16 * ngf)
        require(
            cells == g.sh * g.sw,
            f"source G starts from {cells} cells of z (sh x sw); this model from "
            f"{g.sh}x{g.sw} (data.resolution, aspect_ratio, num_upsampling_layers)",
        )
    batch_norm = "head_0.norm_0.param_free_norm.running_mean" in state
    ours = "batch" if g.head_0.norm_0.param_free_norm.__class__.__name__.startswith("Batch") else (
        "instance")  # fmt: skip
    require(
        batch_norm == (ours == "batch"),
        f"source SPADE normalises with {'(sync) batch norm' if batch_norm else 'instance norm'};"
        f" model.generator.param_free_norm={ours}",
    )


def _discriminator(state: dict[str, Tensor], task: Any) -> dict[str, Tensor]:
    """The official MultiscaleDiscriminator's keys -> ganzoo's (module docstring)."""
    d = task.discriminator
    scales = sorted({int(m.group(1)) for k in state if (m := _D_KEY.match(k))})
    require(bool(scales), "not an official SPADE MultiscaleDiscriminator (no discriminator_0.*)")
    require(
        len(scales) == len(d.scales),
        f"source D has {len(scales)} scales (--num_D); model.discriminator.num_scales="
        f"{len(d.scales)}",
    )
    last = max(int(m.group(2)) for k in state if (m := _D_KEY.match(k)))
    n_layers = len(d.scales[0].layers) - 1
    require(
        last == n_layers,
        f"source D has n_layers_D {last}; model.discriminator.n_layers={n_layers}",
    )
    first = state["discriminator_0.model0.0.weight"]
    require(
        first.shape[1] == d.scales[0].in_channels,
        f"source D takes {first.shape[1]} channels (labels + edges + 3); this model "
        f"{d.scales[0].in_channels}",
    )
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        m = _D_KEY.match(key)
        require(m is not None, f"D key {key} is not discriminator_<s>.model<n>.*")
        assert m is not None
        s, n, rest = m.group(1), int(m.group(2)), m.group(3)
        if n == 0:
            name = f"scales.{s}.layers.0.{rest}"  # model0.0.weight: (conv, lrelu)
        elif n == last:
            require(rest.startswith("0."), f"unexpected D key {key}")
            name = f"scales.{s}.layers.{n}.{rest[2:]}"  # model<L>.0.weight: the logits conv
        else:
            require(rest.startswith("0.0."), f"unexpected D key {key}")
            name = f"scales.{s}.layers.{n}.0.{rest[4:]}"  # model<n>.0.0: Sequential(conv, IN)
        out[name] = value
    return out


def _encoder(state: dict[str, Tensor], task: Any) -> dict[str, Tensor]:
    """The official ConvEncoder's keys -> ganzoo's."""
    layers = sorted({int(m.group(1)) for k in state if (m := _E_KEY.match(k))})
    require(
        layers == list(range(1, 7)),
        f"source E has conv layers {layers}; ganzoo's encoder has layer1..layer6 (the official "
        "code builds layer6 only for crop_size >= 256)",
    )
    fc = state["fc_mu.weight"]
    e = task.encoder
    require(
        fc.shape[0] == e.latent_dim,
        f"source E encodes to {fc.shape[0]} dims; model.encoder.latent_dim={e.latent_dim}",
    )
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        m = _E_KEY.match(key)
        out[f"layers.{int(m.group(1)) - 1}.0.{m.group(2)}" if m else key] = value
    return out


def _to_parametrizations(state: dict[str, Tensor], own: dict[str, Tensor]) -> dict[str, Tensor]:
    """Hook SN keys -> parametrizations keys, for a task built with sn_impl=parametrizations."""
    out: dict[str, Tensor] = {}
    suffixes = {
        "weight_orig": "parametrizations.weight.original",
        "weight_u": "parametrizations.weight.0._u",
        "weight_v": "parametrizations.weight.0._v",
    }
    for key, value in state.items():
        head, _, leaf = key.rpartition(".")
        if leaf in suffixes and key not in own:
            key = f"{head}.{suffixes[leaf]}"
        out[key] = value
    return out


def convert(source: Path, task: Any) -> Converted:
    """An official SPADE checkpoint (folder or *_net_G.pth) -> the task's state dict."""
    files = net_files(source, "SPADE")
    g_state = _state(files["G"])
    _check_generator(g_state, task)
    out = Converted(prefixed("generator.", g_state), [files["G"]])
    optional_network(
        out, files, "D", "discriminator.", lambda p: _discriminator(_state(p), task),
        "the discriminator",
    )  # fmt: skip
    if getattr(task, "encoder", None) is not None:
        optional_network(
            out, files, "E", "encoder.", lambda p: _encoder(_state(p), task), "the VAE encoder"
        )
    elif "E" in files:
        raise ConvertError(f"source has an encoder ({files['E'].name}) but model.use_vae=false")
    state, own = out.state, task.state_dict()
    missing_counts = [
        k for k in own
        if k.endswith("num_batches_tracked") and k not in state
        and k.startswith(("generator.", "discriminator.", "encoder."))
        and k.replace("num_batches_tracked", "running_mean") in state
    ]  # fmt: skip
    for key in missing_counts:  # files saved before PyTorch 0.4.1 have no counter
        state[key] = own[key].new_zeros(())
    out.state = _to_parametrizations(state, own)
    return out
