"""Metric evaluation of the EMA generator during training, and the pieces ganzoo.evaluate reuses.

Every `metrics.every_n_iterations` iterations and at the end of training, `MetricEvaluation`
generates `metrics.num_samples` images with the EMA generator, one per input of the reference
split (input i = item i mod the split's length, its latents drawn from (seed, i)), scores them
with the metrics of conf/metrics/ (ganzoo.metrics.suite) against the real images of that split,
logs ``metrics/<name>`` to every logger (and, once, the provenance as the hyper-parameter
``metrics_provenance``) and appends one JSON line per evaluation to
``<run_dir>/metrics.jsonl`` on rank 0, with the provenance of the numbers (weight-file hashes,
resize policy, sample counts, split).

Metrics with a task view (metrics=attributes, target_fid: StarGAN's "translations";
metrics=rprecision: AttnGAN's "text_image_codes") get, for each generated batch, what the task's
`evaluation_view` makes of it; `check_views` stops a run at start-up whose model gives no such
view. The attribute classifier of metrics=attributes is trained on the training split and cached
(`train_split_classifier`, ganzoo.metrics.attribute_classifier).

With W processes, each generates a contiguous share of whole batches (`shard`), and the
features are gathered in rank order, i.e. in the order one process would have produced them,
so the numbers are those of a single process. Real features are computed once (rank 0)
and cached under ``paths.cache_dir`` keyed by dataset, split, resolution, sample count, feature
network and its weight hash, resize policy and a fingerprint of the first images
(ganzoo.metrics.cache); every rank then reads them as the reference. Evaluation runs under a
forked RNG seeded from `metrics.seed`, so it neither depends on nor disturbs the training RNG.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor

from ganzoo.core.console import note, progress
from ganzoo.core.errors import ConfigError
from ganzoo.data.batch import Batch, collate
from ganzoo.data.synthetic import SyntheticScenes
from ganzoo.metrics import attribute_classifier, scene_evaluator, segmenters
from ganzoo.metrics.cache import ManifestCache, fingerprint
from ganzoo.metrics.inception import InceptionFeatures
from ganzoo.metrics.suite import METRICS, MetricSettings, MetricSuite

Dataset = Sequence[dict[str, Tensor]]  # index -> sample dict (a ganzoo dataset adapter)


def build_suite(
    settings: MetricSettings,
    dataset: Dataset,  # the reference split (its adapter decides the segmenter / evaluator)
    data_name: str,  # data.name, for messages and the segmenter registry
    task: Any | None,  # the GANTask whose EMA generator is scored (None: image folders)
    weights: Mapping[str, Any],  # the config's weights.* paths
    weights_dir: str | Path,
    cache_dir: str | Path,
    dm: Any | None = None,  # the run's GANDataModule (metrics=attributes trains on its train split)
) -> MetricSuite:
    """The selected metrics with their networks; checks each metric fits the model and data."""
    names = set(settings.compute)
    synthetic = isinstance(dataset, SyntheticScenes)
    task_fields = None if task is None else tuple(task.required_fields())
    check_views(names, task)
    if "miou" in names and task_fields is not None and "label_map" not in task_fields:
        raise ConfigError(
            f"metrics=miou scores label-to-image models; this model reads {', '.join(task_fields)}"
        )
    if "miou" in names and task_fields is None:
        raise ConfigError(
            "metrics=miou needs a checkpoint (ckpt=...): image folders have no label maps"
        )
    if "domain" in names and not synthetic:
        raise ConfigError(
            f"metrics=domain is the synthetic scenes' evaluator; data={data_name} has none"
        )
    inception = None
    if any(METRICS[n].space == "inception" for n in names):
        inception = InceptionFeatures.from_file(weights["inception"], weights_dir, settings.resize)
    scene = None
    if isinstance(dataset, SyntheticScenes) and names & {"domain", "miou"}:
        scene = synthetic_evaluator(dataset, settings.scene_evaluator, cache_dir)
    segmenter: Any = None
    if "miou" in names:
        segmenter = (
            scene if scene is not None else segmenters.build(data_name, weights, weights_dir)
        )
    classifier = None
    if "attributes" in names:
        if dm is None or task is None:
            raise ConfigError("metrics=attributes needs the run's data to train its classifier")
        classifier = train_split_classifier(
            dm, task.attribute_names, settings.attribute_classifier, cache_dir
        )
    fields = task_fields or ()
    return MetricSuite(
        settings.compute,
        inception,
        scene,
        segmenter,
        class_conditional="label_map" in fields or "class_id" in fields,
        classifier=classifier,
        attribute_names=getattr(task, "attribute_names", None),
    )


def check_views(names: set[str], task: Any | None) -> None:
    """Metrics that read a task's evaluation view need a task that gives it (one-line errors)."""
    for name in sorted(names):
        view = METRICS[name].view
        if view is None:
            continue
        if task is None:
            raise ConfigError(
                f"metrics={name} needs a checkpoint (ckpt=...): it scores what the model makes "
                "of real inputs, not a folder of images"
            )
        given = tuple(task.evaluation_views)
        if view not in given:
            users = [n for n, info in METRICS.items() if info.view in given]
            raise ConfigError(
                f"metrics={name} reads the {view!r} view that {type(task).__name__} does not "
                f"give; its own metrics: {', '.join(users) or 'none'} (and the image metrics "
                "fid, kid, is, pr)"
            )


def train_split_classifier(
    dm: Any,  # GANDataModule
    attribute_names: list[str],  # the task's names of the data's attribute columns
    recipe_values: Mapping[str, Any],  # metrics.attribute_classifier
    cache_dir: str | Path,
) -> attribute_classifier.AttributeClassifier:
    """The attribute classifier of metrics=attributes, trained on the training split (cached)."""
    description = {
        "name": dm.name,
        "split": dm.train_split,
        "height": dm.height,
        "width": dm.width,
    }
    recipe = attribute_classifier.AttributeRecipe.from_dict(
        recipe_values, "metrics.attribute_classifier"
    )
    return attribute_classifier.load_or_train(
        dm.build(dm.train_split), description, attribute_names, recipe, cache_dir
    )


def synthetic_evaluator(
    reference: SyntheticScenes, recipe_values: Mapping[str, Any], cache_dir: str | Path
) -> scene_evaluator.SceneEvaluator:
    """The cached scene evaluator at the reference split's resolution (trained on a miss).

    recipe_values: metrics.scene_evaluator (ganzoo.metrics.scene_evaluator.SceneRecipe fields).
    """
    recipe = scene_evaluator.SceneRecipe.from_dict(recipe_values, "metrics.scene_evaluator")
    train = SyntheticScenes(
        length=recipe.train_samples + scene_evaluator.HOLDOUT,
        height=reference.height,
        width=reference.width,
        seed=recipe.seed,
        split="train",
    )
    description = {
        "name": "synthetic",
        "adapter": "ganzoo.data.synthetic.SyntheticScenes",
        "seed": recipe.seed,
        "split": "train",
        "height": reference.height,
        "width": reference.width,
    }
    return scene_evaluator.load_or_train(
        train,  # type: ignore[arg-type]
        description,
        SyntheticScenes.num_labels,
        SyntheticScenes.num_scene_classes,
        recipe,
        cache_dir,
    )


def _batches(dataset: Dataset, indices: range, batch_size: int) -> Any:
    """Batches of dataset items at the given indices (taken modulo the dataset's length)."""
    for start in range(indices.start, indices.stop, batch_size):
        idx = range(start, min(start + batch_size, indices.stop))
        yield idx, collate([dataset[i % len(dataset)] for i in idx])


def reference_features(
    suite: MetricSuite,
    dataset: Dataset,
    description: Mapping[str, Any],  # dataset name, split, resolution: part of the cache key
    count: int,  # real images: items 0 .. count - 1 of the split
    batch_size: int,
    device: torch.device,
    cache_dir: str | Path,
    attributes: bool = False,  # also the images' attributes (target_fid's real domains)
) -> dict[str, Tensor]:
    """Real features per space, from the cache or computed and cached (one pass for all); with
    `attributes`, also the 0/1 attributes (N, A) of those images under "attributes", stored in
    the same cache entries."""
    cache = ManifestCache(cache_dir, "reference")
    spaces = suite.reference_spaces()
    if not spaces:
        return {}
    first = collate([dataset[i] for i in range(min(4, count))]).image
    data_fingerprint = fingerprint(first, torch.tensor([len(dataset)]))
    manifests = {
        space: reference_manifest(
            description, count, _network_identity(suite, space), data_fingerprint
        )
        for space in spaces
    }
    found = {space: cache.load(manifests[space]) for space in spaces}
    missing = [
        space
        for space, payload in found.items()
        if payload is None or (attributes and "attributes" not in payload)
    ]
    if missing:
        parts: dict[str, list[Tensor]] = {space: [] for space in missing}
        attrs: list[Tensor] = []
        with progress(count, f"{'/'.join(missing)} features of real images", "img") as bar:
            for _, batch in _batches(dataset, range(count), batch_size):
                feats = suite.real_features(batch.image.to(device), spaces=missing)
                for space in missing:
                    parts[space].append(feats[space])
                if batch.attributes is not None:
                    attrs.append(batch.attributes.float())
                bar.update(batch.size)
        for space in missing:
            found[space] = {"features": torch.cat(parts[space])}
            if attrs:
                found[space]["attributes"] = torch.cat(attrs)  # type: ignore[index]
            cache.save(manifests[space], found[space])  # type: ignore[arg-type]
    out = {space: payload["features"] for space, payload in found.items()}  # type: ignore[index]
    if attributes:
        stored = found[spaces[0]]
        if stored is None or "attributes" not in stored:
            raise ConfigError(f"data={description['name']} gives no attributes for target_fid")
        out["attributes"] = stored["attributes"]
    return out


def reference_manifest(
    description: Mapping[str, Any],  # dataset name, split, height, width
    count: int,  # real images
    network: Mapping[str, Any],  # feature extractor, its weights' SHA-256, resize policy
    data_fingerprint: str,  # SHA-256 of the first images and the split's length
) -> dict[str, Any]:
    """What a cache entry of real features depends on; its key hashes all of it."""
    return {
        "dataset": dict(description),
        "num_real": count,
        "features": dict(network),
        "data_fingerprint": data_fingerprint,
    }


def _network_identity(suite: MetricSuite, space: str) -> dict[str, Any]:
    """What determines a space's features (not where its file lies)."""
    net = suite.inception if space == "inception" else suite.scene
    assert net is not None
    provenance = net.provenance()  # type: ignore[operator]
    return {k: provenance[k] for k in ("extractor", "weights_sha256", "resize") if k in provenance}


def shard(n: int, rank: int, world_size: int, batch_size: int) -> range:
    """The contiguous share of n samples that process `rank` of `world_size` generates.

    Shares are made of whole batches of the single-process batch grid (batch b = images
    [b * batch_size, (b + 1) * batch_size)), so every batch, and with it the generator noise
    seeded from its first index, is the same whatever the number of processes.

    Raises:
        ConfigError: fewer batches than processes (a process would have nothing to generate).
    """
    batches = -(-n // batch_size)
    if batches < world_size:
        raise ConfigError(
            f"metrics.num_samples={n} in batches of metrics.batch_size={batch_size} gives "
            f"{batches} batch(es) for {world_size} processes; use num_samples >= "
            f"{world_size * batch_size} or a smaller batch_size"
        )
    first, last = rank * batches // world_size, (rank + 1) * batches // world_size
    return range(first * batch_size, min(last * batch_size, n))


@torch.no_grad()
def score_generated(
    suite: MetricSuite,
    sample: Callable[[Batch, Tensor | None], Tensor],  # the task's sample_ema
    sample_latents: Callable[[int, torch.Generator | None], Tensor | None],  # the task's
    dataset: Dataset,
    indices: range,  # which of the generated images this process makes
    batch_size: int,
    seed: int,
    device: torch.device,
    view: Callable[[str, Batch, Tensor], Any] | None = None,  # the task's evaluation_view
) -> None:
    """Generate images for the inputs at `indices` and feed them to the suite (and, for the
    metrics that read a task view, what `view` makes of each batch and its images).

    Latents of image i come from a generator seeded with (seed, i) and any other noise of the
    generator from (seed, first index of the batch); with `shard`'s whole-batch shares, image i
    is the same however the images are split between processes.
    """
    bar = progress(len(indices), "generating images for the metrics", "img")
    for idx, batch in _batches(dataset, indices, batch_size):
        bar.update(len(idx))
        batch = batch.to(device)
        parts = [
            sample_latents(1, torch.Generator(device).manual_seed(seed * 1_000_003 + i))
            for i in idx
        ]
        latents = None if parts[0] is None else torch.cat(parts)  # type: ignore[arg-type]
        torch.manual_seed(seed * 1_000_003 + idx.start)
        images = sample(batch, latents)
        suite.update_fake(images, batch.label_map, batch.class_id)
        if suite.views():
            assert view is not None
            suite.update_views({v: view(v, batch, images) for v in suite.views()})
    bar.close()


MEANINGFUL_SAMPLES = 2048  # Inception pool3 dimension: fewer samples, a rank-deficient covariance


def note_small_counts(names: Sequence[str], num_fake: int, num_real: int) -> None:
    """Say once when Inception metrics come from fewer samples than is meaningful."""
    used = [n for n in names if METRICS[n].space == "inception"]
    fewest = min([num_fake] + ([num_real] if any(METRICS[n].uses_real for n in used) else []))
    if used and fewest < MEANINGFUL_SAMPLES:
        note(
            f"metrics={','.join(used)} from {num_fake} generated and {num_real} real images: "
            f"below {MEANINGFUL_SAMPLES} (the Inception feature size) the values are dominated "
            "by bias and noise; compare only numbers from equal counts (papers: 10k-50k)"
        )


def counts(settings: MetricSettings, split_length: int) -> tuple[int, int]:
    """(generated, real) sample counts: num_samples, and num_real (default num_samples) capped
    at the split's length."""
    real = settings.num_real if settings.num_real is not None else settings.num_samples
    return settings.num_samples, min(real, split_length)


def _rng_devices(device: torch.device) -> list[torch.device]:
    return [device] if device.type == "cuda" else []


@dataclass
class Evaluation:
    """A prepared evaluation: the metrics with their real reference, the inputs, the record."""

    suite: MetricSuite
    dataset: Dataset  # the reference split: real images and the generator's inputs
    info: dict[str, Any]  # data name, split, size, num_fake, num_real, seed, batch_size

    def provenance(self, world_size: int) -> dict[str, Any]:
        """What every number is recorded with (after `run`: with the sample counts)."""
        return {**self.info, "world_size": world_size, **self.suite.provenance()}

    def run(self, task: Any, rank: int, world_size: int, device: torch.device) -> dict[str, float]:
        """Score the task's EMA generator (`sample_ema`, `sample_latents`); this process makes
        its share of the images, the numbers are those of all of them (synced)."""
        num_fake, batch_size = self.info["num_fake"], self.info["batch_size"]
        with torch.random.fork_rng(devices=_rng_devices(device)):
            self.suite.reset()
            score_generated(
                self.suite,
                task.sample_ema,
                task.sample_latents,
                self.dataset,
                shard(num_fake, rank, world_size, batch_size),
                batch_size,
                self.info["seed"],
                device,
                task.evaluation_view,
            )
            return self.suite.compute()


def prepare_evaluation(
    settings: MetricSettings,
    dm: Any,  # the run's GANDataModule
    task: Any,  # the GANTask whose EMA generator is scored
    weights: Mapping[str, Any],  # weights.* paths
    weights_dir: str | Path,
    cache_dir: str | Path,
    device: torch.device,
) -> Evaluation:
    """The suite on `device` with the real reference of the split (from the cache or computed
    and cached), for the EMA generator of `task`."""
    split = str(settings.split or dm.sample_split)
    dataset = dm.build(split)
    suite = build_suite(settings, dataset, dm.name, task, weights, weights_dir, cache_dir, dm).to(
        device
    )
    num_fake, num_real = counts(settings, len(dataset))
    note_small_counts(list(settings.compute), num_fake, num_real)
    description = {"name": dm.name, "split": split, "height": dm.height, "width": dm.width}
    with torch.random.fork_rng(devices=_rng_devices(device)):
        reference = reference_features(
            suite,
            dataset,
            description,
            num_real,
            settings.batch_size,
            device,
            cache_dir,
            attributes="target_fid" in settings.compute,  # the real images' domains
        )
    suite.set_reference(reference, reference.get("attributes"))
    info = {
        **description,
        "num_fake": num_fake,
        "num_real": num_real,
        "seed": settings.seed,
        "batch_size": settings.batch_size,
    }
    return Evaluation(suite, dataset, info)


class MetricEvaluation(pl.Callback):
    """Evaluates the EMA generator every N iterations and at the end (idle with metrics=none)."""

    def __init__(
        self,
        settings: Mapping[str, Any],  # conf/metrics (metrics.*)
        weights: Mapping[str, Any],  # weights.* paths (weights.inception)
        weights_dir: str,  # paths.weights_dir
        cache_dir: str,  # paths.cache_dir: real features and the scene evaluator
        run_dir: str,  # metrics.jsonl goes here
    ) -> None:
        self.settings = MetricSettings.from_dict(settings)
        self.weights = dict(weights)
        self.weights_dir = weights_dir
        self.cache_dir = cache_dir
        self.path = Path(run_dir) / "metrics.jsonl"
        self.evaluation: Evaluation | None = None
        self._last: int | None = None  # iteration of the last evaluation
        self.last_results: dict[str, float] = {}

    @property
    def active(self) -> bool:
        return bool(self.settings.compute)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: Any) -> None:
        if not self.active:
            return
        if trainer.is_global_zero:  # trains / extracts once and fills the caches ...
            self._prepare(trainer, pl_module)
        trainer.strategy.barrier("ganzoo_metrics_setup")
        if not trainer.is_global_zero:  # ... the other ranks read them
            self._prepare(trainer, pl_module)
        assert self.evaluation is not None
        shard(self.evaluation.info["num_fake"], 0, trainer.world_size, self.settings.batch_size)
        if trainer.is_global_zero:  # what the numbers will mean, once, next to the config
            provenance = self.evaluation.provenance(trainer.world_size)
            for logger in trainer.loggers:
                logger.log_hyperparams({"metrics_provenance": provenance})

    def _prepare(self, trainer: pl.Trainer, pl_module: Any) -> None:
        self.evaluation = prepare_evaluation(
            self.settings,
            trainer.datamodule,  # type: ignore[attr-defined]
            pl_module,
            self.weights,
            self.weights_dir,
            self.cache_dir,
            pl_module.device,
        )

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: Any, *args: Any) -> None:
        it = int(pl_module.iteration)
        every = self.settings.every_n_iterations
        if self.active and every > 0 and it % every == 0 and self._last != it:
            self.evaluate(trainer, pl_module, it)

    def on_train_end(self, trainer: pl.Trainer, pl_module: Any) -> None:
        it = int(pl_module.iteration)
        if self.active and self._last != it:
            self.evaluate(trainer, pl_module, it)

    def evaluate(self, trainer: pl.Trainer, pl_module: Any, iteration: int) -> dict[str, float]:
        """Score the EMA generator now; log and record on rank 0; returns the numbers."""
        assert self.evaluation is not None
        results = self.evaluation.run(
            pl_module, trainer.global_rank, trainer.world_size, pl_module.device
        )
        self._last, self.last_results = iteration, results
        for key, value in results.items():
            trainer.callback_metrics[f"metrics/{key}"] = torch.tensor(value)
        if trainer.is_global_zero:
            self._record(trainer, iteration, int(pl_module.images_seen), results)
        return results

    def _record(
        self, trainer: pl.Trainer, iteration: int, images_seen: int, results: dict[str, float]
    ) -> None:
        assert self.evaluation is not None
        line = {
            "iteration": iteration,
            "images_seen": images_seen,
            "metrics": results,
            "provenance": self.evaluation.provenance(trainer.world_size),
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as handle:
            handle.write(json.dumps(line) + "\n")
        for logger in trainer.loggers:
            logger.log_metrics({f"metrics/{k}": v for k, v in results.items()}, step=iteration)
