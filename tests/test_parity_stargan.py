"""StarGAN training parity (issue 14): ganzoo's StarGANTask, from the official random-init
weights, batches and random draws of tests/golden/stargan, reaches the official G and D after
3 iterations of solver.py's train() (n_critic 1: D then G every iteration)."""

from __future__ import annotations

from typing import Any

import pytest
import pytorch_lightning as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from ganzoo import official
from ganzoo.cli.build import build_task
from ganzoo.data.batch import collate
from ganzoo.official.stargan import convert
from ganzoo.tasks.stargan import StarGANTask
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


def relative_error(ours: Tensor, theirs: Tensor) -> float:
    scale = theirs.float().abs().max().clamp_min(1e-12)
    return ((ours.float() - theirs.float()).abs().max() / scale).item()


def test_three_official_iterations_reach_the_official_g_and_d(make_cfg, monkeypatch) -> None:
    task = build_task(make_cfg(*SMALL, *RECIPE))
    assert isinstance(task, StarGANTask)
    task.load_state_dict(official.assemble(task, convert(GOLDEN / "init", task)))
    golden = torch.load(GOLDEN / "train.pt")
    batches = golden["batches"][1:]  # the first is the solver's x_fixed, never trained on
    samples = [
        {"image": x, "attributes": c} for b in batches for x, c in zip(b["x"], b["c"], strict=True)
    ]
    loader = DataLoader(samples, batch_size=4, collate_fn=collate)
    trainer = pl.Trainer(
        max_epochs=1,
        limit_train_batches=len(batches),
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    used = replay(monkeypatch, golden["draws"])
    trainer.fit(task, loader)
    monkeypatch.undo()
    assert used == ["randperm", "rand"] * 3 and int(task.iteration) == 3

    errors = {}
    for name, ours, file in (
        ("G", task.generator, "3-G.ckpt"),
        ("D", task.discriminator, "3-D.ckpt"),
    ):
        mine = ours.state_dict()
        for key, value in torch.load(GOLDEN / "trained" / file).items():
            errors[f"{name}.{key}"] = relative_error(mine[key], value)
    worst = max(errors, key=errors.__getitem__)
    assert errors[worst] <= 1e-6, f"{worst}: relative error {errors[worst]:.2e}"
