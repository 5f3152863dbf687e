"""Reader of taoxugit/AttnGAN's generator releases: model=attngan.

    python -m ganzoo.convert model=attngan data=cub source=release/bird
    python -m ganzoo.convert model=attngan data=coco_captions source=release/coco

(model_data/attngan_coco_captions.yaml sets COCO's GF_DIM 48, R_NUM 3, lambda 50.)

The source folder holds the generator and the DAMSM it was trained with (the official code
needs both to sample; ganzoo's AttnGAN task carries its DAMSM as `damsm.*`):

    netG_epoch_600.pth (or bird_AttnGAN2.pth / coco_AttnGAN2.pth, any netG*.pth or *AttnGAN*.pth;
                       the highest epoch if several)  G_NET state dict
    netD0.pth, netD1.pth, netD2.pth   optional: the stage discriminators (absent: noted)
    text_encoder200.pth, [image_encoder200.pth], captions.pickle   see ganzoo.official.damsm

Every official netG file holds the 0.999 average of G's parameters (trainer.py save_model: the
averaged weights with the trained G's BatchNorm statistics): it becomes both the generator and
the EMA generator. Names: h_net1 -> init_stage (upsample<k> -> up.<k-1>), h_net<k> ->
next_stages.<k-2> (upsample -> up), img_net<k>.img -> to_images.<k-1>; D's img_code_s16 /
img_code_s32 / img_code_s64 (+ _1, _2) -> encode.<i>, UNCOND_DNET.outlogits -> uncond.out,
COND_DNET.jointConv / outlogits -> cond.joint / cond.out. A release of another structure is a
one-line error (stages, GF_DIM, R_NUM, Z_DIM, CONDITION_DIM, EMBEDDING_DIM, DF_DIM).

The released code masks word attention with `mask.repeat(queryL, 1)` (see
ganzoo.models.attngan.WordAttention): to sample exactly as it did, convert with
model.generator.word_mask=official_misaligned (same weights; the default per_caption gives each
image its own caption's mask).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from torch import Tensor

from ganzoo.official.base import Converted, ConvertError, load_torch, require
from ganzoo.official.damsm import _epoch, encoders, with_batch_counters


def generator_key(key: str) -> str:
    """An official G_NET key -> ganzoo's AttnGANGenerator key."""
    m = re.match(r"^h_net1\.upsample(\d)\.(.*)$", key)
    if m:
        return f"init_stage.up.{int(m[1]) - 1}.{m[2]}"
    if key.startswith("h_net1.fc."):
        return "init_stage." + key[len("h_net1.") :]
    m = re.match(r"^h_net(\d)\.(att|residual|upsample)\.(.*)$", key)
    if m:
        part = "up" if m[2] == "upsample" else m[2]
        return f"next_stages.{int(m[1]) - 2}.{part}.{m[3]}"
    m = re.match(r"^img_net(\d)\.img\.(.*)$", key)
    if m:
        return f"to_images.{int(m[1]) - 1}.{m[2]}"
    if key.startswith("ca_net."):
        return key
    raise ConvertError(f"unknown key {key} in the AttnGAN generator file")


_S16 = {"0": "0", "2": "2.0", "3": "2.1", "5": "3.0", "6": "3.1", "8": "4.0", "9": "4.1"}


def discriminator_key(key: str, extra: int) -> str:
    """An official D_NET64/128/256 key (extra = 0/1/2) -> ganzoo's StageDiscriminator key."""
    m = re.match(r"^img_code_s16\.(\d+)\.(.*)$", key)
    if m and m[1] in _S16:
        return f"encode.{_S16[m[1]]}.{m[2]}"
    order = {
        0: (),
        1: ("img_code_s32", "img_code_s32_1"),
        2: ("img_code_s32", "img_code_s64", "img_code_s64_1", "img_code_s64_2"),
    }[extra]
    m = re.match(r"^(img_code_s\d+(?:_\d)?)\.(\d+)\.(.*)$", key)
    if m and m[1] in order:
        return f"encode.{5 + order.index(m[1])}.{m[2]}.{m[3]}"
    for official, ours in (
        ("UNCOND_DNET.outlogits.", "uncond.out."),
        ("COND_DNET.outlogits.", "cond.out."),
        ("COND_DNET.jointConv.", "cond.joint."),
    ):
        if key.startswith(official):
            return ours + key[len(official) :]
    raise ConvertError(f"unknown key {key} in the AttnGAN discriminator file (D_NET{64 << extra})")


def _generator_file(source: Path) -> Path:
    require(source.is_dir(), f"source={source} must be a folder (netG file, DAMSM files)")
    found = sorted(
        {*source.glob("netG*.pth"), *source.glob("*AttnGAN*.pth")},
        key=lambda p: (_epoch(p), p.name),
    )
    require(bool(found), f"source={source}: no netG_epoch_<n>.pth or *AttnGAN2.pth in the folder")
    return found[-1]


def check_generator(state: dict[str, Tensor], task: Any) -> None:
    """One line naming the first structural difference of the release's G."""
    g = task.generator
    own = g.state_dict()
    require("h_net1.fc.0.weight" in state, "the source is not an AttnGAN G_NET state dict")
    require(
        "img_net1.img.0.weight" in state,
        "the source is an AttnGAN DCGAN-style generator (G_DCGAN); ganzoo has the AttnGAN2 G_NET",
    )
    stages = max(int(m[1]) for k in state if (m := re.match(r"^h_net(\d)\.", k)))
    require(
        stages == g.branch_num,
        f"source has {stages} stages ({64 << (stages - 1)}x{64 << (stages - 1)}); "
        f"model.generator.branch_num={g.branch_num}",
    )
    ngf = state["img_net1.img.0.weight"].shape[1]
    ours_ngf = own["to_images.0.0.weight"].shape[1]
    require(ngf == ours_ngf, f"source GF_DIM {ngf}; model.generator.gf_dim={ours_ngf}")
    if stages > 1:
        r = len({m[1] for k in state if (m := re.match(r"^h_net2\.residual\.(\d+)\.", k))})
        ours_r = len(g.next_stages[0].residual)
        require(r == ours_r, f"source R_NUM {r}; model.generator.r_num={ours_r}")
    ca = state["ca_net.fc.weight"].shape
    ours_ca = own["ca_net.fc.weight"].shape
    require(
        ca[1] == ours_ca[1],
        f"source TEXT.EMBEDDING_DIM {ca[1]}; model.damsm.text_encoder.embedding_dim={ours_ca[1]}",
    )
    require(
        ca[0] == ours_ca[0],
        f"source CONDITION_DIM {ca[0] // 4}; model.generator.c_dim={ours_ca[0] // 4}",
    )
    z = state["h_net1.fc.0.weight"].shape[1] - ca[0] // 4
    require(z == g.z_dim, f"source Z_DIM {z}; model.generator.z_dim={g.z_dim}")


def convert(source: Path, task: Any) -> Converted:
    """model=attngan: G (and EMA G) from the netG file, the per-stage D's when present, the
    DAMSM encoders it was trained with."""
    g_file = _generator_file(source)
    g_state = load_torch(g_file)
    require(isinstance(g_state, dict), f"{g_file}: not a state dict")
    check_generator(g_state, task)
    g_own = task.generator.state_dict()
    generator = with_batch_counters({generator_key(k): v for k, v in g_state.items()}, g_own)
    state = {f"generator.{k}": v for k, v in generator.items()}
    files = [g_file]
    notes = [
        f"{g_file.name} holds the official 0.999 average of G (with G's BatchNorm statistics): "
        "it is both generator and generator_ema"
    ]
    absent: list[str] = []
    stages = task.discriminator.stage_list()
    d_files = [source / f"netD{i}.pth" for i in range(len(stages))]
    if all(p.is_file() for p in d_files):
        for i, (path, d) in enumerate(zip(d_files, stages, strict=True)):
            d_state = load_torch(path)
            require(isinstance(d_state, dict), f"{path}: not a state dict")
            ndf = d_state.get("img_code_s16.0.weight")
            ours = d.state_dict()["encode.0.weight"].shape[0]
            require(
                ndf is not None and ndf.shape[0] == ours,
                f"{path}: source DF_DIM {None if ndf is None else ndf.shape[0]}; "
                f"model.discriminator.df_dim={ours}",
            )
            mapped = {discriminator_key(k, i): v for k, v in d_state.items()}
            mapped = with_batch_counters(mapped, d.state_dict())
            state.update({f"discriminator.stages.{i}.{k}": v for k, v in mapped.items()})
            files.append(path)
    else:
        absent.append("discriminator.")
        notes.append(
            f"no {', '.join(p.name for p in d_files)}: the discriminators keep their initialisation"
        )
    damsm = task.damsm
    enc_state, enc_files, enc_absent, enc_notes = encoders(
        source, damsm.text_encoder, damsm.image_encoder, task, "damsm."
    )
    state.update(enc_state)
    files += enc_files
    absent += enc_absent
    notes += enc_notes
    return Converted(state=state, sources=files, absent=tuple(absent), notes=notes)
