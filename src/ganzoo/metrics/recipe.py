"""How ganzoo trains its own small evaluator networks (the synthetic scene evaluator, the
attribute classifier): Adam with a one-cycle lr schedule on random batches of a fixed set of
samples, seeded by the recipe and leaving the global RNG untouched.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

from ganzoo.core.config import dataclass_from_dict

R = TypeVar("R", bound="EvaluatorRecipe")
Net = TypeVar("Net", bound=nn.Module)


@dataclass(frozen=True)
class EvaluatorRecipe:
    """How an evaluator network is trained (conf/metrics/_base.yaml)."""

    train_samples: int = 1024  # training samples
    steps: int = 300  # Adam steps
    batch_size: int = 32  # samples per step
    lr: float = 0.003  # peak lr of the one-cycle schedule
    seed: int = 0  # initialisation and batch order

    @classmethod
    def from_dict(cls: type[R], values: Mapping[str, Any], where: str) -> R:
        return dataclass_from_dict(cls, values, where)


def fit(
    make_net: Callable[[], Net],  # builds the network (under the recipe's seed)
    num_samples: int,  # batches index 0 .. num_samples - 1
    recipe: EvaluatorRecipe,
    loss: Callable[[Net, Tensor, torch.Generator], Tensor],  # (net, batch indices, rng) -> loss
) -> Net:
    """The trained network in eval mode without gradients; the global RNG is untouched."""
    # enable_grad: the first use may come from inside an evaluation's no_grad block
    with torch.random.fork_rng(devices=[]), torch.enable_grad():
        torch.manual_seed(recipe.seed)
        net = make_net()
        opt = torch.optim.Adam(net.parameters(), lr=recipe.lr)
        schedule = torch.optim.lr_scheduler.OneCycleLR(opt, recipe.lr, total_steps=recipe.steps)
        order = torch.Generator().manual_seed(recipe.seed)
        net.train()
        for _ in range(recipe.steps):
            idx = torch.randint(num_samples, (recipe.batch_size,), generator=order)
            value = loss(net, idx, order)
            opt.zero_grad(set_to_none=True)
            value.backward()
            opt.step()
            schedule.step()
    return net.eval().requires_grad_(False)
