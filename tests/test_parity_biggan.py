"""BigGAN training parity (issue 14): ganzoo's BigGanTask, from the official random-init weights,
batches and latent draws of tests/golden/biggan, reaches the official G, D and G_ema after 3
official iterations: the paper recipe (2 D steps per G step: 6 ganzoo iterations, orthogonal
regularisation, the EMA copying then decaying) and the official gradient accumulation."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from ganzoo import official
from ganzoo.cli.build import build_task
from ganzoo.data.batch import collate
from ganzoo.official.biggan import convert, generator_state
from ganzoo.tasks.biggan import BigGanTask
from tests.conftest import max_relative_error
from tests.test_official_biggan import GOLDEN, SMALL

pytestmark = pytest.mark.usefixtures("one_thread")

# the golden recipe (experiments/parity/biggan.py CONFIG)
RECIPE = [
    "optim=biggan_paper",
    "optim.lr_g=1e-4",
    "optim.lr_d=4e-4",
    "optim.eps=1e-6",
    "optim.num_d_steps=2",
    "optim.ortho_reg=1e-4",
    "model.ema.decay=0.9",
    "model.ema.start_iteration=2",  # G updates, 1-based: a copy at the first, decay after
]


def replay_draws(task: BigGanTask, draws: list[dict[str, Tensor]]) -> None:
    """task._fake with the official z_ / y_ draws, in the order the official loop made them."""
    queue = list(draws)

    def fake(n: int, device: torch.device) -> tuple[Tensor, Tensor]:
        draw = queue.pop(0)
        z, y = draw["z"][:n].to(device), draw["y"][:n].to(device)
        return task.generator(z, y), y

    task._fake = fake  # type: ignore[method-assign]


VARIANTS = {  # overrides, official folder after 3 iterations, its networks, ganzoo batch size
    # the paper recipe: 2 D steps per G step, each on its own batch of 4
    "paper": ([], "trained", ("G", "G_ema", "D"), 4),
    # the official gradient accumulation: 1 D step and 1 G step per iteration, each of 2
    # accumulated micro-batches of 4 (ganzoo: model.accumulate=2 on batches of 8)
    "accumulate": (
        ["optim.num_d_steps=1", "model.accumulate=2", "data.batch_size=8"],
        "accumulate",
        ("G", "D"),
        8,
    ),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_three_official_iterations_reach_the_official_networks(variant: str, make_cfg) -> None:
    overrides, folder, nets, batch_size = VARIANTS[variant]
    task = build_task(make_cfg(*SMALL, *RECIPE, *overrides))
    assert isinstance(task, BigGanTask)
    task.load_state_dict(official.assemble(task, convert(GOLDEN / "init", task)))
    golden = torch.load(GOLDEN / "train.pt")
    replay_draws(task, golden["draws"] if variant == "paper" else golden[variant]["draws"])
    samples = []
    for batch in golden["batches"]:  # official batches of 8, read 4 or 8 at a time
        samples += [
            {"image": x, "class_id": y} for x, y in zip(batch["x"], batch["y"], strict=True)
        ]
    trainer = pl.Trainer(
        max_epochs=1,
        limit_train_batches=len(samples) // batch_size,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    trainer.fit(task, DataLoader(samples, batch_size=batch_size, collate_fn=collate))
    assert task.g_updates() == 4  # 3 G updates done

    errors = {}
    attributes = {"G": task.generator, "G_ema": task.generator_ema, "D": task.discriminator}
    for name in nets:
        theirs = torch.load(GOLDEN / folder / f"{name}.pth")
        if name != "D":
            theirs = generator_state(theirs)
        mine = attributes[name].state_dict()
        for key, value in theirs.items():
            if key.endswith("num_batches_tracked"):
                continue  # ganzoo counts batches; the official BN has no counter
            errors[f"{name}.{key}"] = max_relative_error(mine[key], value)
    worst = max(errors, key=errors.__getitem__)
    assert errors[worst] <= 1e-6, f"{worst}: relative error {errors[worst]:.2e}"
    if variant == "paper":  # G_ema averaged the buffers too: its BN statistics are not G's
        g_stats = task.generator.blocks[0][0].bn1.bn.running_mean
        assert not torch.equal(task.generator_ema.blocks[0][0].bn1.bn.running_mean, g_stats)
