"""ganzoo's training iteration beside the official code's, side by side on this machine.

    python experiments/benchmarks/official_ratio.py --official-root /work/scratch
    python experiments/benchmarks/official_ratio.py --models stylegan2 --variants eager,compile
    GANZOO_OFFICIAL_STYLEGAN2=/path/to/stylegan2-ada-pytorch python experiments/benchmarks/...

For each model, one child process builds ganzoo's run (the real training entry: compose +
ganzoo.cli.build.train, data=synthetic, logger=none, no checkpoint / sample / metric
callbacks) and, beside it, the official networks, losses and optimisers at the same small
configuration (SMALL below), imported from the official checkout. The two alternate
iteration by iteration: after each ganzoo iteration (timed from Lightning's batch start to its
end, so ganzoo's loop overhead counts) the official code runs the same phases once (timed around
its own loop body; its data are ready-made tensors). Medians over the timed iterations after
`--warmup` that ran the same phases (e.g. StyleGAN2's G+D, and G+G_reg+D+D_reg with both lazy
regularisers), and the mean over all of them; ratio = ganzoo / official (below 1 = ganzoo
faster). The two sides are initialised independently at the same configuration (the cost of an
iteration does not depend on the weights' values). One intra-op thread on both
sides (OMP/MKL and torch), so other jobs on a shared machine disturb less; the load average
before and after each model is recorded with the numbers.

The official checkouts are not part of ganzoo: give their paths with --official-root (a folder
holding the repositories under their GitHub names, e.g. /work/scratch/stylegan2-ada-pytorch)
or GANZOO_OFFICIAL_<MODEL>=<path>; a model whose checkout is absent is skipped with a message.
Variants (--variants): eager (default), channels_last (trainer.channels_last=true), compile
(trainer.compile=true); each is its own row against the same official code.

Results are appended to experiments/benchmarks/results/official_ratio.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "experiments/benchmarks/results/official_ratio.md"

# The official repositories by model: the folder name under --official-root (GitHub's name).
REPOS = {
    "stylegan2": "stylegan2-ada-pytorch",  # NVlabs/stylegan2-ada-pytorch
    "spade": "SPADE",  # NVlabs/SPADE
    "pix2pixhd": "pix2pixHD",  # NVIDIA/pix2pixHD
    "stargan": "stargan",  # yunjey/stargan
    "biggan": "BigGAN-PyTorch",  # ajbrock/BigGAN-PyTorch
    "attngan": "AttnGAN",  # taoxugit/AttnGAN
}

# The same small configuration on both sides: ganzoo overrides (the official side reads its
# numbers from the composed config).
SMALL: dict[str, list[str]] = {
    "stylegan2": [
        "data.resolution=32",
        "data.batch_size=8",
        "model.generator.z_dim=64",
        "model.generator.w_dim=64",
        "model.generator.mapping_layers=2",
        "model.generator.channel_base=2048",
        "model.generator.channel_max=64",
        "model.discriminator.mbstd_group_size=4",
        "model.augment=none",  # config F (model_data/stylegan2_synthetic turns DiffAugment on)
        "model.r1_interval=4",  # so that every 4th iteration has all four phases
        "model.pl_interval=4",
    ],
    "spade": [
        "data.resolution=64",
        "data.batch_size=4",
        "model.generator.ngf=16",
        "model.generator.spade_hidden=128",  # the official's fixed width (the preset: 32)
        "model.discriminator.ndf=16",
        "model.lambda_vgg=0",  # VGG19 weights are a download; off on both sides
    ],
    "pix2pixhd": [
        "data.resolution=64",
        "data.batch_size=2",
        "model.netG=global",
        "model.generator.ngf=16",
        "model.generator.n_downsample_global=3",
        "model.generator.n_blocks_global=3",
        "model.discriminator.ndf=16",
        "model.discriminator.num_scales=2",
        "model.lambda_vgg=0",  # VGG19 weights are a download; off on both sides
    ],
    "biggan": [
        "optim=biggan_code",  # one D step per G step, no ortho reg (the official script)
        "data.resolution=32",
        "data.batch_size=8",
        "model.generator.ch=16",
        "model.generator.dim_z=32",
        "model.generator.shared_dim=32",
        "model.generator.attention=[16]",
        "model.discriminator.ch=16",
        "model.discriminator.attention=[16]",
    ],
    "attngan": [  # model_data/attngan_synthetic: 2 stages (64, 128), gf_dim 8, df_dim 16
        "data.resolution=128",
        "data.batch_size=4",
        "model.allow_untrained_damsm=true",  # random-init DAMSM encoders on both sides
        "model.damsm.image_encoder.image_size=299",  # the official CNN_ENCODER's fixed input
        "model.damsm.image_encoder.train_backbone=false",
    ],
    "stargan": [
        "data.resolution=64",
        "data.batch_size=8",
        "model.generator.conv_dim=32",
        "model.generator.repeat_num=3",
        "model.discriminator.conv_dim=32",
        "model.discriminator.repeat_num=4",
    ],
}

VARIANTS = {
    "eager": [],
    "channels_last": ["trainer.channels_last=true"],
    "compile": ["trainer.compile=true"],
}


def official_path(model: str, root: Path | None) -> Path | None:
    """The official checkout of `model`: GANZOO_OFFICIAL_<MODEL>, else <root>/<repo name>."""
    env = os.environ.get(f"GANZOO_OFFICIAL_{model.upper()}")
    if env:
        return Path(env) if Path(env).is_dir() else None
    if root is None:
        return None
    path = root / REPOS[model]
    return path if path.is_dir() else None


# ----- the official side, one builder per model ----------------------------------------------
def official_stylegan2(root: Path, cfg: Any) -> Callable[[int, list[str]], None]:
    """One iteration of stylegan2-ada-pytorch's training_loop.py body (phases due at the
    iteration, then the G_ema update) at cfg's configuration, with ready-made data."""
    import copy

    import torch

    sys.path.insert(0, str(root))
    from training import loss as official_loss  # type: ignore[import-not-found]
    from training import networks  # type: ignore[import-not-found]

    m, gen, dis = cfg.model, cfg.model.generator, cfg.model.discriminator
    res, batch = int(cfg.data.resolution), int(cfg.data.batch_size)
    common = dict(c_dim=0, img_resolution=res, img_channels=3)
    block = dict(
        channel_base=int(gen.channel_base),
        channel_max=int(gen.channel_max),
        num_fp16_res=0,  # float32 on the CPU on both sides
        conv_clamp=gen.conv_clamp,
    )
    g = networks.Generator(
        z_dim=int(gen.z_dim),
        w_dim=int(gen.w_dim),
        mapping_kwargs=dict(num_layers=int(gen.mapping_layers)),
        synthesis_kwargs=block,
        **common,
    )
    d = networks.Discriminator(
        **block,
        epilogue_kwargs=dict(mbstd_group_size=int(dis.mbstd_group_size)),
        **common,
    )
    g.train().requires_grad_(False)
    d.train().requires_grad_(False)
    g_ema = copy.deepcopy(g).eval()
    loss = official_loss.StyleGAN2Loss(
        "cpu",
        g.mapping,
        g.synthesis,
        d,
        style_mixing_prob=float(m.style_mixing_prob),
        r1_gamma=float(m.r1_gamma),
        pl_batch_shrink=int(m.pl_batch_shrink),
        pl_decay=float(m.pl_decay),
        pl_weight=float(m.pl_weight),
    )
    phases = []
    for name, module, interval in (
        ("G", g, int(m.pl_interval)),
        ("D", d, int(m.r1_interval)),
    ):
        ratio = interval / (interval + 1)
        opt = torch.optim.Adam(
            module.parameters(), lr=0.002 * ratio, betas=(0.0, 0.99**ratio), eps=1e-8
        )
        phases += [(name + "main", module, opt, 1), (name + "reg", module, opt, interval)]
    real = torch.rand(batch, 3, res, res) * 2 - 1
    c = torch.zeros(batch, 0)
    ema_beta = 0.5 ** (batch / (float(m.ema.half_life_kimg) * 1000))

    def iteration(it: int, due: list[str]) -> None:
        zs = torch.randn(len(phases), batch, g.z_dim)
        for (name, module, opt, interval), z in zip(phases, zs, strict=True):
            if it % interval != 0:
                continue
            opt.zero_grad(set_to_none=True)
            module.requires_grad_(True)
            loss.accumulate_gradients(name, real, c, z, c, sync=True, gain=interval)
            module.requires_grad_(False)
            for p in module.parameters():
                if p.grad is not None:
                    torch.nan_to_num(p.grad, nan=0, posinf=1e5, neginf=-1e5, out=p.grad)
            opt.step()
        with torch.no_grad():
            for p_ema, p in zip(g_ema.parameters(), g.parameters(), strict=True):
                p_ema.copy_(p.lerp(p_ema, ema_beta))
            for b_ema, b in zip(g_ema.buffers(), g.buffers(), strict=True):
                b_ema.copy_(b)

    iteration.networks = {"G": g, "D": d}  # type: ignore[attr-defined]
    return iteration


def official_stargan(root: Path, cfg: Any) -> Callable[[int, list[str]], None]:
    """One iteration of yunjey/stargan's Solver.train body (CelebA branch: D step with WGAN-GP
    and BCE classification; every n_critic-th iteration the G step), with ready-made data. Its
    G step runs where ganzoo's does (ganzoo counts n_critic as the official)."""
    import torch

    sys.path.insert(0, str(root))
    from model import Discriminator, Generator  # type: ignore[import-not-found]
    from solver import Solver  # type: ignore[import-not-found]

    m, res, batch = cfg.model, int(cfg.data.resolution), int(cfg.data.batch_size)
    c_dim = int(m.c_dim)
    g = Generator(int(m.generator.conv_dim), c_dim, int(m.generator.repeat_num))
    d = Discriminator(res, int(m.discriminator.conv_dim), c_dim, int(m.discriminator.repeat_num))
    g_opt = torch.optim.Adam(g.parameters(), 1e-4, [0.5, 0.999])
    d_opt = torch.optim.Adam(d.parameters(), 1e-4, [0.5, 0.999])
    solver = type("SolverState", (), {"device": torch.device("cpu")})()  # what its methods read
    x_real = torch.rand(batch, 3, res, res) * 2 - 1
    label_org = torch.randint(0, 2, (batch, c_dim)).float()
    lambda_cls, lambda_rec, lambda_gp = float(m.lambda_cls), float(m.lambda_rec), float(m.lambda_gp)

    def cls_loss(logit: Any, target: Any) -> Any:
        return Solver.classification_loss(solver, logit, target, "CelebA")

    def iteration(it: int, due: list[str]) -> None:
        label_trg = label_org[torch.randperm(batch)]
        c_org, c_trg = label_org.clone(), label_trg.clone()
        out_src, out_cls = d(x_real)
        d_loss_real = -torch.mean(out_src)
        d_loss_cls = cls_loss(out_cls, label_org)
        x_fake = g(x_real, c_trg)
        out_src, out_cls = d(x_fake.detach())
        d_loss_fake = torch.mean(out_src)
        alpha = torch.rand(batch, 1, 1, 1)
        x_hat = (alpha * x_real.data + (1 - alpha) * x_fake.data).requires_grad_(True)
        out_src, _ = d(x_hat)
        d_loss_gp = Solver.gradient_penalty(solver, out_src, x_hat)
        d_loss = d_loss_real + d_loss_fake + lambda_cls * d_loss_cls + lambda_gp * d_loss_gp
        g_opt.zero_grad()
        d_opt.zero_grad()
        d_loss.backward()
        d_opt.step()
        _ = {k: v.item() for k, v in [("r", d_loss_real), ("f", d_loss_fake), ("c", d_loss_cls)]}
        if "G" not in due:
            return
        x_fake = g(x_real, c_trg)
        out_src, out_cls = d(x_fake)
        g_loss_fake = -torch.mean(out_src)
        g_loss_cls = cls_loss(out_cls, label_trg)
        x_reconst = g(x_fake, c_org)
        g_loss_rec = torch.mean(torch.abs(x_real - x_reconst))
        g_loss = g_loss_fake + lambda_rec * g_loss_rec + lambda_cls * g_loss_cls
        g_opt.zero_grad()
        d_opt.zero_grad()
        g_loss.backward()
        g_opt.step()

    iteration.networks = {"G": g, "D": d}  # type: ignore[attr-defined]
    return iteration


def official_spade(root: Path, cfg: Any) -> Callable[[int, list[str]], None]:
    """One iteration of NVlabs/SPADE's train.py: Pix2PixTrainer.run_generator_one_step then
    run_discriminator_one_step (its own methods), options from its parser, on the CPU."""
    import tempfile

    import torch

    sys.path.insert(0, str(root))
    sys.modules.setdefault("dill", types.ModuleType("dill"))  # util.py's pickling, unused here
    from options.train_options import TrainOptions  # type: ignore[import-not-found]
    from trainers.pix2pix_trainer import Pix2PixTrainer  # type: ignore[import-not-found]

    m, res, batch = cfg.model, int(cfg.data.resolution), int(cfg.data.batch_size)
    argv = ["train.py", "--dataset_mode", "cityscapes", "--gpu_ids", "-1", "--name", "bench"]
    argv += ["--checkpoints_dir", tempfile.mkdtemp(), "--batchSize", str(batch)]
    argv += ["--label_nc", str(int(m.label_nc)), "--crop_size", str(res), "--load_size", str(res)]
    argv += ["--aspect_ratio", "1.0", "--num_upsampling_layers", "normal", "--no_vgg_loss"]
    argv += ["--ngf", str(int(m.generator.ngf)), "--ndf", str(int(m.discriminator.ndf))]
    argv += [] if bool(m.use_instance_edges) else ["--no_instance"]
    argv += ["--contain_dontcare_label"] if bool(m.contain_dontcare_label) else []
    saved, sys.argv = sys.argv, argv
    try:
        opt = TrainOptions().parse()
    finally:
        sys.argv = saved
    trainer = Pix2PixTrainer(opt)
    label = torch.randint(0, int(m.label_nc), (batch, 1, res, res)).float()
    instance = torch.randint(0, 6, (batch, 1, res, res)).float()
    image = torch.rand(batch, 3, res, res) * 2 - 1

    def iteration(it: int, due: list[str]) -> None:
        data = {"label": label.clone(), "instance": instance, "image": image, "path": []}
        trainer.run_generator_one_step(data)
        trainer.run_discriminator_one_step(data)

    iteration.networks = {"G": trainer.pix2pix_model.netG, "D": trainer.pix2pix_model.netD}  # type: ignore[attr-defined]
    return iteration


def official_pix2pixhd(root: Path, cfg: Any) -> Callable[[int, list[str]], None]:
    """One iteration of NVIDIA/pix2pixHD's train.py body: the model's forward (G and D losses
    from one generated image), then the G step and the D step. Needs a CPU copy of the
    checkout (its `.cuda()` calls in pix2pixHD_model.py removed; nothing else changed)."""
    import tempfile

    import torch

    sys.path.insert(0, str(root))
    from models.models import create_model  # type: ignore[import-not-found]
    from options.train_options import TrainOptions  # type: ignore[import-not-found]

    m, res, batch = cfg.model, int(cfg.data.resolution), int(cfg.data.batch_size)
    g, d = m.generator, m.discriminator
    argv = ["train.py", "--gpu_ids", "-1", "--name", "bench", "--checkpoints_dir"]
    argv += [tempfile.mkdtemp(), "--batchSize", str(batch), "--label_nc", str(int(m.label_nc))]
    argv += ["--loadSize", str(res), "--fineSize", str(res), "--netG", str(m.netG)]
    argv += ["--ngf", str(int(g.ngf)), "--n_downsample_global", str(int(g.n_downsample_global))]
    argv += ["--n_blocks_global", str(int(g.n_blocks_global)), "--ndf", str(int(d.ndf))]
    argv += ["--n_layers_D", str(int(d.n_layers) - 1), "--num_D", str(int(d.num_scales))]
    argv += ["--no_vgg_loss"] + ([] if bool(m.use_instance_edges) else ["--no_instance"])
    saved, sys.argv = sys.argv, argv
    try:
        opt = TrainOptions().parse()
    finally:
        sys.argv = saved
    model = create_model(opt)
    label = torch.randint(0, int(m.label_nc), (batch, 1, res, res)).float()
    instance = torch.randint(0, 6, (batch, 1, res, res)).float()
    image = torch.rand(batch, 3, res, res) * 2 - 1

    def iteration(it: int, due: list[str]) -> None:
        losses, _ = model(label, instance, image, torch.zeros(1), infer=False)
        losses = [torch.mean(x) if not isinstance(x, int) else x for x in losses]
        loss_dict = dict(zip(model.loss_names, losses, strict=True))
        loss_d = (loss_dict["D_fake"] + loss_dict["D_real"]) * 0.5
        loss_g = loss_dict["G_GAN"] + loss_dict.get("G_GAN_Feat", 0) + loss_dict.get("G_VGG", 0)
        model.optimizer_G.zero_grad()
        loss_g.backward()
        model.optimizer_G.step()
        model.optimizer_D.zero_grad()
        loss_d.backward()
        model.optimizer_D.step()

    iteration.networks = {"G": model.netG, "D": model.netD}  # type: ignore[attr-defined]
    return iteration


def official_biggan(root: Path, cfg: Any) -> Callable[[int, list[str]], None]:
    """One call of ajbrock/BigGAN-PyTorch's train_fns.GAN_training_function (its own function:
    D step, G step, EMA update) with the networks and options train.py builds from its parser's
    defaults and cfg's sizes (G_shared, hier, SN, ortho init, 1 D step as the launch scripts)."""
    import torch

    sys.path.insert(0, str(root))
    sys.modules.setdefault("h5py", types.ModuleType("h5py"))  # datasets.py's HDF5, unused here
    import BigGAN  # type: ignore[import-not-found]
    import train_fns  # type: ignore[import-not-found]
    import utils  # type: ignore[import-not-found]

    g_cfg, d_cfg = cfg.model.generator, cfg.model.discriminator
    res, batch, classes = int(cfg.data.resolution), int(cfg.data.batch_size), int(g_cfg.num_classes)
    config = vars(utils.prepare_parser().parse_args([]))

    def attn(resolutions: Any) -> str:
        return "_".join(str(int(r)) for r in resolutions) or "0"

    config.update(
        resolution=res, n_classes=classes, batch_size=batch, G_batch_size=batch,
        G_ch=int(g_cfg.ch), D_ch=int(d_cfg.ch), dim_z=int(g_cfg.dim_z),
        shared_dim=int(g_cfg.shared_dim), G_shared=True, hier=bool(g_cfg.hier),
        G_attn=attn(g_cfg.attention), D_attn=attn(d_cfg.attention),
        G_eval_mode=True, num_D_steps=1, G_ortho=0.0, ema=True, use_ema=True,
        ema_start=int(cfg.model.ema.start_iteration), BN_eps=float(g_cfg.bn_eps),
        SN_eps=float(g_cfg.sn_eps), G_lr=1e-4, D_lr=4e-4, G_B1=0.0, D_B1=0.0,
        G_activation=utils.activation_dict[config["G_nl"]],
        D_activation=utils.activation_dict[config["D_nl"]],
    )  # fmt: skip
    g = BigGAN.Generator(**config)
    d = BigGAN.Discriminator(**config)
    g_ema = BigGAN.Generator(**{**config, "skip_init": True, "no_optim": True})
    ema = utils.ema(g, g_ema, config["ema_decay"], config["ema_start"])
    gd = BigGAN.G_D(g, d)
    z_, y_ = utils.prepare_z_y(batch, g.dim_z, classes, device="cpu")
    state = {"itr": 0, "epoch": 0, "save_num": 0, "best_IS": 0, "best_FID": 999999}
    train = train_fns.GAN_training_function(g, d, gd, z_, y_, ema, state, config)
    x = torch.rand(batch, 3, res, res) * 2 - 1
    y = torch.randint(0, classes, (batch,))

    def iteration(it: int, due: list[str]) -> None:
        g.train()
        d.train()
        state["itr"] += 1
        train(x, y)

    iteration.networks = {"G": g, "D": d}  # type: ignore[attr-defined]
    return iteration


def official_attngan(root: Path, cfg: Any) -> Callable[[int, list[str]], None]:
    """One iteration of taoxugit/AttnGAN's condGANTrainer.train body (code/trainer.py: text
    encoder, G once, a D step per stage, the G step with the DAMSM words/sentence losses and KL,
    the 0.999 average of G) with its own networks, losses and weights_init, on ready-made data.
    The DAMSM encoders (RNN_ENCODER, CNN_ENCODER) keep their random init (the official loop
    reads pretrained ones only as weights); CNN_ENCODER's ImageNet Inception-v3 download is
    replaced by a random-init torchvision Inception state (nothing is downloaded). Needs the
    Python 3 copy of the checkout that experiments/parity/attngan.py uses."""
    import importlib.util

    import numpy as np
    import torch
    import torchvision

    parity_path = REPO / "experiments/parity/attngan.py"  # its stubs and cfg setter
    spec = importlib.util.spec_from_file_location("parity_attngan", parity_path)
    assert spec is not None and spec.loader is not None
    parity = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(parity)
    parity.stub_missing_modules()  # easydict etc. when absent (unused by these calls)
    sys.path.insert(0, str(root / "code"))
    from miscc.config import cfg as official_cfg  # type: ignore[import-not-found]

    m, g_cfg, d_cfg = cfg.model, cfg.model.generator, cfg.model.discriminator
    batch, words = int(cfg.data.batch_size), int(cfg.data.dataset.caption_length)
    n_words = int(cfg.data.vocab_size)
    parity.set_cfg(official_cfg, {
        "TREE.BRANCH_NUM": int(g_cfg.branch_num), "GAN.GF_DIM": int(g_cfg.gf_dim),
        "GAN.DF_DIM": int(d_cfg.df_dim), "GAN.Z_DIM": int(g_cfg.z_dim),
        "GAN.CONDITION_DIM": int(g_cfg.c_dim), "GAN.R_NUM": int(g_cfg.r_num),
        "TEXT.EMBEDDING_DIM": int(g_cfg.nef), "TEXT.WORDS_NUM": words,
        "TRAIN.BATCH_SIZE": batch, "TRAIN.FLAG": True, "CUDA": False,
        "TRAIN.SMOOTH.GAMMA1": float(m.gamma1), "TRAIN.SMOOTH.GAMMA2": float(m.gamma2),
        "TRAIN.SMOOTH.GAMMA3": float(m.gamma3), "TRAIN.SMOOTH.LAMBDA": float(m.lambda_damsm),
    })  # fmt: skip
    import model as official_model  # type: ignore[import-not-found]
    import trainer as official_trainer  # type: ignore[import-not-found]

    def no_download(url: str, *args: Any, **kwargs: Any) -> dict:
        return torchvision.models.inception_v3(weights=None, init_weights=False).state_dict()

    official_model.model_zoo.load_url = no_download
    nef = int(g_cfg.nef)
    text_encoder = official_model.RNN_ENCODER(n_words, nhidden=nef)
    image_encoder = official_model.CNN_ENCODER(nef)
    for encoder in (text_encoder, image_encoder):
        encoder.requires_grad_(False)
        encoder.eval()
    net_g = official_model.G_NET()
    stages = [official_model.D_NET64, official_model.D_NET128, official_model.D_NET256]
    nets_d = [stages[i]() for i in range(int(g_cfg.branch_num))]
    for net in (net_g, *nets_d):
        net.apply(official_trainer.weights_init)
    avg_param_g = official_trainer.copy_G_params(net_g)
    trainer = official_trainer.condGANTrainer.__new__(official_trainer.condGANTrainer)
    trainer.batch_size = batch
    optimizer_g, optimizers_d = trainer.define_optimizers(net_g, nets_d)
    real_labels, fake_labels, match_labels = trainer.prepare_labels()
    noise = torch.FloatTensor(batch, int(g_cfg.z_dim))
    sizes = [64 * 2**i for i in range(int(g_cfg.branch_num))]
    imgs = [torch.rand(batch, 3, s, s) * 2 - 1 for s in sizes]
    lengths = torch.sort(torch.randint(2, words + 1, (batch,)), descending=True).values
    lengths[0] = words
    captions = torch.zeros(batch, words, dtype=torch.long)
    for i, n in enumerate(lengths.tolist()):
        captions[i, :n] = torch.randint(1, n_words, (n,))
    class_ids = np.arange(batch) % max(2, batch // 2)  # some shared classes (masked)

    def iteration(it: int, due: list[str]) -> None:
        hidden = text_encoder.init_hidden(batch)
        words_embs, sent_emb = text_encoder(captions, lengths, hidden)
        words_embs, sent_emb = words_embs.detach(), sent_emb.detach()
        mask = captions == 0
        num_words = words_embs.size(2)
        if mask.size(1) > num_words:
            mask = mask[:, :num_words]
        noise.data.normal_(0, 1)
        fake_imgs, _, mu, logvar = net_g(noise, sent_emb, words_embs, mask)
        for i in range(len(nets_d)):
            nets_d[i].zero_grad()
            err_d = official_trainer.discriminator_loss(
                nets_d[i], imgs[i], fake_imgs[i], sent_emb, real_labels, fake_labels
            )
            err_d.backward()
            optimizers_d[i].step()
            _ = err_d.item()
        net_g.zero_grad()
        err_g, _ = official_trainer.generator_loss(
            nets_d, image_encoder, fake_imgs, real_labels, words_embs, sent_emb,
            match_labels, lengths, class_ids,
        )  # fmt: skip
        kl = official_trainer.KL_loss(mu, logvar)
        err_g = err_g + kl
        _ = kl.item()
        err_g.backward()
        optimizer_g.step()
        for p, avg_p in zip(net_g.parameters(), avg_param_g, strict=True):
            avg_p.mul_(0.999).add_(p.data, alpha=0.001)  # the official add_(0.001, p.data)

    params_d = [p for d in nets_d for p in d.parameters()]
    iteration.networks = {"G": net_g, "D": torch.nn.ParameterList(params_d)}  # type: ignore[attr-defined]
    return iteration


OFFICIAL: dict[str, Callable[[Path, Any], Callable[[int, list[str]], None]]] = {
    "stylegan2": official_stylegan2,
    "stargan": official_stargan,
    "spade": official_spade,
    "pix2pixhd": official_pix2pixhd,
    "biggan": official_biggan,
    "attngan": official_attngan,
}


# ----- one model in a child process -----------------------------------------------------------
def measure(model: str, official: Path, variant: str, iterations: int, warmup: int) -> dict:
    """Alternate ganzoo and official iterations; per-iteration times (ms) of both."""
    import pytorch_lightning as pl
    import torch

    torch.set_num_threads(1)
    sys.path.insert(0, str(REPO))
    from tests.conftest import compose_train

    from ganzoo.cli import build

    overrides = [f"model={model}", "logger=none", "trainer.enable_progress_bar=false"]
    overrides += ["trainer.enable_model_summary=false", "data.num_workers=0"]
    overrides += [*SMALL[model], *VARIANTS[variant], f"steps={warmup + iterations}"]
    rows: dict[str, Any] = {"ganzoo": [], "official": [], "phases": []}

    class Alternate(pl.Callback):
        def __init__(self, run_official: Callable[[int, list[str]], None]) -> None:
            self.run_official = run_official
            self.t0 = 0.0

        def on_train_batch_start(self, trainer: Any, task: Any, *args: Any) -> None:
            self.t0 = time.perf_counter()

        def on_train_batch_end(self, trainer: Any, task: Any, *args: Any) -> None:
            t_ganzoo = time.perf_counter() - self.t0
            it = int(task.iteration) - 1  # the iteration that just ran
            due = [p.name for p in task.phases() if it % p.every == p.offset % p.every]
            t0 = time.perf_counter()
            self.run_official(it, due)
            t_official = time.perf_counter() - t0
            if it == 0:  # the same networks on both sides: trainable parameters of G and D
                rows["params"] = {
                    "ganzoo": [_count(task.generator), _count(task.discriminator)],
                    "official": [_count(m) for m in self.run_official.networks.values()],  # type: ignore[attr-defined]
                }
            if it >= warmup:
                rows["ganzoo"].append(t_ganzoo * 1e3)
                rows["official"].append(t_official * 1e3)
                rows["phases"].append("+".join(due))

    with tempfile.TemporaryDirectory() as tmp:
        cfg = compose_train(Path(tmp), overrides)
        callback = Alternate(OFFICIAL[model](official, cfg))
        build.build_callbacks = lambda c: [callback]  # type: ignore[assignment]
        build.train(cfg)
    return {"model": model, "variant": variant, "config": SMALL[model], **rows}


def _count(module: Any) -> int:
    return sum(p.numel() for p in module.parameters())  # the official freezes between phases


def summarise(row: dict) -> list[dict]:
    """Medians per set of phases (iterations that ran the same phases), then the mean over all
    timed iterations (the schedule's average: lazy regularisers, n_critic)."""
    out = []
    for name in sorted(set(row["phases"]), key=len):
        idx = [i for i, p in enumerate(row["phases"]) if p == name]
        g = statistics.median(row["ganzoo"][i] for i in idx)
        o = statistics.median(row["official"][i] for i in idx)
        out.append({"phases": name, "n": len(idx), "ganzoo": g, "official": o, "ratio": g / o})
    g, o = statistics.mean(row["ganzoo"]), statistics.mean(row["official"])
    n = len(row["phases"])
    out.append({"phases": "mean of all", "n": n, "ganzoo": g, "official": o, "ratio": g / o})
    return out


def run_child(model: str, official: Path, variant: str, args: argparse.Namespace) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    command = [sys.executable, __file__, "--one", model, "--official", str(official)]
    command += ["--variant", variant, "--iterations", str(args.iterations)]
    command += ["--warmup", str(args.warmup)]
    load = os.getloadavg()[0]
    out = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode != 0 or not lines:
        err = (out.stderr.strip().splitlines() or ["no output"])[-1]
        return {"model": model, "variant": variant, "error": err.replace("|", "/")}
    row = json.loads(lines[-1])
    row["load"] = (load, os.getloadavg()[0])
    return row


def _commit() -> str:
    def git(*a: str) -> str:
        return subprocess.run(["git", *a], capture_output=True, text=True, cwd=REPO).stdout.strip()

    dirty = " (uncommitted changes)" if git("status", "--porcelain", "--untracked-files=no") else ""
    return (git("rev-parse", "--short", "HEAD") or "unknown") + dirty


def _official_commit(path: Path) -> str:
    out = subprocess.run(["git", "-C", str(path), "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True)  # fmt: skip
    if out.returncode == 0:
        return out.stdout.strip()
    marker = path / ".git-commit"  # an extracted tree: the commit written beside it, if any
    return marker.read_text().strip()[:7] if marker.is_file() else "unknown commit"


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def append(rows: list[dict], skipped: list[str], args: argparse.Namespace) -> None:
    import torch

    new = not RESULTS.exists()
    with RESULTS.open("a") as f:
        if new:
            f.write(
                "# ganzoo vs the official code: one training iteration, side by side\n\n"
                "Written by `experiments/benchmarks/official_ratio.py`; each run appends a "
                "section. Same small configuration on both sides, 1 thread, ganzoo and official "
                "iterations alternating in one process, medians over the timed iterations; "
                "ratio = ganzoo / official (< 1: ganzoo faster). ganzoo's time includes "
                "Lightning's loop around the training step; the official's is its loop body on "
                "ready-made data.\n"
            )
        f.write(
            f"\n## {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC — "
            f"{_cpu()}, {os.cpu_count()} CPUs, 1 thread; torch {torch.__version__}, "
            f"Python {platform.python_version()}; ganzoo commit {_commit()}\n\n"
            f"{args.warmup} warm-up + {args.iterations} timed iterations per model and variant\n\n"
            "| model | variant | phases | n | ganzoo (ms) | official (ms) | ratio | load avg "
            "before / after | G / D parameters (ganzoo; official) | configuration |\n"
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n"
        )
        for r in rows:
            if "error" in r:
                f.write(f"| {r['model']} | {r['variant']} | failed: {r['error']} ||||||||\n")
                continue
            load = f"{r['load'][0]:.1f} / {r['load'][1]:.1f}"
            ours, theirs = r["params"]["ganzoo"], r["params"]["official"]
            params = f"{ours[0]:,} / {ours[1]:,}; " + (
                "same" if ours == theirs else f"{theirs[0]:,} / {theirs[1]:,}"
            )
            config = " ".join(r["config"]) + f"; official {r['official_commit']}"
            for s in summarise(r):
                f.write(
                    f"| {r['model']} | {r['variant']} | {s['phases']} | {s['n']} "
                    f"| {s['ganzoo']:.1f} | {s['official']:.1f} | **{s['ratio']:.2f}** "
                    f"| {load} | {params} | {config} |\n"
                )
                config = load = params = ""
        for line in skipped:
            f.write(f"\n{line}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(REPOS), help="comma-separated")
    parser.add_argument("--variants", default="eager", help=f"of {', '.join(VARIANTS)}")
    parser.add_argument(
        "--official-root",
        type=Path,
        default=None,
        help="folder with the official repositories (their GitHub names)",
    )
    parser.add_argument("--iterations", type=int, default=24, help="timed iterations")
    parser.add_argument("--warmup", type=int, default=4)
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # child process
    parser.add_argument("--official", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--variant", default="eager", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        row = measure(args.one, args.official, args.variant, args.iterations, args.warmup)
        print(json.dumps(row), flush=True)
        return
    models, variants = args.models.split(","), args.variants.split(",")
    for bad, valid in (
        (set(models) - set(REPOS), REPOS),
        (set(variants) - set(VARIANTS), VARIANTS),
    ):
        if bad:
            parser.error(f"unknown {', '.join(sorted(bad))}; valid: {', '.join(valid)}")
    rows, skipped = [], []
    for model in models:
        path = official_path(model, args.official_root)
        if model not in OFFICIAL:
            skipped.append(f"{model}: skipped (no official driver in this benchmark yet)")
        elif path is None:
            skipped.append(
                f"{model}: skipped (official checkout absent: give --official-root with "
                f"{REPOS[model]}/ in it, or GANZOO_OFFICIAL_{model.upper()}=<path>)"
            )
        else:
            for variant in variants:
                row = run_child(model, path, variant, args)
                row["official_commit"] = _official_commit(path)
                rows.append(row)
                show = summarise(row) if "error" not in row else row["error"]
                print(model, variant, show, flush=True)
            continue
        print(skipped[-1], flush=True)
    append(rows, skipped, args)
    print(f"appended to {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    main()
