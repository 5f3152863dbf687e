"""FID, KID, IS and improved precision / recall as torchmetrics `Metric`s over features.

The states are the features themselves, gathered across processes with ``dist_reduce_fx="cat"``,
so a run on W processes, each updating with its contiguous share of the samples, computes the
number of one process that saw all of them (same order, so the same KID subsets too).

Real features come one of two ways:
- streamed: ``update(features, real=True)`` on each rank (gathered like the fake ones);
- a reference: ``set_reference(features)`` with the whole real set, identical on every rank (e.g.
  loaded from the real-statistics cache). It is not a state: never gathered, kept by ``reset()``.

Features are computed by a feature extractor outside the metric (ganzoo.metrics.inception or the
synthetic scene evaluator), so one Inception forward feeds FID, KID and precision / recall.
The formulas are in ganzoo.metrics.functional.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from ganzoo.metrics import functional


class _FeatureSets(Metric):
    """Real and fake feature matrices (N, D), concatenated over updates and processes."""

    full_state_update = False
    is_differentiable = False
    real: list[Tensor]
    fake: list[Tensor]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("real", default=[], dist_reduce_fx="cat")
        self.add_state("fake", default=[], dist_reduce_fx="cat")
        self._reference: Tensor | None = None
        self.last_counts: dict[str, int] = {}  # samples of the last compute (all processes)

    def update(self, features: Tensor, real: bool) -> None:
        """Add features (N, D) of real or generated images."""
        if features.ndim != 2:
            raise ValueError(f"expected features (N, D), got shape {tuple(features.shape)}")
        (self.real if real else self.fake).append(features.detach().float())

    def set_reference(self, features: Tensor | None) -> None:
        """Use these real features (N, D), the same on every rank, instead of streamed ones."""
        self._reference = None if features is None else features.detach().float()

    def _features(self, which: str) -> Tensor:
        if which == "real" and self._reference is not None:
            return self._reference.to(self.device)
        state = getattr(self, which)
        values = dim_zero_cat(state) if isinstance(state, list) and state else state
        if not isinstance(values, Tensor) or values.numel() == 0:
            raise ValueError(f"{type(self).__name__}: no {which} features were given")
        return values

    def _pair(self) -> tuple[Tensor, Tensor]:
        """(real, fake) features after syncing; records how many of each in `last_counts`."""
        real, fake = self._features("real"), self._features("fake")
        self.last_counts = {"real": int(real.shape[0]), "fake": int(fake.shape[0])}
        return real, fake


class FrechetDistance(_FeatureSets):
    """FID (Heusel et al. 2017) when fed Inception pool3 features; any feature space works."""

    higher_is_better = False

    def compute(self) -> Tensor:
        real, fake = self._pair()
        fid = functional.frechet_distance(real, fake)
        return torch.tensor(fid, dtype=torch.float64)


class KernelDistance(_FeatureSets):
    """KID (Binkowski et al. 2018): mean and std of the unbiased MMD^2 over random subsets.

    With fewer samples than `subset_size`, the subsets hold all of them (the size used is
    `last_subset_size`, recorded with the numbers).
    """

    higher_is_better = False

    def __init__(
        self,
        subsets: int = 100,  # random subsets (torch-fidelity default)
        subset_size: int = 1000,  # samples per subset (torch-fidelity default)
        seed: int = 2020,  # RandomState seed of the subsets
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.subsets = subsets
        self.subset_size = subset_size
        self.seed = seed
        self.last_subset_size = subset_size

    def compute(self) -> Tensor:
        real, fake = self._pair()
        self.last_subset_size = min(self.subset_size, len(real), len(fake))
        mean, std = functional.kernel_inception_distance(
            real, fake, self.subsets, self.last_subset_size, self.seed
        )
        return torch.tensor([mean, std], dtype=torch.float64)


class InceptionScore(_FeatureSets):
    """IS (Salimans et al. 2016) of the generated images' class logits: (mean, std) over splits."""

    higher_is_better = True

    def __init__(
        self,
        splits: int = 10,  # the original protocol
        seed: int | None = 2020,  # shuffle seed before splitting (None: keep the order)
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.splits = splits
        self.seed = seed

    def compute(self) -> Tensor:
        fake = self._features("fake")
        self.last_counts = {"fake": int(fake.shape[0])}
        mean, std = functional.inception_score(fake, self.splits, self.seed)
        return torch.tensor([mean, std], dtype=torch.float64)


class PrecisionRecall(_FeatureSets):
    """Improved precision and recall (Kynkaanniemi et al. 2019) with k-NN radii: (P, R)."""

    higher_is_better = True

    def __init__(self, k: int = 3, **kwargs: Any) -> None:  # k: the paper's neighbourhood size
        super().__init__(**kwargs)
        self.k = k

    def compute(self) -> Tensor:
        real, fake = self._pair()
        precision, recall = functional.precision_recall(real, fake, self.k)
        return torch.tensor([precision, recall], dtype=torch.float64)
