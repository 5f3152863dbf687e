"""Golden fixtures of ajbrock/BigGAN-PyTorch for tests/test_official_biggan.py and
tests/test_parity_biggan.py (issues 13 and 14).

    python experiments/parity/biggan.py /path/to/BigGAN-PyTorch [--out tests/golden/biggan]

Runs the official code (imported from the checkout given; nothing of it is copied here) on the
CPU at a small configuration of the paper's structure: 32x32, G_ch = D_ch = 2, dim_z 32 (hier:
4 chunks of 8), shared_dim 16, 12 classes, self-attention in G (block at 16) and D (its 32 arch
marks every block 16), SN_eps 1e-6, BN_eps 1e-5, the paper recipe (2 D steps per G step,
G_ortho 1e-4, G lr 1e-4, D lr 4e-4, betas (0, 0.999), adam_eps 1e-6), batch 4, and an EMA
with decay 0.9 starting at G iteration 2 (so both the copy and the decay run). It writes:

  init/G.pth, init/D.pth   the official random init, saved as utils.save_weights saves them
        (G_ema starts as a copy of G: utils.ema's constructor)
  trained/G.pth, G_ema.pth, D.pth, state_dict.pth   after 3 official training iterations
        (train_fns.py GAN_training_function, called as train.py calls it: state_dict['itr'] += 1
        first): the parameters and buffers the parity test must reach (state_dict.pth pickles
        the config, nn.ReLU objects included, as the official one)
  accumulate/G.pth, D.pth   the same init and images trained with the official gradient
        accumulation instead (1 D step of 2 accumulated micro-batches, 2 accumulated G
        micro-batches per iteration: launch_BigGAN_bs256x8.sh's scheme at 2 instead of 8)
  tfhub/biggan-32.pth  trained G_ema in the format TFHub/converter.py writes (no sv0 entries)
  forward.pt         fixed z, y, images; official outputs of the trained files (G, G_ema in
        eval mode, G in training mode, D logits in eval mode; the TF-Hub-format G built with
        the converter's BN_eps = SN_eps = 1e-4, in eval mode)
  train.pt           the real batches (x, y) of each iteration, every z_ / y_ draw the official
        loop consumed, in order, and the losses (for the accumulation run too)
  README.md          repository, commit, configuration, command
"""

from __future__ import annotations

import argparse
import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

SEED = 0
CONFIG: dict[str, Any] = {
    "resolution": 32,
    "n_classes": 12,
    "G_ch": 2,
    "D_ch": 2,
    "dim_z": 32,
    "shared_dim": 16,
    "hier": True,
    "G_shared": True,
    "G_attn": "16",
    "D_attn": "16",
    "SN_eps": 1e-6,
    "BN_eps": 1e-5,
    "num_G_SVs": 1,
    "num_G_SV_itrs": 1,
    "num_D_SVs": 1,
    "num_D_SV_itrs": 1,
    "G_lr": 1e-4,
    "D_lr": 4e-4,
    "G_B1": 0.0,
    "G_B2": 0.999,
    "D_B1": 0.0,
    "D_B2": 0.999,
    "adam_eps": 1e-6,
    "G_init": "ortho",
    "D_init": "ortho",
    "G_activation": nn.ReLU(inplace=False),
    "D_activation": nn.ReLU(inplace=False),
    "batch_size": 4,
    "G_batch_size": 0,
    "num_D_steps": 2,
    "num_D_accumulations": 1,
    "num_G_accumulations": 1,
    "toggle_grads": True,
    "split_D": False,
    "D_ortho": 0.0,
    "G_ortho": 1e-4,
    "ema": True,
    "ema_decay": 0.9,
    "ema_start": 2,
    "cross_replica": False,
    "mybn": False,
    "norm_style": "bn",
}
ITERATIONS = 3
ACCUMULATE = {"num_D_steps": 1, "num_D_accumulations": 2, "num_G_accumulations": 2}


def save_weights(
    root: Path, G: nn.Module, D: nn.Module, G_ema: nn.Module | None, state: dict | None
) -> None:
    """The files utils.save_weights writes (without the optimiser states)."""
    root.mkdir(parents=True, exist_ok=True)
    torch.save(G.state_dict(), root / "G.pth")
    torch.save(D.state_dict(), root / "D.pth")
    if G_ema is not None:
        torch.save(G_ema.state_dict(), root / "G_ema.pth")
    if state is not None:
        torch.save(state, root / "state_dict.pth")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("official", type=Path, help="BigGAN-PyTorch checkout")
    parser.add_argument("--out", type=Path, default=Path("tests/golden/biggan"))
    parser.add_argument("--commit", help="the checkout's commit (default: git rev-parse HEAD)")
    args = parser.parse_args()
    sys.path.insert(0, str(args.official.resolve()))
    import BigGAN  # noqa: PLC0415 -- the official code, from the checkout
    import train_fns  # noqa: PLC0415
    import utils  # noqa: PLC0415

    torch.set_num_threads(1)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)

    def run(config: dict[str, Any], batches: list[dict[str, torch.Tensor]] | None) -> tuple:
        """train.py's set-up and ITERATIONS calls of GAN_training_function, recording every z_ /
        y_ draw; new random batches when `batches` is None. (G, D, G_ema, state, batches,
        draws, metrics)"""
        utils.seed_rng(SEED)  # train.py: seed, G, D, G_ema (skip_init, no_optim), ema, G_D
        G = BigGAN.Generator(**config)
        D = BigGAN.Discriminator(**config)
        G_ema = BigGAN.Generator(**{**config, "skip_init": True, "no_optim": True})
        init = {"G": copy.deepcopy(G.state_dict()), "D": copy.deepcopy(D.state_dict())}
        ema = utils.ema(G, G_ema, config["ema_decay"], config["ema_start"])
        GD = BigGAN.G_D(G, D)
        state = {"itr": 0, "epoch": 0, "save_num": 0, "save_best_num": 0, "best_IS": 0,
                 "best_FID": 999999, "config": config}  # fmt: skip
        G_batch_size = max(config["G_batch_size"], config["batch_size"])
        z_, y_ = utils.prepare_z_y(G_batch_size, G.dim_z, config["n_classes"], device="cpu")
        draws: list[dict[str, torch.Tensor]] = []
        sample_z, sample_y = z_.sample_, y_.sample_

        def record_z() -> None:
            sample_z()
            draws.append({"z": z_.detach().clone().as_subclass(torch.Tensor)})

        def record_y() -> None:
            sample_y()
            draws[-1]["y"] = y_.detach().clone().as_subclass(torch.Tensor)

        z_.sample_, y_.sample_ = record_z, record_y
        train = train_fns.GAN_training_function(G, D, GD, z_, y_, ema, state, config)
        gen = torch.Generator().manual_seed(1234)
        d_batch = config["batch_size"] * config["num_D_steps"] * config["num_D_accumulations"]
        batches = [] if batches is None else batches
        metrics = []
        for i in range(ITERATIONS):
            if len(batches) <= i:
                x = torch.rand(d_batch, 3, 32, 32, generator=gen) * 2 - 1
                y = torch.randint(0, config["n_classes"], (d_batch,), generator=gen)
                batches.append({"x": x, "y": y})
            assert len(batches[i]["x"]) == d_batch
            state["itr"] += 1  # train.py, before train(x, y)
            G.train(), D.train(), G_ema.train()
            metrics.append(train(batches[i]["x"], batches[i]["y"]))
        return G, D, G_ema, state, init, batches, draws, metrics

    G, D, G_ema, state_dict, init, batches, draws, metrics = run(dict(CONFIG), None)
    (out / "init").mkdir(exist_ok=True)
    torch.save(init["G"], out / "init" / "G.pth")  # G_ema starts as a copy of G
    torch.save(init["D"], out / "init" / "D.pth")
    save_weights(out / "trained", G, D, G_ema, state_dict)
    # the paper's gradient accumulation (bs256x8): 1 D step of 2 accumulated micro-batches and
    # 2 accumulated G micro-batches per iteration, on the same images, from the same init
    accumulate = {**CONFIG, **ACCUMULATE}
    Ga, Da, _, _, init_a, _, draws_a, metrics_a = run(accumulate, batches)
    assert all(torch.equal(init_a["G"][k], v) for k, v in init["G"].items())  # same init
    (out / "accumulate").mkdir(exist_ok=True)
    torch.save(Ga.state_dict(), out / "accumulate" / "G.pth")
    torch.save(Da.state_dict(), out / "accumulate" / "D.pth")
    config = dict(CONFIG)

    torch.save(
        {
            "config": {k: v for k, v in config.items() if not isinstance(v, nn.Module)},
            "iterations": ITERATIONS,
            "batches": batches,
            "draws": draws,  # in order: D step 1, D step 2, G step of each iteration
            "metrics": metrics,  # the losses train() returned, per iteration
            "accumulate": {"config": ACCUMULATE, "draws": draws_a, "metrics": metrics_a},
        },
        out / "train.pt",
    )

    # forward.pt: outputs of the trained files
    gen = torch.Generator().manual_seed(99)
    n = 2
    z = torch.randn(n, G.dim_z, generator=gen)
    y = torch.randint(0, config["n_classes"], (n,), generator=gen)
    images = torch.rand(n, 3, 32, 32, generator=gen) * 2 - 1
    with torch.no_grad():
        g_train = copy.deepcopy(G).train()
        G.eval(), G_ema.eval(), D.eval()
        outputs = {
            "G_eval": G(z, G.shared(y)),
            "G_ema_eval": G_ema(z, G_ema.shared(y)),
            "G_train": g_train(z, g_train.shared(y)),
            "D_eval": D(images, y),
        }
        # TFHub/converter.py: a G_ema state dict without sv0, built with BN_eps = SN_eps = 1e-4
        tf_state = {k: v for k, v in G_ema.state_dict().items() if not k.endswith(".sv0")}
        (out / "tfhub").mkdir(exist_ok=True)
        torch.save(tf_state, out / "tfhub" / "biggan-32.pth")
        tf_config = {**config, "BN_eps": 1e-4, "SN_eps": 1e-4, "skip_init": True,
                     "no_optim": True}  # fmt: skip
        G_tf = BigGAN.Generator(**tf_config)
        G_tf.load_state_dict(tf_state, strict=False)  # as the converter: sv0 entries missing
        G_tf.eval()
        outputs["G_tfhub_eval"] = G_tf(z, G_tf.shared(y))
    torch.save({"z": z, "y": y, "images": images, "outputs": outputs}, out / "forward.pt")

    git = ["git", "-C", str(args.official), "rev-parse", "HEAD"]
    commit = args.commit or subprocess.run(git, capture_output=True, text=True).stdout.strip()
    shown = {k: (type(v).__name__ if isinstance(v, nn.Module) else v) for k, v in config.items()}
    (out / "README.md").write_text(
        README.format(
            commit=commit, config=shown, iterations=ITERATIONS, seed=SEED, accumulate=ACCUMULATE
        )
    )
    print("wrote", out, {k: float(v) for k, v in metrics[-1].items()})


README = """# Golden fixtures: BigGAN (ajbrock/BigGAN-PyTorch)

Made by `experiments/parity/biggan.py` from the official code, on the CPU (torch {{torch}}):

    python experiments/parity/biggan.py /path/to/BigGAN-PyTorch --out tests/golden/biggan

- repository: https://github.com/ajbrock/BigGAN-PyTorch, commit {commit}
- patch to run it without HDF5: datasets.py's `import h5py` made optional (nothing else)
- seed {seed} (utils.seed_rng), then as train.py: G, D, G_ema (skip_init), utils.ema, G_D,
  utils.prepare_z_y; {iterations} iterations of train_fns.GAN_training_function with
  state_dict['itr'] incremented before each, on random batches (x uniform in [-1, 1], classes
  uniform), each of batch_size x num_D_steps images
- config: {config}

Files: `init/` (G.pth, D.pth; G_ema starts as G) and `trained/` (G.pth, G_ema.pth, D.pth,
state_dict.pth as utils.save_weights writes them, after the {iterations} iterations: the target of
the parity test), `tfhub/biggan-32.pth` (trained G_ema without sv0 entries, the TFHub/converter.py
format; its golden output uses the converter's BN_eps = SN_eps = 1e-4), `accumulate/` (G.pth,
D.pth after 3 iterations with {accumulate}, from the same init and images), `forward.pt` (fixed
inputs and the official outputs of the trained files), `train.pt` (batches, every z/y draw in
the order consumed, the losses).
""".replace("{{torch}}", torch.__version__)


if __name__ == "__main__":
    main()
