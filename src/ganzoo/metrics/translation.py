"""Metrics of attribute translation (StarGAN): did the attribute change, and does it look real?

Both read the task's "translations" view: for a batch of real images, one column per official
translation target (StarGAN's create_labels: flip an attribute, a hair colour one-of, a RaFD
class), each column = (target name, target labels c (N, >= A), translated images (N, 3, H, W)).
So an evaluation of num_samples inputs scores num_samples x columns translated images.

- `TranslationAccuracy` (metrics=attributes): the attribute classifier of
  ganzoo.metrics.attribute_classifier reads the translated images; ``attr_acc/<target>`` is the
  share whose target attribute it sees ("did it change?", StarGAN Sec. 4.6), ``attr_acc/mean``
  their mean over the targets and ``attr_kept`` the accuracy on the attributes a target leaves.
- `TargetFID` (metrics=target_fid): FID per target domain. A column's images fall in the domain
  their target sets: ``<name>`` (attribute on) or ``not_<name>`` (off, a flipped attribute
  that was on); each domain's generated Inception features are compared with the real reference
  images of that domain (same attribute value). ``target_fid/<domain>`` per domain with at least
  `min_samples` real and generated images, ``target_fid_mean`` their mean (the per-domain FID
  of StarGAN v2's evaluation, on StarGAN's targets).

States are concatenated over updates and processes in rank order (torchmetrics "cat"), as in
ganzoo.metrics.generative, so W processes give the numbers of one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from ganzoo.core.errors import ConfigError
from ganzoo.metrics import functional
from ganzoo.metrics.attribute_classifier import AttributeClassifier, prediction_scores

Translations = Sequence[tuple[str, Tensor, Tensor]]  # (target name, c (N, >= A), images)


def _cat(state: Any) -> Tensor:
    return dim_zero_cat(state) if isinstance(state, list) else state


class _ColumnMetric(Metric):
    """Keeps the target names of the columns in the order of the first update."""

    full_state_update = False
    is_differentiable = False

    def __init__(self, attribute_names: Sequence[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.attribute_names = list(attribute_names)

    def _index(self, name: str) -> int:
        if name not in self.attribute_names:
            raise ConfigError(
                f"translation target {name!r} is not an attribute of the data "
                f"({', '.join(self.attribute_names)})"
            )
        return self.attribute_names.index(name)


class TranslationAccuracy(_ColumnMetric):
    """Per-target attribute accuracy of translated images (see the module docstring)."""

    higher_is_better = True
    column: list[Tensor]
    predicted: list[Tensor]
    target: list[Tensor]

    def __init__(self, classifier: AttributeClassifier, **kwargs: Any) -> None:
        super().__init__(classifier.names, **kwargs)
        self.classifier = classifier
        self.add_state("column", default=[], dist_reduce_fx="cat")  # attribute index per image
        self.add_state("predicted", default=[], dist_reduce_fx="cat")  # (N, A) 0/1
        self.add_state("target", default=[], dist_reduce_fx="cat")  # (N, A) 0/1

    def update(self, translations: Translations) -> None:
        a = len(self.attribute_names)
        for name, c, images in translations:
            j = self._index(name)
            self.column.append(torch.full((len(images),), j, device=self.device))
            self.predicted.append(self.classifier.predict(images).to(self.device))
            self.target.append((c[:, :a] > 0.5).float().to(self.device))

    def compute(self) -> dict[str, float]:
        column, predicted, target = (_cat(s) for s in (self.column, self.predicted, self.target))
        if column.numel() == 0:
            raise ValueError("TranslationAccuracy: no translations were given")
        order = [int(j) for j in torch.unique(column)]  # attribute order
        names = [self.attribute_names[j] for j in order]
        rows = [column == j for j in order]
        return prediction_scores(
            self.attribute_names,
            names,
            [target[r] for r in rows],
            [predicted[r] for r in rows],
        )


class TargetFID(_ColumnMetric):
    """FID per target domain of translated images (see the module docstring)."""

    higher_is_better = False
    features: list[Tensor]
    domain: list[Tensor]

    def __init__(
        self,
        attribute_names: Sequence[str],  # the data's attribute columns, in order
        min_samples: int = 2,  # real and generated images a domain needs to get a number
        **kwargs: Any,
    ) -> None:
        super().__init__(attribute_names, **kwargs)
        if min_samples < 2:
            raise ConfigError(
                f"metrics.compute.target_fid.min_samples must be >= 2; got {min_samples}"
            )
        self.min_samples = min_samples
        self.add_state("features", default=[], dist_reduce_fx="cat")  # (N, D)
        self.add_state("domain", default=[], dist_reduce_fx="cat")  # 2 j (on) or 2 j + 1 (off)
        self._reference: tuple[Tensor, Tensor] | None = None
        self.last_counts: dict[str, dict[str, int]] = {}

    def domain_name(self, domain: int) -> str:
        name = self.attribute_names[domain // 2]
        return name if domain % 2 == 0 else f"not_{name}"

    def set_reference(self, features: Tensor, attributes: Tensor) -> None:
        """Real features (N, D) and their attributes (N, A) 0/1, the same on every rank."""
        if len(features) != len(attributes) or attributes.shape[1] < len(self.attribute_names):
            raise ValueError(
                f"reference of {len(features)} features needs (N, {len(self.attribute_names)}) "
                f"attributes, got {tuple(attributes.shape)}"
            )
        a = len(self.attribute_names)
        self._reference = (features.detach().float(), (attributes[:, :a] > 0.5).cpu())

    def update(self, name: str, target: Tensor, features: Tensor) -> None:
        """One column: its target labels (N, >= A) and the translated images' features (N, D)."""
        j = self._index(name)
        on = target[:, j] > 0.5
        self.domain.append(torch.where(on, 2 * j, 2 * j + 1).long().to(self.device))
        self.features.append(features.detach().float().to(self.device))

    def compute(self) -> dict[str, float]:
        if self._reference is None:
            raise ValueError("TargetFID: set_reference(features, attributes) was not called")
        real, real_attrs = self._reference
        fake, domain = _cat(self.features), _cat(self.domain)
        if domain.numel() == 0:
            raise ValueError("TargetFID: no translations were given")
        out: dict[str, float] = {}
        self.last_counts = {}
        for d in (int(v) for v in torch.unique(domain)):
            j, on = d // 2, d % 2 == 0
            real_rows = (real_attrs[:, j] == on).nonzero().squeeze(1)
            fake_d = fake[domain == d]
            name = self.domain_name(d)
            self.last_counts[name] = {"real": len(real_rows), "fake": len(fake_d)}
            if min(len(real_rows), len(fake_d)) < self.min_samples:
                continue
            real_d = real[real_rows].to(fake_d.device)
            out[f"target_fid/{name}"] = functional.frechet_distance(real_d, fake_d)
        if not out:
            raise ValueError(
                f"target_fid: no target domain has {self.min_samples} real and generated images "
                f"({self.last_counts}); raise metrics.num_samples / num_real"
            )
        out["target_fid_mean"] = sum(out.values()) / len(out)
        return out
