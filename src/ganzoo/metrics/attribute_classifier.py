"""An attribute classifier that answers "did the attribute change?" for attribute translation.

StarGAN's evaluation (Sec. 4.6, Table 3) classifies translated images with a classifier trained
on the real training images: a translation counts when the classifier sees the target label.
No such network can be downloaded for the embedded scenes, so ganzoo trains one: a small CNN
(4 stride-2 stages of 16-96 channels, BatchNorm, ReLU, global average and max pooling, a linear
layer with one logit per binary attribute) trained with BCE on the training split, and cached
under ``paths.cache_dir`` keyed by the recipe, the attribute names, the resolution and a
fingerprint of the training images (ganzoo.metrics.cache), so it is trained once.

On data=synthetic (2048 scenes, 400 Adam steps of 64, one-cycle lr) training takes about 8 s
at 32x32 on one CPU thread; held-out accuracy (``provenance()["holdout"]``) is 1.0 for night,
0.98-1.0 for water, mountains and a red object, 0.86-0.89 for a large object and 0.63-0.67 for a
circle (small at these sizes) at 32x32-64x64.

`load_or_train(dataset, description, attribute_names, recipe, cache_dir)` returns an
`AttributeClassifier`; for each target column (the task's `translation_targets`: a label vector
per image) translate the real images with the generator and call
`translation_scores(classifier, targets, translated, names)` (metrics=attributes does this
through ganzoo.metrics.translation.TranslationAccuracy). It returns per-target
`attr_acc/<name>` (the share of images whose *target* attribute the classifier sees after
translation: "did it change?"), `attr_acc/mean`, and `attr_kept` (accuracy on the attributes
the target leaves as they were). `provenance()` names the weights file and its SHA-256.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganzoo.core.errors import ConfigError
from ganzoo.core.weights import sha256_of
from ganzoo.metrics.cache import ManifestCache, fingerprint
from ganzoo.metrics.recipe import EvaluatorRecipe, fit, rendered

_ARCHITECTURE = "attribute-net-v1"  # bump when AttributeNet changes (part of the cache manifest)
_META = "meta."  # payload keys that are not weights
HOLDOUT = 256  # samples after the training ones, for the classifier's own accuracy


class AttributeNet(nn.Module):
    """images (N, 3, H, W) in [-1, 1] -> attribute logits (N, A); any resolution >= 16."""

    def __init__(
        self,
        num_attributes: int,  # binary attributes (synthetic: 6; CelebA selection: 5)
        widths: tuple[int, int, int, int] = (16, 32, 64, 96),  # channels at 1/2 .. 1/16
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for w in widths:
            layers += [
                nn.Conv2d(c_in, w, 3, 2, 1, bias=False),
                nn.BatchNorm2d(w),
                nn.ReLU(True),
                nn.Conv2d(w, w, 3, 1, 1, bias=False),
                nn.BatchNorm2d(w),
                nn.ReLU(True),
            ]
            c_in = w
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(2 * c_in, num_attributes)  # on [mean, max] pooled features

    def forward(self, images: Tensor) -> Tensor:
        h = self.features(images)  # (N, C, H/16, W/16)
        pooled = torch.cat([h.mean((2, 3)), h.amax((2, 3))], dim=1)  # (N, 2C)
        return self.head(pooled)  # (N, A)


@dataclass(frozen=True)
class AttributeRecipe(EvaluatorRecipe):
    """How the classifier is trained (metrics.attribute_classifier)."""

    train_samples: int = 2048  # training images
    steps: int = 400  # Adam steps
    batch_size: int = 64  # images per step


def train_attribute_net(
    images: Tensor, attributes: Tensor, recipe: AttributeRecipe
) -> AttributeNet:
    """BCE training with random flips; the global RNG is untouched. images (N, 3, H, W) in
    [-1, 1], attributes (N, A) 0/1."""

    def loss(net: AttributeNet, idx: Tensor, rng: torch.Generator) -> Tensor:
        flip = torch.rand(len(idx), generator=rng) < 0.5
        x = torch.where(flip[:, None, None, None], images[idx].flip(3), images[idx])
        return F.binary_cross_entropy_with_logits(net(x), attributes[idx].float())

    return fit(
        lambda: AttributeNet(attributes.shape[1]), len(images), recipe, loss, "attribute classifier"
    )


def attribute_accuracy(predicted: Tensor, target: Tensor) -> Tensor:
    """Per-attribute accuracy (A,) of 0/1 predictions (N, A) against targets (N, A)."""
    return (predicted.float() == (target.float() > 0.5).float()).float().mean(0)


class AttributeClassifier(nn.Module):
    """A trained AttributeNet, its attribute names and where it came from (always in eval)."""

    def __init__(self, net: AttributeNet, names: Sequence[str], provenance: dict[str, Any]) -> None:
        super().__init__()
        self.net = net.eval().requires_grad_(False)
        self.names = list(names)
        self._provenance = provenance

    def train(self, mode: bool = True) -> AttributeClassifier:
        return super().train(False)

    def provenance(self) -> dict[str, Any]:
        return dict(self._provenance)

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:
        """images (N, 3, H, W) in [-1, 1] -> logits (N, A)."""
        return self.net(images.float())

    def predict(self, images: Tensor) -> Tensor:
        """0/1 attributes (N, A) float."""
        return (self(images) > 0).float()

    def accuracy(self, images: Tensor, targets: Tensor) -> Tensor:
        """Per-attribute accuracy (A,) of the classifier's reading of images against targets."""
        return attribute_accuracy(self.predict(images), targets)


def translation_scores(
    classifier: AttributeClassifier,
    targets: Sequence[Tensor],  # per target column: labels (N, >= A); the first A are attributes
    translated: Sequence[Tensor],  # per target column: the translated images (N, 3, H, W)
    names: Sequence[str],  # per target column: the attribute it sets (one of classifier.names)
) -> dict[str, float]:
    """attr_acc/<name>: share of images whose target attribute is read after translation;
    attr_acc/mean over the columns; attr_kept: accuracy on the attributes a column leaves."""
    if not len(targets) == len(translated) == len(names):
        raise ValueError("translation_scores needs one target, image batch and name per column")
    predicted = [classifier.predict(images) for images in translated]
    return prediction_scores(classifier.names, names, targets, predicted)


def prediction_scores(
    attribute_names: Sequence[str],  # the classifier's attributes (A)
    names: Sequence[str],  # per target column: the attribute it sets
    targets: Sequence[Tensor],  # per column: labels (N, >= A)
    predicted: Sequence[Tensor],  # per column: the classifier's 0/1 reading (N, A)
) -> dict[str, float]:
    """The scores of `translation_scores` from the classifier's readings."""
    a = len(attribute_names)
    scores: dict[str, float] = {}
    kept_hits, kept_total = 0.0, 0
    for name, c, reading in zip(names, targets, predicted, strict=True):
        if name not in attribute_names:
            valid = ", ".join(attribute_names)
            raise ConfigError(f"no attribute {name}; the classifier has {valid}")
        j = list(attribute_names).index(name)
        correct = reading == (c[:, :a].to(reading.device) > 0.5).float()
        scores[f"attr_acc/{name}"] = float(correct[:, j].float().mean())
        others = [k for k in range(a) if k != j]
        kept_hits += float(correct[:, others].float().sum())
        kept_total += correct[:, others].numel()
    scores["attr_acc/mean"] = sum(scores.values()) / len(names)
    scores["attr_kept"] = kept_hits / max(kept_total, 1)
    return scores


def load_or_train(
    dataset: Sequence[Mapping[str, Tensor]],  # training samples: dicts with image, attributes
    description: Mapping[str, Any],  # what the dataset is (adapter, seed, split, resolution)
    attribute_names: Sequence[str],  # one name per attribute column
    recipe: AttributeRecipe,
    cache_dir: str | Path,  # paths.cache_dir
) -> AttributeClassifier:
    """The cached classifier for this dataset and recipe, trained and cached on a miss."""
    needed = recipe.train_samples + HOLDOUT
    if len(dataset) < needed:
        raise ConfigError(f"the attribute classifier needs {needed} samples, got {len(dataset)}")
    probe = [dataset[i] for i in range(4)]
    if probe[0]["attributes"].shape[0] != len(attribute_names):
        raise ConfigError(
            f"the data has {probe[0]['attributes'].shape[0]} attributes, "
            f"{len(attribute_names)} names given"
        )
    manifest = {
        "architecture": _ARCHITECTURE,
        "dataset": dict(description),
        "attribute_names": list(attribute_names),
        "recipe": asdict(recipe),
        "data_fingerprint": fingerprint(
            *(torch.stack([s[k] for s in probe]) for k in ("image", "attributes"))
        ),
    }
    cache = ManifestCache(cache_dir, "attribute_classifier")
    stored = cache.load(manifest)
    if stored is None:
        start = time.perf_counter()
        samples = rendered(dataset, needed, "images for the attribute classifier")
        images = torch.stack([s["image"] for s in samples])
        attrs = torch.stack([s["attributes"] for s in samples])
        n = recipe.train_samples
        net = train_attribute_net(images[:n], attrs[:n], recipe)
        with torch.no_grad():
            holdout = attribute_accuracy((net(images[n:]) > 0).float(), attrs[n:])
        report = {"train_seconds": time.perf_counter() - start}
        report.update(
            {f"holdout_{k}": float(v) for k, v in zip(attribute_names, holdout, strict=True)}
        )
        meta = {f"{_META}{k}": torch.tensor(v, dtype=torch.float64) for k, v in report.items()}
        cache.save(manifest, {**net.state_dict(), **meta})
        stored = cache.load(manifest)
        assert stored is not None
    report = {k[len(_META) :]: float(stored.pop(k)) for k in list(stored) if k.startswith(_META)}
    net = AttributeNet(len(attribute_names))
    net.load_state_dict(stored)
    payload = cache.directory(manifest) / "payload.pt"
    return AttributeClassifier(
        net,
        attribute_names,
        {
            "classifier": f"ganzoo {_ARCHITECTURE} trained on {description.get('name', 'data')}",
            "weights": str(payload),
            "weights_sha256": sha256_of(payload),
            "train_seconds": round(report.pop("train_seconds"), 1),
            "holdout": {k[len("holdout_") :]: round(v, 4) for k, v in report.items()},
        },
    )
