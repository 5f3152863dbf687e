"""How ganzoo trains its own small evaluator networks (the synthetic scene evaluator, the
attribute classifier): Adam with a one-cycle lr schedule on random batches of a fixed set of
samples, seeded by the recipe and leaving the global RNG untouched.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

from ganzoo.core.config import dataclass_from_dict
from ganzoo.core.console import progress

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
    name: str = "evaluator",  # for the progress bar
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
        with progress(recipe.steps, f"training the {name} (cached after)", "step") as bar:
            for _ in range(recipe.steps):
                idx = torch.randint(num_samples, (recipe.batch_size,), generator=order)
                value = loss(net, idx, order)
                opt.zero_grad(set_to_none=True)
                value.backward()
                opt.step()
                schedule.step()
                bar.update(1)
    return net.eval().requires_grad_(False)


def rendered(dataset: Sequence[Mapping[str, Tensor]], count: int, what: str) -> list[Any]:
    """Items 0 .. count - 1 of `dataset`, with a progress bar (procedural scenes take a while)."""
    samples = []
    with progress(count, f"rendering {what}", "img") as bar:
        for i in range(count):
            samples.append(dataset[i])
            bar.update(1)
    return samples
