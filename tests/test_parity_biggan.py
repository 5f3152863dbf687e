"""BigGAN training parity (issue 14): ganzoo's BigGanTask, from the official random-init weights,
batches and latent draws of tests/golden/biggan, reaches the official G, D and G_ema after 3
official iterations (6 ganzoo iterations: the paper's 2 D steps per G step)."""

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


def relative_error(ours: Tensor, theirs: Tensor) -> float:
    scale = theirs.float().abs().max().clamp_min(1e-12)
    return ((ours.float() - theirs.float()).abs().max() / scale).item()


def test_three_official_iterations_reach_the_official_g_d_and_g_ema(make_cfg) -> None:
    task = build_task(make_cfg(*SMALL, *RECIPE))
    assert isinstance(task, BigGanTask)
    task.load_state_dict(official.assemble(task, convert(GOLDEN / "init", task)))
    golden = torch.load(GOLDEN / "train.pt")
    replay_draws(task, golden["draws"])
    samples = []
    for batch in golden["batches"]:  # each official batch = num_D_steps ganzoo batches
        samples += [
            {"image": x, "class_id": y} for x, y in zip(batch["x"], batch["y"], strict=True)
        ]
    trainer = pl.Trainer(
        max_epochs=1,
        limit_train_batches=len(samples) // 4,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    trainer.fit(task, DataLoader(samples, batch_size=4, collate_fn=collate))
    assert int(task.iteration) == 6 and task.g_updates() == 4  # 3 G updates done

    errors = {}
    for name, ours, file in (
        ("G", task.generator, "G.pth"),
        ("G_ema", task.generator_ema, "G_ema.pth"),
        ("D", task.discriminator, "D.pth"),
    ):
        theirs = torch.load(GOLDEN / "trained" / file)
        if name != "D":
            theirs = generator_state(theirs)
        mine = ours.state_dict()
        for key, value in theirs.items():
            if key.endswith("num_batches_tracked"):
                continue  # ganzoo counts batches; the official BN has no counter
            errors[f"{name}.{key}"] = relative_error(mine[key], value)
    worst = max(errors, key=errors.__getitem__)
    assert errors[worst] <= 1e-6, f"{worst}: relative error {errors[worst]:.2e}"
    # G_ema averaged the buffers too: its BN statistics are not G's
    g_stats = task.generator.blocks[0][0].bn1.bn.running_mean
    assert not torch.equal(task.generator_ema.blocks[0][0].bn1.bn.running_mean, g_stats)
