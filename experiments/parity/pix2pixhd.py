"""Golden fixtures of NVIDIA/pix2pixHD for issues 13 and 14: tests/golden/pix2pixhd/.

    OMP_NUM_THREADS=1 .venv/bin/python experiments/parity/pix2pixhd.py /path/to/pix2pixHD

runs the official code (a checkout of NVIDIA/pix2pixHD with the CPU patch of the README: its
`.cuda()` calls and torch.cuda tensor types in models/pix2pixHD_model.py made CPU ones) at two
small configurations of the paper's structure, and writes

    global/latest_net_{G,D}.pth     netG global (G1 alone), as Pix2PixHDModel.save writes them
    local/latest_net_{G,D,E}.pth    netG local (G1 + one enhancer) with --instance_feat (E)
    forward.pt   per configuration: a fixed batch and the official outputs (G, D logits of
                 every scale on the real image; E's instance-averaged features)
    train.pt     3 iterations of the official train.py loop on the local configuration: one
                 model forward, G step (G_GAN + G_GAN_Feat), D step (0.5 (D_fake + D_real)) on
                 the same forward; the batches, losses and G, D, E after the third iteration.
                 The loop draws nothing random (pool_size 0, no dropout).

Nothing of the official code is copied into ganzoo; this script only imports it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

OUT = Path(__file__).resolve().parents[2] / "tests" / "golden" / "pix2pixhd"
COMMON = [
    "--gpu_ids", "-1", "--label_nc", "4", "--n_downsample_global", "2",
    "--n_blocks_global", "2", "--n_layers_D", "3", "--ndf", "4", "--no_vgg_loss",
    "--batchSize", "2", "--lr", "0.0002", "--beta1", "0.5", "--lambda_feat", "10",
    "--pool_size", "0", "--norm", "instance",
]  # fmt: skip
CONFIGS = {
    "global": [*COMMON, "--name", "global", "--netG", "global", "--ngf", "4", "--num_D", "2"],
    "local": [*COMMON, "--name", "local", "--netG", "local", "--ngf", "2", "--num_D", "3",
              "--n_local_enhancers", "1", "--n_blocks_local", "1", "--instance_feat",
              "--feat_num", "3", "--nef", "4", "--n_downsample_E", "2"],
}  # fmt: skip
H, W = 32, 64


def make_batch(g: torch.Generator) -> dict[str, torch.Tensor]:
    """Labels (2, H, W) in [0, 4) in 4x4 blocks; instance ids 0..2 in 8x8 blocks, so ids repeat
    across classes (the official Encoder averages per id); uint8 images."""
    labels = torch.randint(0, 4, (2, H // 4, W // 4), generator=g)
    labels = labels.repeat_interleave(4, 1).repeat_interleave(4, 2)
    instances = torch.randint(0, 3, (2, H // 8, W // 8), generator=g)
    instances = instances.repeat_interleave(8, 1).repeat_interleave(8, 2)
    image = torch.randint(0, 256, (2, 3, H, W), generator=g, dtype=torch.uint8)
    return {"label": labels, "instance": instances, "image_u8": image}


def official_inputs(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """label, inst (N, 1, H, W) float, image, feat as the official AlignedDataset gives them."""
    image = batch["image_u8"].float() / 127.5 - 1
    return (batch["label"][:, None].float(), batch["instance"][:, None].float(), image,
            torch.zeros(1))  # fmt: skip


def state(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def build(name: str, ckpt_dir: Path) -> Any:
    from models.models import create_model  # noqa: PLC0415 -- the official code
    from options.train_options import TrainOptions  # noqa: PLC0415

    sys.argv = ["train.py", *CONFIGS[name], "--checkpoints_dir", str(ckpt_dir)]
    opt = TrainOptions().parse()
    return opt, create_model(opt)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkout", type=Path, help="NVIDIA/pix2pixHD checkout (CPU-patched)")
    args = parser.parse_args()
    sys.path.insert(0, str(args.checkout))
    os.chdir(args.checkout)
    ckpt_dir = Path(tempfile.mkdtemp())
    g = torch.Generator().manual_seed(1)
    forward: dict[str, Any] = {}
    models: dict[str, Any] = {}
    for i, name in enumerate(CONFIGS):
        torch.manual_seed(i)
        opt, model = build(name, ckpt_dir)
        models[name] = model
        model.save("latest")  # official save_network: <ckpt>/<name>/latest_net_{G,D[,E]}.pth
        (OUT / name).mkdir(parents=True, exist_ok=True)
        for path in sorted((ckpt_dir / name).glob("latest_net_*.pth")):
            (OUT / name / path.name).write_bytes(path.read_bytes())
        batch = make_batch(g)
        label, inst, image, _ = official_inputs(batch)
        with torch.no_grad():
            input_label, inst_map, real, _ = model.encode_input(label, inst, image, None)
            outputs: dict[str, Any] = {}
            x = input_label
            if model.use_features:
                outputs["E"] = model.netE(real, inst_map)
                x = torch.cat([input_label, outputs["E"]], 1)
            outputs["G"] = model.netG(x)
            d = model.netD(torch.cat([input_label, real], 1))
            outputs["D/real"] = [s[-1] for s in d]  # full resolution first
            d = model.netD(torch.cat([input_label, outputs["G"]], 1))
            outputs["D/fake"] = [s[-1] for s in d]
        forward[name] = {"batch": batch, "outputs": outputs, "args": CONFIGS[name]}
    torch.save(forward, OUT / "forward.pt")

    # ----- train.pt: train.py's loop, 3 iterations of the local configuration -----------
    model = models["local"]
    iterations = []
    for _ in range(3):
        batch = make_batch(g)
        losses, _ = model(*official_inputs(batch), infer=False)
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
        iterations.append({"batch": batch, "losses": {k: float(v) for k, v in loss_dict.items()}})
    after = {"G": state(model.netG), "D": state(model.netD), "E": state(model.netE)}
    torch.save({"iterations": iterations, "after": after, "args": CONFIGS["local"], "draws": [],
                "lr": 0.0002, "betas": (0.5, 0.999)}, OUT / "train.pt")  # fmt: skip
    commit = subprocess.run(
        ["git", "-C", str(args.checkout), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    print(f"wrote {OUT} (official checkout {args.checkout} {commit or '(no git)'})")
    for f in sorted(OUT.rglob("*")):
        if f.is_file():
            print(f"  {f.relative_to(OUT)}: {f.stat().st_size / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
