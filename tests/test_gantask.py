"""The GANTask base on a toy GAN: phase schedule, lazy-regularisation scaling, EMA, clipping."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import pytorch_lightning as pl
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from ganzoo.core.errors import ConfigError
from ganzoo.data.batch import Batch, collate
from ganzoo.nn.ema import ema_beta, update_ema
from ganzoo.tasks.base import GANTask, OptimSpec, Phase

OPTIM = {"lr_g": 1e-2, "lr_d": 4e-2, "betas_g": [0.0, 0.99], "betas_d": [0.0, 0.99]}


class ToyTask(GANTask):
    def __init__(self, lazy_every: int = 4, n_critic: int = 2, **optim: object) -> None:
        super().__init__(nn.Linear(2, 3), nn.Linear(3, 1), {**OPTIM, **optim}, {"decay": 0.5}, 100)
        self.lazy_every = lazy_every
        self.n_critic = n_critic
        self.calls: list[tuple[int, str]] = []
        self.grad_norms: list[float] = []

    def phases(self) -> Sequence[Phase]:
        return (
            Phase("D", "D", "d_main"),
            Phase("D_reg", "D", "d_reg", every=self.lazy_every, lazy=True),
            Phase(
                "G", "G", "g_main", every=self.n_critic, offset=self.n_critic - 1, updates_ema=True
            ),
        )

    def _fake(self, n: int) -> Tensor:
        return self.generator(torch.randn(n, 2))

    def d_main(self, batch: Batch) -> dict[str, Tensor]:
        self.calls.append((int(self.iteration), "D"))
        real = self.discriminator(batch.image.flatten(1)[:, :3])
        fake = self.discriminator(self._fake(batch.size).detach())
        return {
            "real": nn.functional.softplus(-real).mean(),
            "fake": nn.functional.softplus(fake).mean(),
        }

    def d_reg(self, batch: Batch) -> dict[str, Tensor]:
        self.calls.append((int(self.iteration), "D_reg"))
        return {"l2": self.discriminator.weight.pow(2).sum()}

    def g_main(self, batch: Batch) -> dict[str, Tensor]:
        self.calls.append((int(self.iteration), "G"))
        return {
            "gan": nn.functional.softplus(-self.discriminator(self._fake(batch.size))).mean() * 1e3
        }

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        super().on_before_optimizer_step(optimizer)  # the base class clips here
        grads = [
            p.grad.norm() for g in optimizer.param_groups for p in g["params"] if p.grad is not None
        ]
        self.grad_norms.append(float(torch.stack(grads).norm()))


def _fit(task: ToyTask, steps: int) -> None:
    data = [{"image": torch.randn(3, 1, 1)} for _ in range(4 * steps)]
    trainer = pl.Trainer(
        max_epochs=1,
        limit_train_batches=steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    trainer.fit(task, DataLoader(data, batch_size=4, collate_fn=collate))


def test_phase_schedule_n_critic_and_lazy_interval() -> None:
    task = ToyTask(lazy_every=4, n_critic=2)
    _fit(task, 8)
    assert [i for i, n in task.calls if n == "D"] == list(range(8))
    assert [i for i, n in task.calls if n == "D_reg"] == [0, 4]
    assert [i for i, n in task.calls if n == "G"] == [1, 3, 5, 7]
    assert int(task.iteration) == 8


def test_lazy_regularisation_adjusts_adam_once() -> None:
    task = ToyTask(lazy_every=16)
    opt_g, opt_d = task.configure_optimizers()
    c = 16 / 17
    assert opt_d.param_groups[0]["lr"] == pytest.approx(4e-2 * c)
    assert opt_d.param_groups[0]["betas"] == pytest.approx((0.0, 0.99**c))
    assert opt_g.param_groups[0]["lr"] == pytest.approx(1e-2)  # no lazy phase on G


def test_gradient_clipping_bounds_the_norm_seen_by_the_optimiser() -> None:
    task = ToyTask(clip_g=0.01, n_critic=1)
    _fit(task, 3)
    # hooks run after clipping: every G step (odd entries after each D step) is clipped
    assert max(task.grad_norms) < 1e3
    assert any(abs(n - 0.01) < 1e-4 for n in task.grad_norms)


def test_unknown_optim_key_lists_valid_keys() -> None:
    with pytest.raises(ConfigError, match="unknown key optim.lr_gen; valid keys: betas_d"):
        OptimSpec.from_dict({**OPTIM, "lr_gen": 1.0})


def test_ema_update_and_beta() -> None:
    src, ema = nn.Linear(2, 2), nn.Linear(2, 2)
    before = ema.weight.clone()
    update_ema(ema, src, 0.25)
    assert torch.allclose(ema.weight, 0.25 * before + 0.75 * src.weight)
    assert ema_beta(0.9999, None, None, 32, 0) == 0.9999
    assert ema_beta(0.0, 10.0, None, 32, 10**6) == pytest.approx(0.5 ** (32 / 10000))
    assert ema_beta(0.0, 10.0, 0.05, 32, 1000) == pytest.approx(0.5 ** (32 / 50))


def test_lr_decay_is_linear_to_zero() -> None:
    task = ToyTask(decay_start=0.5, decay_end=1.0)
    assert task._lr_factor(0) == 1.0 and task._lr_factor(50) == 1.0
    assert task._lr_factor(75) == pytest.approx(0.5) and task._lr_factor(100) == 0.0
