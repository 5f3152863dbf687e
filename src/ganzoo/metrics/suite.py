"""The metrics by name, and a suite that feeds them from shared feature extractors.

`METRICS` is the registry behind ``conf/metrics/<name>.yaml`` (an unknown name lists the valid
ones). A `MetricSuite` holds the torchmetrics `Metric`s of the selected names and the networks
they need, runs each network once per batch and feeds every metric that reads its output:

| name       | outputs                                 | features                         |
| ---------- | --------------------------------------- | -------------------------------- |
| fid        | fid                                     | Inception pool3 (2048), real vs generated |
| kid        | kid_mean, kid_std                       | Inception pool3                  |
| is         | is_mean, is_std                         | Inception logits of the generated images |
| pr         | precision, recall                       | Inception pool3                  |
| miou       | miou, pixel_accuracy                    | the data's segmenter on generated images |
| domain     | domain_fid, class_accuracy              | the synthetic scene evaluator    |
| attributes | attr_acc/<target>, attr_acc/mean, attr_kept | the attribute classifier     |
| target_fid | target_fid/<domain>, target_fid_mean    | Inception pool3 per target domain |
| rprecision | rprecision_mean, rprecision_std         | the task's DAMSM codes           |

The last three score what only some tasks make: a metric with a `view` reads that view of the
task for each evaluated batch (GANTask.evaluation_view: "translations" of StarGAN,
"text_image_codes" of AttnGAN) through `update_views`, beside the generated images.

Real features are either streamed (`update_real`, e.g. a folder of images) or set once as a
reference (`set_reference`, e.g. from the cache of ganzoo.metrics.cache), see
ganzoo.metrics.generative.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from ganzoo.core.errors import ConfigError
from ganzoo.metrics.agreement import ClassAccuracy, SegmentationAgreement
from ganzoo.metrics.attribute_classifier import AttributeClassifier
from ganzoo.metrics.generative import (
    FrechetDistance,
    InceptionScore,
    KernelDistance,
    PrecisionRecall,
)
from ganzoo.metrics.r_precision import RPrecision
from ganzoo.metrics.translation import TargetFID, TranslationAccuracy


@dataclass(frozen=True)
class MetricInfo:
    """One metric name: what it reports, its settings, what it needs."""

    description: str
    outputs: tuple[str, ...]  # keys of its numbers (logged as metrics/<key>)
    settings: tuple[str, ...]  # valid keys of metrics.compute.<name>
    space: str  # network it needs: "inception", "scene", "segmenter", "classifier", "task"
    uses_real: bool  # compares generated with real images
    view: str | None = None  # the task's evaluation view it reads (GANTask.evaluation_views)


METRICS: dict[str, MetricInfo] = {
    "fid": MetricInfo("Frechet Inception distance", ("fid",), (), "inception", True),
    "kid": MetricInfo(
        "kernel Inception distance",
        ("kid_mean", "kid_std"),
        ("subsets", "subset_size", "seed"),
        "inception",
        True,
    ),
    "is": MetricInfo(
        "Inception score", ("is_mean", "is_std"), ("splits", "seed"), "inception", False
    ),
    "pr": MetricInfo(
        "improved precision and recall", ("precision", "recall"), ("k",), "inception", True
    ),
    "miou": MetricInfo(
        "mIoU and pixel accuracy of segmented generated images against their input label maps",
        ("miou", "pixel_accuracy"),
        (),
        "segmenter",
        False,
    ),
    "domain": MetricInfo(
        "Frechet distance and scene-class accuracy in the synthetic scene evaluator's space",
        ("domain_fid", "class_accuracy"),
        (),
        "scene",
        True,
    ),
    "attributes": MetricInfo(
        "per-target attribute accuracy of translated images (attribute classifier; StarGAN)",
        ("attr_acc/mean", "attr_kept"),
        (),
        "classifier",
        False,
        "translations",
    ),
    "target_fid": MetricInfo(
        "FID per target domain of translated images against the real images of that domain",
        ("target_fid_mean",),
        ("min_samples",),
        "inception",
        True,
        "translations",
    ),
    "rprecision": MetricInfo(
        "R-precision: top-1 retrieval of the true caption among `candidates` (DAMSM; AttnGAN)",
        ("rprecision_mean", "rprecision_std"),
        ("candidates", "splits", "seed"),
        "task",
        False,
        "text_image_codes",
    ),
}


def check_metrics(compute: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Validate metrics.compute (name -> settings); one-line errors list the valid names/keys."""
    out: dict[str, dict[str, Any]] = {}
    for name, settings in compute.items():
        if name not in METRICS:
            raise ConfigError(f"unknown metric {name!r}; valid metrics: {', '.join(METRICS)}")
        settings = dict(settings or {})
        unknown = sorted(set(settings) - set(METRICS[name].settings))
        if unknown:
            valid = ", ".join(METRICS[name].settings) or "none"
            raise ConfigError(
                f"unknown key metrics.compute.{name}.{unknown[0]}; valid keys: {valid}"
            )
        out[name] = settings
    return out


@dataclass(frozen=True)
class MetricSettings:
    """conf/metrics: which metrics, how often, on how many samples (see _base.yaml)."""

    compute: dict[str, dict[str, Any]]  # name -> settings
    every_n_iterations: int  # evaluation period during training (0: only at the end)
    num_samples: int  # generated images per evaluation
    num_real: int | None  # real reference images (None: num_samples)
    split: str | None  # reference split (None: the data's sample_split)
    batch_size: int  # images per forward
    seed: int  # latents and generator noise during evaluation
    resize: str  # Inception resize policy: tf_bilinear | clean
    scene_evaluator: dict[str, Any]  # training recipe of the synthetic evaluator
    attribute_classifier: dict[str, Any]  # training recipe of metrics=attributes' classifier

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> MetricSettings:
        valid = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - valid)
        missing = sorted(valid - set(values))
        if unknown or missing:
            key = unknown[0] if unknown else missing[0]
            what = "unknown" if unknown else "missing"
            raise ConfigError(f"{what} key metrics.{key}; valid keys: {', '.join(sorted(valid))}")
        values = dict(values)
        values["compute"] = check_metrics(values["compute"] or {})
        if values["num_samples"] < 2 or values["batch_size"] < 1:
            raise ConfigError("metrics.num_samples must be >= 2 and metrics.batch_size >= 1")
        return cls(**values)


class Segmenter(Protocol):
    """What `miou` needs: a network that labels each pixel of an image."""

    num_labels: int

    def segment(self, images: Tensor) -> Tensor:
        """(N, 3, H, W) in [-1, 1] -> (N, H, W) long in [0, num_labels)."""
        ...

    def targets(self, label_map: Tensor) -> Tensor:
        """The input label map (N, H, W) in the segmenter's classes (ignored pixels: 255)."""
        ...

    def provenance(self) -> dict[str, Any]: ...


class MetricSuite(nn.Module):
    """The selected metrics and their feature extractors (all moved together by `.to`)."""

    def __init__(
        self,
        compute: Mapping[str, Mapping[str, Any]],  # checked metrics.compute
        inception: nn.Module | None,  # InceptionFeatures, needed by fid, kid, is, pr
        scene: nn.Module | None,  # SceneEvaluator, needed by domain
        segmenter: Segmenter | None,  # needed by miou
        class_conditional: bool = False,  # domain reports class accuracy (class follows input)
        classifier: AttributeClassifier | None = None,  # needed by attributes
        attribute_names: Sequence[str] | None = None,  # the data's attributes (target_fid)
    ) -> None:
        super().__init__()
        self.compute_settings = check_metrics(compute)
        self.names = list(self.compute_settings)
        spaces = {METRICS[n].space for n in self.names}
        for space, given in (
            ("inception", inception),
            ("scene", scene),
            ("segmenter", segmenter),
            ("classifier", classifier),
        ):
            if space in spaces and given is None:
                users = [n for n in self.names if METRICS[n].space == space]
                raise ConfigError(f"metrics {', '.join(users)} need the {space} network")
        self.inception = inception if "inception" in spaces else None
        self.scene = scene if "scene" in spaces else None
        self.segmenter = segmenter if "segmenter" in spaces else None
        self.classifier = classifier if "classifier" in spaces else None
        if "target_fid" in self.names and not attribute_names:
            raise ConfigError("metrics=target_fid needs the data's attribute names")
        self.attribute_names = list(attribute_names or ())
        self.class_conditional = class_conditional
        built = self._build()
        self.metrics = nn.ModuleDict(built)  # registered, so `.to` moves their states
        self._m: dict[str, Any] = built  # the same objects, typed for the calls below

    def _build(self) -> dict[str, nn.Module]:
        s = self.compute_settings
        built: dict[str, nn.Module] = {}
        if "fid" in s:
            built["fid"] = FrechetDistance()
        if "kid" in s:
            built["kid"] = KernelDistance(**s["kid"])
        if "is" in s:
            built["is"] = InceptionScore(**s["is"])
        if "pr" in s:
            built["pr"] = PrecisionRecall(**s["pr"])
        if "miou" in s:
            assert self.segmenter is not None
            built["miou"] = SegmentationAgreement(int(self.segmenter.num_labels))
        if "domain" in s:
            built["domain_fid"] = FrechetDistance()
            built["class_accuracy"] = ClassAccuracy()
        if "attributes" in s:
            assert self.classifier is not None
            built["attributes"] = TranslationAccuracy(self.classifier)
        if "target_fid" in s:
            built["target_fid"] = TargetFID(self.attribute_names, **s["target_fid"])
        if "rprecision" in s:
            built["rprecision"] = RPrecision(**s["rprecision"])
        return built

    def views(self) -> list[str]:
        """The task evaluation views the selected metrics read (GANTask.evaluation_views)."""
        return sorted({v for n in self.names if (v := METRICS[n].view) is not None})

    # ----- features -----------------------------------------------------------------
    def reference_spaces(self) -> list[str]:
        """Feature spaces whose real features the metrics compare with ("inception", "scene")."""
        spaces = {METRICS[n].space for n in self.names if METRICS[n].uses_real}
        return sorted(spaces)

    @torch.no_grad()
    def real_features(self, images: Tensor, spaces: list[str] | None = None) -> dict[str, Tensor]:
        """Features of real images (N, 3, H, W) in [-1, 1] per reference space (default: all
        of them), on the CPU."""
        out = {}
        for space in self.reference_spaces() if spaces is None else spaces:
            if space == "inception":
                assert self.inception is not None
                out[space] = self.inception(images)["pool"].cpu()
            elif space == "scene":
                assert self.scene is not None
                out[space] = self.scene(images)["features"].cpu()
        return out

    def _real_metrics(self, space: str) -> list[Any]:
        keys = ("fid", "kid", "pr") if space == "inception" else ("domain_fid",)
        return [self._m[k] for k in keys if k in self._m]

    def set_reference(
        self, features: Mapping[str, Tensor], attributes: Tensor | None = None
    ) -> None:
        """Real features (N, D) per space, the same on every process (not gathered); with
        target_fid, the attributes (N, A) of those real images."""
        for space in self.reference_spaces():
            for metric in self._real_metrics(space):
                metric.set_reference(features[space])
        if "target_fid" in self._m:
            if attributes is None:
                raise ConfigError("metrics=target_fid needs the attributes of the real images")
            self._m["target_fid"].set_reference(features["inception"], attributes)

    def update_real(self, images: Tensor) -> None:
        """Stream real images (each process its own share; gathered at compute)."""
        for space, feats in self.real_features(images).items():
            for metric in self._real_metrics(space):
                metric.update(feats.to(metric.device), real=True)

    @torch.no_grad()
    def update_fake(
        self, images: Tensor, label_map: Tensor | None = None, class_id: Tensor | None = None
    ) -> None:
        """Generated images (N, 3, H, W) in [-1, 1]; the label maps / classes they were made for."""
        m = self._m
        if self.inception is not None and m.keys() & {"fid", "kid", "pr", "is"}:
            out = self.inception(images)
            for key in ("fid", "kid", "pr"):
                if key in m:
                    m[key].update(out["pool"], real=False)
            if "is" in m:
                m["is"].update(out["logits"], real=False)
        if self.scene is not None:
            out = self.scene(images)
            m["domain_fid"].update(out["features"], real=False)
            if self.class_conditional and class_id is not None:
                m["class_accuracy"].update(out["class_logits"], class_id)
        if self.segmenter is not None:
            if label_map is None:
                raise ConfigError("metrics=miou needs the label maps the images were made from")
            target = self.segmenter.targets(label_map)
            m["miou"].update(self.segmenter.segment(images), target)

    @torch.no_grad()
    def update_views(self, views: Mapping[str, Any]) -> None:
        """What the task made of one batch for the metrics with a view (see `views`)."""
        m = self._m
        if "attributes" in m:
            m["attributes"].update(views["translations"])
        if "target_fid" in m:
            assert self.inception is not None
            for name, target, images in views["translations"]:
                m["target_fid"].update(name, target, self.inception(images)["pool"])
        if "rprecision" in m:
            m["rprecision"].update(*views["text_image_codes"])

    # ----- results ------------------------------------------------------------------
    def compute(self) -> dict[str, float]:
        """The numbers, flat: {"fid": ..., "kid_mean": ..., ...} (syncs across processes)."""
        m = self._m
        out: dict[str, float] = {}
        if "fid" in m:
            out["fid"] = float(m["fid"].compute())
        if "kid" in m:
            out["kid_mean"], out["kid_std"] = m["kid"].compute().tolist()
        if "is" in m:
            out["is_mean"], out["is_std"] = m["is"].compute().tolist()
        if "pr" in m:
            out["precision"], out["recall"] = m["pr"].compute().tolist()
        if "miou" in m:
            out.update({k: float(v) for k, v in m["miou"].compute().items()})
        if "domain_fid" in m:
            out["domain_fid"] = float(m["domain_fid"].compute())
            if self.class_conditional:
                out["class_accuracy"] = float(m["class_accuracy"].compute())
        for key in ("attributes", "target_fid"):
            if key in m:
                out.update(m[key].compute())
        if "rprecision" in m:
            out["rprecision_mean"], out["rprecision_std"] = m["rprecision"].compute()
        return out

    def reset(self) -> None:
        """Forget the generated (and streamed real) samples; a reference is kept."""
        for metric in self._m.values():
            metric.reset()

    def provenance(self) -> dict[str, Any]:
        """Settings, networks (weight files and hashes, resize policy) and sample counts."""
        out: dict[str, Any] = {"settings": self.compute_settings}
        for name, net in (("inception", self.inception), ("scene_evaluator", self.scene)):
            if net is not None:
                out[name] = net.provenance()  # type: ignore[operator]
        if self.segmenter is not None:
            out["segmenter"] = self.segmenter.provenance()
        if self.classifier is not None:
            out["attribute_classifier"] = self.classifier.provenance()
        counts = {
            k: v.last_counts for k, v in self.metrics.items() if getattr(v, "last_counts", None)
        }
        if counts:
            out["samples"] = counts
        if "kid" in self.metrics:
            out["kid_subset_size"] = self._m["kid"].last_subset_size
        return out
