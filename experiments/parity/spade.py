"""Golden fixtures of NVlabs/SPADE for issues 13 and 14: tests/golden/spade/.

    OMP_NUM_THREADS=1 .venv/bin/python experiments/parity/spade.py /path/to/SPADE

runs the official code (a checkout of NVlabs/SPADE with vacancy/Synchronized-BatchNorm-PyTorch's
sync_batchnorm/ copied into models/networks/, and the two size patches of the README applied)
on the CPU at a small configuration of the paper's structure, and writes

    latest_net_G.pth, latest_net_D.pth, latest_net_E.pth   the official random-init networks,
                                                           saved by the official util.save_network
    forward.pt   fixed inputs and the official outputs (G in eval and train mode, D, E)
    train.pt     3 official training iterations (Pix2PixTrainer.run_generator_one_step, then
                 run_discriminator_one_step): the batches, the N(0, I) draws of the VAE's
                 reparameterisation, the losses, and G, D, E after the third

Batches are stored at 32x32 (uint8 images, int labels / instances) and upsampled x8 (nearest,
repeat_interleave) to the 256x256 the encoder needs: `expand` below, mirrored by the tests.
Nothing of the official code is copied into ganzoo; this script only imports it.
"""

from __future__ import annotations

import argparse
import copy
import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

OUT = Path(__file__).resolve().parents[2] / "tests" / "golden" / "spade"
NHIDDEN = 8  # SPADE's "hardcoded" 128 embedding channels (normalization.py), patched for size
ARGS = [  # the official train.py options of the golden configuration
    "--name", "golden", "--gpu_ids", "-1", "--dataset_mode", "custom",
    "--label_dir", "unused", "--image_dir", "unused",
    "--label_nc", "4", "--no_instance_false_placeholder",
    "--crop_size", "256", "--load_size", "256", "--aspect_ratio", "1.0",
    "--num_upsampling_layers", "more", "--ngf", "1", "--ndf", "4", "--n_layers_D", "4",
    "--num_D", "2", "--use_vae", "--z_dim", "16", "--no_vgg_loss", "--batchSize", "2",
    "--norm_G", "spectralspadesyncbatch3x3", "--norm_D", "spectralinstance",
    "--norm_E", "spectralinstance", "--gan_mode", "hinge", "--lambda_feat", "10",
    "--lambda_kld", "0.05", "--lr", "0.0002", "--beta1", "0.0", "--beta2", "0.9",
]  # fmt: skip
ARGS = [a for a in ARGS if a != "--no_instance_false_placeholder"]  # instance edges stay on
LOW, SCALE = 32, 8  # stored batch size and the nearest upsampling factor to 256


def expand(x: torch.Tensor) -> torch.Tensor:
    """(..., 32, 32) -> (..., 256, 256), nearest (each pixel an 8x8 block)."""
    return x.repeat_interleave(SCALE, dim=-2).repeat_interleave(SCALE, dim=-1)


def make_batch(g: torch.Generator) -> dict[str, torch.Tensor]:
    """A random stored batch: labels (2, 32, 32) in [0, 4), instances with ids repeating across
    classes, uint8 images."""
    labels = torch.randint(0, 4, (2, LOW // 4, LOW // 4), generator=g)
    labels = labels.repeat_interleave(4, 1).repeat_interleave(4, 2)
    instances = torch.randint(0, 3, (2, LOW // 8, LOW // 8), generator=g)
    instances = instances.repeat_interleave(8, 1).repeat_interleave(8, 2)
    image = torch.randint(0, 256, (2, 3, LOW, LOW), generator=g, dtype=torch.uint8)
    return {"label": labels, "instance": instances, "image_u8": image}


def official_data(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The dict the official dataloader gives: label / instance (N, 1, H, W) float, image."""
    return {
        "label": expand(batch["label"])[:, None].float(),
        "instance": expand(batch["instance"])[:, None].float(),
        "image": expand(batch["image_u8"]).float() / 127.5 - 1,
        "path": ["golden"] * batch["label"].shape[0],
    }


def state(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkout", type=Path, help="NVlabs/SPADE checkout (patched, see README)")
    args = parser.parse_args()
    os.environ["SPADE_NHIDDEN"] = str(NHIDDEN)
    sys.path.insert(0, str(args.checkout))
    os.chdir(args.checkout)
    sys.modules.setdefault("dill", pickle)  # util.py pickles its options with dill; plain will do
    from options.train_options import TrainOptions  # noqa: PLC0415 -- the official code
    from trainers.pix2pix_trainer import Pix2PixTrainer  # noqa: PLC0415

    ckpt_dir = Path(tempfile.mkdtemp())
    sys.argv = ["train.py", *ARGS, "--checkpoints_dir", str(ckpt_dir)]
    torch.manual_seed(0)
    opt = TrainOptions().parse()
    trainer = Pix2PixTrainer(opt)
    model = trainer.pix2pix_model
    OUT.mkdir(parents=True, exist_ok=True)
    model.save("latest")  # official util.save_network: <ckpt>/golden/latest_net_{G,D,E}.pth
    for net in ("G", "D", "E"):
        (OUT / f"latest_net_{net}.pth").write_bytes(
            (ckpt_dir / "golden" / f"latest_net_{net}.pth").read_bytes()
        )

    g = torch.Generator().manual_seed(1)
    # ----- forward.pt: fixed inputs, official outputs ---------------------------------
    fixed = make_batch(g)
    data = official_data(fixed)
    z = torch.randn(2, opt.z_dim, generator=g)
    with torch.no_grad():
        sem, real = model.preprocess_input(dict(data))
        outputs: dict[str, Any] = {}
        for mode in ("eval", "train"):
            netG = copy.deepcopy(model.netG).train(mode == "train")
            outputs[f"G/{mode}"] = netG(sem, z=z)
            netD = copy.deepcopy(model.netD).train(mode == "train")
            d_out = netD(torch.cat([sem, real], 1))
            outputs[f"D/{mode}/real"] = [s[-1] for s in d_out]
            netE = copy.deepcopy(model.netE).train(mode == "train")
            outputs[f"E/{mode}/mu"], outputs[f"E/{mode}/logvar"] = netE(real)
        fake = outputs["G/eval"]
        outputs["D/eval/fake"] = [s[-1] for s in copy.deepcopy(model.netD).eval()(
            torch.cat([sem, fake], 1))]  # fmt: skip
        for mode in ("eval", "train"):  # every 8th pixel: 256x256 images would be 1.5 MB each
            outputs[f"G/{mode}"] = outputs[f"G/{mode}"][:, :, ::SCALE, ::SCALE].clone()
    torch.save({"batch": fixed, "z": z, "outputs": outputs, "args": ARGS,
                "nhidden": NHIDDEN}, OUT / "forward.pt")  # fmt: skip

    # ----- train.pt: 3 official iterations --------------------------------------------
    draws: list[torch.Tensor] = []
    randn_like = torch.randn_like

    def recording_randn_like(x: torch.Tensor, *a: Any, **k: Any) -> torch.Tensor:
        e = randn_like(x, *a, **k)
        draws.append(e.clone())
        return e

    torch.randn_like = recording_randn_like  # type: ignore[assignment]
    iterations = []
    for _ in range(3):
        batch = make_batch(g)
        draws.clear()
        trainer.run_generator_one_step(official_data(batch))
        trainer.run_discriminator_one_step(official_data(batch))
        losses = {k: float(v.detach().mean()) for k, v in trainer.get_latest_losses().items()}
        iterations.append({"batch": batch, "draws": list(draws), "losses": losses})
    torch.randn_like = randn_like  # type: ignore[assignment]
    after = {"G": state(model.netG), "D": state(model.netD), "E": state(model.netE)}
    torch.save({"iterations": iterations, "after": after, "args": ARGS, "nhidden": NHIDDEN,
                "lr_g": opt.lr / 2, "lr_d": opt.lr * 2, "betas": (opt.beta1, opt.beta2)},
               OUT / "train.pt")  # fmt: skip
    commit = subprocess.run(
        ["git", "-C", str(args.checkout), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    print(f"wrote {OUT} (official checkout {args.checkout} {commit or '(no git)'})")
    for f in sorted(OUT.iterdir()):
        print(f"  {f.name}: {f.stat().st_size / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
