"""Golden fixtures of yunjey/stargan for tests/test_official_stargan.py and
tests/test_parity_stargan.py (issues 13 and 14).

    python experiments/parity/stargan.py /path/to/stargan [--out tests/golden/stargan]

Runs the official Solver (imported from the checkout given; nothing of it is copied here) on the
CPU at a small configuration of the paper's structure: 32x32 images, 6 binary attributes
(dataset 'CelebA': BCE classification, permuted target labels), G conv_dim 4 with 2 residual
blocks, D conv_dim 4 with 3 strided convs (D_cls kernel 32 / 2^3 = 4), lambda_cls 1,
lambda_rec 10, lambda_gp 10, Adam 1e-4 (0.5, 0.999), batch 4 and n_critic 1 (G steps every
iteration, so G's Adam runs 3 steps too). Solver.train() runs 3 iterations and saves
`3-G.ckpt`, `3-D.ckpt` as it saves `200000-G.ckpt`. It writes:

  init/0-G.ckpt, init/0-D.ckpt     the official random init (solver.G / solver.D state dicts)
  trained/3-G.ckpt, trained/3-D.ckpt   what Solver.train() saved after 3 iterations
  rafd/3-G.ckpt, rafd/3-D.ckpt   dataset 'RaFD' (6 classes, cross-entropy) trained 3 iterations
        from the same init (the same seed and shapes give init/)
  joint/0-G.ckpt, 0-D.ckpt, 3-G.ckpt, 3-D.ckpt   dataset 'Both' (Solver.train_multi: a CelebA
        batch and a RaFD batch of 3 classes in turn; G sees 6 + 3 + 2 mask label channels, D
        classifies 9), its init and after 3 iterations
  forward.pt    fixed images and labels; official outputs of the trained files (G(x, c),
        D's (out_src, out_cls)) and of the trained joint files
  train.pt      the batches (the first is the solver's x_fixed, then one per iteration; the
        images are shared by the three runs), every torch.randperm / torch.rand draw each run
        made, in order
  README.md     repository, commit, configuration, command
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

SEED = 0
CONFIG: dict[str, Any] = {
    "c_dim": 6,
    "c2_dim": 3,
    "image_size": 32,
    "g_conv_dim": 4,
    "d_conv_dim": 4,
    "g_repeat_num": 2,
    "d_repeat_num": 3,
    "lambda_cls": 1.0,
    "lambda_rec": 10.0,
    "lambda_gp": 10.0,
    "dataset": "CelebA",
    "batch_size": 4,
    "num_iters": 3,
    "num_iters_decay": 1,
    "g_lr": 1e-4,
    "d_lr": 1e-4,
    "n_critic": 1,
    "beta1": 0.5,
    "beta2": 0.999,
    "resume_iters": None,
    "selected_attrs": ["a0", "a1", "a2", "a3", "a4", "a5"],
    "test_iters": 3,
    "use_tensorboard": False,
    "log_step": 1,
    "sample_step": 1000,
    "model_save_step": 3,
    "lr_update_step": 1000,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("official", type=Path, help="yunjey/stargan checkout")
    parser.add_argument("--out", type=Path, default=Path("tests/golden/stargan"))
    parser.add_argument("--commit", help="the checkout's commit (default: git rev-parse HEAD)")
    args = parser.parse_args()
    sys.path.insert(0, str(args.official.resolve()))
    from solver import Solver  # noqa: PLC0415 -- the official code, from the checkout

    torch.set_num_threads(1)
    out: Path = args.out
    for sub in ("init", "trained", "rafd", "joint"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp())
    dirs = {k: str(scratch / k) for k in ("log_dir", "sample_dir", "model_save_dir", "result_dir")}
    for d in dirs.values():
        Path(d).mkdir()
    config = SimpleNamespace(**CONFIG, **dirs)

    gen = torch.Generator().manual_seed(1234)
    n, c, c2 = config.batch_size, config.c_dim, config.c2_dim
    images = [torch.rand(n, 3, 32, 32, generator=gen) * 2 - 1 for _ in range(1 + config.num_iters)]
    attrs = [torch.randint(0, 2, (n, c), generator=gen).float() for _ in images]
    classes = [torch.randint(0, c, (n,), generator=gen) for _ in images]  # RaFD: c classes
    classes2 = [torch.randint(0, c2, (n,), generator=gen) for _ in images]  # joint: c2 classes
    celeba = list(zip(images, attrs, strict=True))  # the first batch is the solver's x_fixed

    def run(dataset: str, first: list, second: list | None, init: str, trained: str) -> tuple:
        """Seed, build the official Solver, save its init, train 3 iterations recording the
        draws, copy the checkpoints it saved. (solver, draws)"""
        cfg = SimpleNamespace(**{**vars(config), "dataset": dataset})
        torch.manual_seed(SEED)
        solver = Solver(first if dataset != "RaFD" else None, second, cfg)
        torch.save(solver.G.state_dict(), out / init / "0-G.ckpt")
        torch.save(solver.D.state_dict(), out / init / "0-D.ckpt")
        draws: list[dict[str, Any]] = []
        randperm, rand = torch.randperm, torch.rand

        def record_randperm(*a: Any, **k: Any) -> torch.Tensor:
            value = randperm(*a, **k)
            draws.append({"randperm": value.clone()})
            return value

        def record_rand(*a: Any, **k: Any) -> torch.Tensor:
            value = rand(*a, **k)
            draws.append({"rand": value.clone()})
            return value

        torch.randperm, torch.rand = record_randperm, record_rand  # type: ignore[assignment]
        try:
            solver.train_multi() if dataset == "Both" else solver.train()
        finally:
            torch.randperm, torch.rand = randperm, rand  # type: ignore[assignment]
        saved = Path(cfg.model_save_dir)
        for name in ("3-G.ckpt", "3-D.ckpt"):
            (out / trained / name).write_bytes((saved / name).read_bytes())
            (saved / name).unlink()
        return solver, draws

    solver, draws = run("CelebA", celeba, None, "init", "trained")
    rafd_batches = list(zip(images, classes, strict=True))
    _, rafd_draws = run("RaFD", [], rafd_batches, "rafd", "rafd")
    for name in ("0-G.ckpt", "0-D.ckpt"):  # the same seed and shapes: the CelebA init
        same = (out / "rafd" / name).read_bytes() == (out / "init" / name).read_bytes()
        assert same, "RaFD's init should equal init/"
        (out / "rafd" / name).unlink()
    joint_rafd = list(zip(images[1:], classes2[1:], strict=True))  # no x_fixed from RaFD
    joint, joint_draws = run("Both", celeba, joint_rafd, "joint", "joint")
    torch.save(
        {
            "config": CONFIG,
            "batches": [{"x": x, "c": a} for x, a in celeba],  # CelebA run; x shared by all
            "draws": draws,
            "rafd": {"classes": classes, "draws": rafd_draws},  # batches: (images[i], classes[i])
            "joint": {"classes2": classes2[1:], "draws": joint_draws},  # CelebA batches as
            #   above, RaFD batches (images[i + 1], classes2[i]), in turn as train_multi
        },
        out / "train.pt",
    )

    gen = torch.Generator().manual_seed(99)
    x = torch.rand(2, 3, 32, 32, generator=gen) * 2 - 1
    labels = torch.randint(0, 2, (2, c), generator=gen).float()
    joint_labels = torch.cat(
        [labels, torch.zeros(2, config.c2_dim), torch.tensor([[1.0, 0.0]] * 2)], 1
    )
    G, D = solver.G, solver.D
    G.load_state_dict(torch.load(out / "trained" / "3-G.ckpt"))
    D.load_state_dict(torch.load(out / "trained" / "3-D.ckpt"))
    joint.G.load_state_dict(torch.load(out / "joint" / "3-G.ckpt"))
    joint.D.load_state_dict(torch.load(out / "joint" / "3-D.ckpt"))
    with torch.no_grad():
        outputs = {"G": G(x, labels), "D_src": D(x)[0], "D_cls": D(x)[1]}
        outputs["G_joint"] = joint.G(x, joint_labels)
        outputs["D_joint_src"], outputs["D_joint_cls"] = joint.D(x)
    torch.save(
        {"x": x, "c": labels, "c_joint": joint_labels, "outputs": outputs}, out / "forward.pt"
    )

    git = ["git", "-C", str(args.official), "rev-parse", "HEAD"]
    commit = args.commit or subprocess.run(git, capture_output=True, text=True).stdout.strip()
    (out / "README.md").write_text(
        README.format(commit=commit, config=CONFIG, seed=SEED, torch=torch.__version__)
    )
    print("wrote", out)


README = """# Golden fixtures: StarGAN (yunjey/stargan)

Made by `experiments/parity/stargan.py` from the official code, on the CPU (torch {torch}):

    python experiments/parity/stargan.py /path/to/stargan --out tests/golden/stargan

- repository: https://github.com/yunjey/stargan, commit {commit} (unpatched)
- seed {seed} (torch.manual_seed), Solver(config) with a list of batches as its CelebA loader
  (x uniform in [-1, 1], 6 random binary attributes), Solver.train() for num_iters = 3
- config: {config}

Three runs of 3 iterations, each seeded the same: dataset 'CelebA' (6 binary attributes, BCE),
'RaFD' (6 classes, cross-entropy; the same init) and 'Both' (Solver.train_multi, a CelebA batch
and a RaFD batch of 3 classes in turn, mask vector). Files: `init/0-G.ckpt`, `init/0-D.ckpt`
(the random init of CelebA and RaFD), `trained/3-*.ckpt` (CelebA after 3 iterations, as
Solver.train() saved them), `rafd/3-*.ckpt`, `joint/0-*.ckpt` and `joint/3-*.ckpt`;
`forward.pt` (fixed inputs, official outputs of trained/ and joint/3-*), `train.pt` (the
batches, the first being the solver's x_fixed; every torch.randperm / torch.rand draw of each
run, in order).
"""


if __name__ == "__main__":
    main()
