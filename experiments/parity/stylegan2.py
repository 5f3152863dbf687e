"""Golden fixtures of NVlabs/stylegan2-ada-pytorch for ganzoo's StyleGAN2 (issues 13 and 14).

    python experiments/parity/stylegan2.py /path/to/stylegan2-ada-pytorch [--out DIR]

Runs the official code (imported from the checkout given; nothing of it is copied here) at a
small configuration of the same structure as config F (32x32, 12 classes, channel_base 128,
channel_max 16, z_dim = w_dim = 16, a 2-layer G mapping, fp32: num_fp16_res 0, conv_clamp
None) on the CPU and writes into tests/golden/stylegan2/:

  network-snapshot.pkl  G, D, G_ema as the official training loop pickles them (persistent
                        modules with their source code embedded; G and D random init, G_ema
                        an independent init with w_avg tracked and every parameter moved, so
                        that a converter mixing up G and G_ema, or skipping noise strengths and
                        biases, fails)
  forward.pt            fixed z and labels; G and G_ema images with noise_mode='const' at a few
                        truncations (eval: the fused modulated conv; train: the unfused one with
                        the noise added by fma), D logits
  train.pt              3 iterations of the official loop (training_loop.py:249-305) through the
                        official StyleGAN2Loss and Adam, lazy regularisation every 2 iterations
                        (G_reg and D_reg run at iterations 0 and 2): per iteration the real
                        batch, the z and labels it drew for each phase (labels of random
                        dataset images, training_loop.py:263-265) and torch's RNG state when
                        the phases start (style mixing, noise inputs and path-length noise are
                        drawn from it); then G, D, G_ema and pl_mean after the 3 iterations
  README.md             how it was made

The parameters after training are compared by tests/test_parity_stylegan2.py, the outputs by
tests/test_official_stylegan2.py; the tests never import the official code.
"""

from __future__ import annotations

import argparse
import copy
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "tests" / "golden" / "stylegan2"

RES, C_DIM, Z_DIM, W_DIM = 32, 12, 16, 16
G_KWARGS: dict[str, Any] = dict(
    z_dim=Z_DIM, c_dim=C_DIM, w_dim=W_DIM, img_resolution=RES, img_channels=3,
    mapping_kwargs=dict(num_layers=2),
    synthesis_kwargs=dict(channel_base=128, channel_max=16, num_fp16_res=0, conv_clamp=None),
)  # fmt: skip
D_KWARGS: dict[str, Any] = dict(
    c_dim=C_DIM, img_resolution=RES, img_channels=3, channel_base=128, channel_max=16,
    num_fp16_res=0, conv_clamp=None, epilogue_kwargs=dict(mbstd_group_size=4),
)  # fmt: skip
TRAIN: dict[str, Any] = dict(
    batch=4, iterations=3, lr=0.0025, betas=(0.0, 0.99), eps=1e-8, G_reg_interval=2,
    D_reg_interval=2, r1_gamma=1.0, pl_weight=2.0, pl_batch_shrink=2, pl_decay=0.01,
    style_mixing_prob=0.9, ema_kimg=0.01, ema_rampup=None,
)  # fmt: skip
# The dataset's labels (20 images, skewed), from which the official loop draws fake labels.
DATASET_LABELS = [0, 0, 0, 0, 1, 1, 1, 2, 2, 3, 4, 5, 5, 6, 7, 8, 9, 10, 11, 11]


def one_hot(ids: list[int] | np.ndarray) -> np.ndarray:
    out = np.zeros([len(ids), C_DIM], np.float32)
    out[np.arange(len(ids)), ids] = 1
    return out


def build(networks: Any, seed: int) -> tuple[Any, Any]:
    torch.manual_seed(seed)
    g = networks.Generator(**G_KWARGS).train().requires_grad_(False)
    d = networks.Discriminator(**D_KWARGS).train().requires_grad_(False)
    return g, d


def trained_looking_ema(networks: Any) -> Any:
    """An independent G with w_avg tracked and every parameter moved off its init."""
    g_ema, _ = build(networks, 1)
    with torch.no_grad():
        for _ in range(5):  # w_avg: the training-mode mapping tracks it
            g_ema.mapping(torch.randn(8, Z_DIM), torch.from_numpy(one_hot(list(range(8)))))
        for p in g_ema.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return g_ema.eval()


def forward_outputs(g: Any, d: Any, g_ema: Any) -> dict[str, Any]:
    torch.manual_seed(2)
    z = torch.randn(4, Z_DIM)
    c = torch.from_numpy(one_hot([3, 0, 11, 5]))
    out: dict[str, Any] = {"z": z, "c": c, "images": {}}
    with torch.no_grad():
        cases: list[tuple[str, Any, bool, float, int | None]] = [
            ("G/eval/psi1", g, False, 1.0, None),
            ("G_ema/eval/psi1", g_ema, False, 1.0, None),
            ("G_ema/eval/psi0.7", g_ema, False, 0.7, None),
            ("G_ema/eval/psi0.5_cutoff2", g_ema, False, 0.5, 2),
            ("G_ema/train/psi1", g_ema, True, 1.0, None),  # unfused modconv, noise by fma
        ]
        for name, net, train, psi, cutoff in cases:
            net = copy.deepcopy(net).train(train)  # train mode would update w_avg of the original
            out["images"][name] = net(
                z, c, truncation_psi=psi, truncation_cutoff=cutoff, noise_mode="const"
            )
        out["real"] = torch.rand(4, 3, RES, RES) * 2 - 1
        out["D/fake_logits"] = d(out["images"]["G_ema/eval/psi1"], c)
        out["D/real_logits"] = d(out["real"], c)
    return out


def train(loss_mod: Any, g: Any, d: Any, g_ema: Any) -> dict[str, Any]:
    """training_loop.py:197-305 for 3 iterations, recording what it consumed."""
    t = TRAIN
    batch = t["batch"]
    loss = loss_mod.StyleGAN2Loss(
        device=torch.device("cpu"), G_mapping=g.mapping, G_synthesis=g.synthesis, D=d,
        augment_pipe=None, style_mixing_prob=t["style_mixing_prob"], r1_gamma=t["r1_gamma"],
        pl_batch_shrink=t["pl_batch_shrink"], pl_decay=t["pl_decay"], pl_weight=t["pl_weight"],
    )  # fmt: skip
    phases = []
    for name, module, interval in [("G", g, t["G_reg_interval"]), ("D", d, t["D_reg_interval"])]:
        ratio = interval / (interval + 1)  # lazy regularisation (training_loop.py:190-197)
        opt = torch.optim.Adam(
            module.parameters(), lr=t["lr"] * ratio, betas=[b**ratio for b in t["betas"]],
            eps=t["eps"],
        )  # fmt: skip
        phases += [dict(name=name + "main", module=module, opt=opt, interval=1)]
        phases += [dict(name=name + "reg", module=module, opt=opt, interval=interval)]
    names = [p["name"] for p in phases]
    record: dict[str, Any] = {"iterations": []}
    torch.manual_seed(3)
    np.random.seed(3)
    cur_nimg = 0
    labels = np.array(DATASET_LABELS)
    for batch_idx in range(t["iterations"]):
        real_idx = np.random.randint(len(labels), size=batch)  # the data loader's picks
        real_u8 = torch.randint(0, 256, [batch, 3, RES, RES], dtype=torch.uint8)
        real_img = real_u8.to(torch.float32) / 127.5 - 1
        real_c = torch.from_numpy(one_hot(labels[real_idx]))
        all_gen_z = torch.randn([len(phases) * batch, Z_DIM])
        gen_idx = [np.random.randint(len(labels)) for _ in range(len(phases) * batch)]
        all_gen_c = torch.from_numpy(one_hot(labels[gen_idx]))
        record["iterations"].append(
            {
                "real_u8": real_u8,
                "real_class": torch.from_numpy(labels[real_idx]),
                "gen_z": dict(zip(names, all_gen_z.split(batch), strict=True)),
                "gen_class": dict(
                    zip(names, torch.tensor(labels[gen_idx]).split(batch), strict=True)
                ),
                "rng_state": torch.get_rng_state(),
            }
        )
        draws = zip(phases, all_gen_z.split(batch), all_gen_c.split(batch), strict=True)
        for phase, gen_z, gen_c in draws:
            if batch_idx % phase["interval"] != 0:
                continue
            phase["opt"].zero_grad(set_to_none=True)
            phase["module"].requires_grad_(True)
            loss.accumulate_gradients(
                phase=phase["name"], real_img=real_img, real_c=real_c, gen_z=gen_z, gen_c=gen_c,
                sync=True, gain=phase["interval"],
            )  # fmt: skip
            phase["module"].requires_grad_(False)
            for param in phase["module"].parameters():
                if param.grad is not None:
                    torch.nan_to_num(param.grad, nan=0, posinf=1e5, neginf=-1e5, out=param.grad)
            phase["opt"].step()
        with torch.no_grad():  # G_ema (training_loop.py:296-305)
            ema_nimg = t["ema_kimg"] * 1000
            if t["ema_rampup"] is not None:
                ema_nimg = min(ema_nimg, cur_nimg * t["ema_rampup"])
            ema_beta = 0.5 ** (batch / max(ema_nimg, 1e-8))
            for p_ema, p in zip(g_ema.parameters(), g.parameters(), strict=True):
                p_ema.copy_(p.lerp(p_ema, ema_beta))
            for b_ema, b in zip(g_ema.buffers(), g.buffers(), strict=True):
                b_ema.copy_(b)
        cur_nimg += batch
    record["after"] = {
        "G": {k: v.clone() for k, v in g.state_dict().items()},
        "D": {k: v.clone() for k, v in d.state_dict().items()},
        "G_ema": {k: v.clone() for k, v in g_ema.state_dict().items()},
        "pl_mean": loss.pl_mean.clone(),
    }
    record["config"] = {**TRAIN, "dataset_labels": DATASET_LABELS}
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("official", type=Path, help="a stylegan2-ada-pytorch checkout")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    sys.path.insert(0, str(args.official.resolve()))
    from training import loss as loss_mod  # noqa: PLC0415  (the official checkout)
    from training import networks  # noqa: PLC0415

    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    g, d = build(networks, 0)
    g_ema = trained_looking_ema(networks)
    with open(args.out / "network-snapshot.pkl", "wb") as f:  # as training_loop.py:358-368
        snapshot = {"training_set_kwargs": {"resolution": RES, "use_labels": True}}
        for name, module in [("G", g), ("D", d), ("G_ema", g_ema)]:
            snapshot[name] = copy.deepcopy(module).eval().requires_grad_(False)
        pickle.dump(snapshot, f)
    torch.save(forward_outputs(g, d, g_ema), args.out / "forward.pt")
    torch.save(train(loss_mod, g, d, g_ema), args.out / "train.pt")
    commit = subprocess.run(
        ["git", "-C", str(args.official), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    print(f"wrote {args.out} (official commit {commit or 'unknown: not a git work tree'})")
    for p in sorted(args.out.iterdir()):
        print(f"  {p.name}: {p.stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
