"""StarGAN training parity (issue 14): ganzoo's StarGANTask, from the official random-init
weights, batches and random draws of tests/golden/stargan, reaches the official G and D after
3 iterations of solver.py (n_critic 1: D then G on every batch): CelebA (BCE attributes), RaFD
(cross-entropy classes) and joint training (train_multi: a CelebA and a RaFD batch in turn)."""

from __future__ import annotations

from typing import Any

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader

from ganzoo import official
from ganzoo.cli.build import build_task
from ganzoo.data.batch import collate
from ganzoo.official.stargan import convert
from ganzoo.tasks.stargan import StarGANTask
from tests.conftest import max_relative_error
from tests.test_official_stargan import GOLDEN, SMALL

pytestmark = pytest.mark.usefixtures("one_thread")

RECIPE = [  # experiments/parity/stargan.py CONFIG: n_critic 1, Adam 1e-4 (0.5, 0.999)
    "model.n_critic=1",
    "optim.lr_g=1e-4",
    "optim.lr_d=1e-4",
    "steps=3",
]


def replay(monkeypatch: pytest.MonkeyPatch, draws: list[dict[str, Tensor]]) -> list[str]:
    """torch.randperm / torch.rand return the official draws, in the order it made them."""
    queue = list(draws)
    used: list[str] = []

    def take(kind: str, shape: tuple[int, ...], device: Any) -> Tensor:
        draw = queue.pop(0)
        assert kind in draw, f"the official code drew {list(draw)} here, ganzoo {kind}"
        assert tuple(draw[kind].shape) == shape
        used.append(kind)
        return draw[kind].to(device if device is not None else "cpu")

    def randperm(n: int, *, generator: Any = None, device: Any = None, **_: Any) -> Tensor:
        return take("randperm", (n,), device)

    def rand(*size: int, generator: Any = None, device: Any = None, **_: Any) -> Tensor:
        return take("rand", tuple(size), device)

    monkeypatch.setattr(torch, "randperm", randperm)
    monkeypatch.setattr(torch, "rand", rand)
    return used


def samples_of(variant: str, golden: dict[str, Any]) -> list[dict[str, Tensor]]:
    """The official runs' training batches as ganzoo samples, in the order they were read (the
    first CelebA batch is the solver's x_fixed, never trained on)."""
    batches = golden["batches"][1:]
    if variant != "joint":
        if variant == "celeba":
            labels = [b["c"] for b in batches]
        else:
            labels = [F.one_hot(c, 6).float() for c in golden["rafd"]["classes"][1:]]
        return [
            {"image": x, "attributes": a}
            for b, batch_labels in zip(batches, labels, strict=True)
            for x, a in zip(b["x"], batch_labels, strict=True)
        ]
    out = []  # joint: a CelebA batch and a RaFD batch in turn (Solver.train_multi)
    for b, classes in zip(batches, golden["joint"]["classes2"], strict=True):
        celeba = torch.cat([b["c"], torch.zeros(4, 3)], 1)
        rafd = torch.cat([torch.zeros(4, 6), F.one_hot(classes, 3).float()], 1)
        for attrs, mask in ((celeba, [1.0, 0.0]), (rafd, [0.0, 1.0])):
            out += [
                {"image": x, "attributes": a, "domain_mask": torch.tensor(mask)}
                for x, a in zip(b["x"], attrs, strict=True)
            ]
    return out


VARIANTS = {  # ganzoo overrides, official init folder, official folder after 3 iterations
    "celeba": ([], "init", "trained"),
    "rafd": (["model.cls_loss=ce"], "init", "rafd"),
    "joint": (  # n_critic 1: G after D on every batch, as train_multi (pairing the batches
        #            into iterations, data.alternate_groups, matters for n_critic > 1 only)
        [
            "model.c2_dim=3",
            "model.generator.c_dim=11",  # 6 + 3 + 2 mask
            "model.attribute_names=[a0,a1,a2,a3,a4,a5,r0,r1,r2]",
            "model.one_of=[]",
        ],
        "joint",
        "joint",
    ),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_three_official_iterations_reach_the_official_g_and_d(
    variant: str, make_cfg, monkeypatch, tmp_path
) -> None:
    overrides, init, trained = VARIANTS[variant]
    task = build_task(make_cfg(*SMALL, *RECIPE, *overrides))
    assert isinstance(task, StarGANTask)
    start = tmp_path / "init"  # the 0-*.ckpt files alone (a folder converts its last iteration)
    start.mkdir()
    for name in ("0-G.ckpt", "0-D.ckpt"):
        (start / name).write_bytes((GOLDEN / init / name).read_bytes())
    task.load_state_dict(official.assemble(task, convert(start, task)))
    golden = torch.load(GOLDEN / "train.pt")
    samples = samples_of(variant, golden)
    draws = golden["draws"] if variant == "celeba" else golden[variant]["draws"]
    loader = DataLoader(samples, batch_size=4, collate_fn=collate)
    trainer = pl.Trainer(
        max_epochs=1,
        limit_train_batches=len(samples) // 4,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    used = replay(monkeypatch, draws)
    trainer.fit(task, loader)
    monkeypatch.undo()
    assert used == ["randperm", "rand"] * (len(samples) // 4)

    errors = {}
    nets = (("G", task.generator, "3-G.ckpt"), ("D", task.discriminator, "3-D.ckpt"))
    for name, ours, file in nets:
        mine = ours.state_dict()
        for key, value in torch.load(GOLDEN / trained / file).items():
            errors[f"{name}.{key}"] = max_relative_error(mine[key], value)
    worst = max(errors, key=errors.__getitem__)
    assert errors[worst] <= 1e-6, f"{worst}: relative error {errors[worst]:.2e}"
