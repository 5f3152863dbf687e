"""Evaluation metrics: formulas, torch-fidelity agreement, DDP merging, label agreement, caches.

The FID Inception cannot be downloaded here, so agreement with torch-fidelity is tested with a
randomly initialised network of the same architecture saved as a weight file, its weights drawn
with He scaling (N(0, 2 / fan_in)): PyTorch's default init shrinks the activations layer after
layer until every image has the same features and every FID is ~0, which no test could fail.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from PIL import Image
from torch import nn

from ganzoo.core.errors import ConfigError, WeightsError
from ganzoo.core.weights import WEIGHT_FILES
from ganzoo.data.synthetic import SyntheticScenes
from ganzoo.metrics import functional
from ganzoo.metrics.agreement import SegmentationAgreement, confusion_matrix, scores_from_confusion
from ganzoo.metrics.cache import ManifestCache
from ganzoo.metrics.generative import (
    FrechetDistance,
    InceptionScore,
    KernelDistance,
    PrecisionRecall,
)
from ganzoo.metrics.suite import MetricSuite

# Lightning, torchvision and torch-fidelity are imported inside the tests that use them: the
# two-process test's workers import this module, and those imports cost seconds each.

# a cheap scene-evaluator recipe for tests (the default trains 300 steps on 1024 scenes)
TEST_RECIPE = {"train_samples": 384, "steps": 120, "batch_size": 32, "lr": 0.003, "seed": 0}


# ----- fixtures --------------------------------------------------------------------------
def write_random_inception(path: Path, seed: int = 0) -> Path:
    """A torch-fidelity-compatible Inception state dict with He-scaled random weights."""
    import torchvision

    net = torchvision.models.inception_v3(
        weights=None, aux_logits=False, num_classes=1008, init_weights=False
    )
    state = net.state_dict()
    g = torch.Generator().manual_seed(seed)
    for name, value in state.items():
        if name.endswith("conv.weight"):
            value.normal_(0.0, math.sqrt(2.0 / value[0].numel()), generator=g)
        elif name == "fc.weight":
            value.normal_(0.0, 1.0, generator=g)  # logits that vary between images (IS != 1)
    torch.save(state, path)
    return path


@pytest.fixture(scope="session")
def inception_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_random_inception(tmp_path_factory.mktemp("weights") / "random_inception.pth")


@pytest.fixture(scope="session")
def scene_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache dir holding a scene evaluator trained once (32x32) with TEST_RECIPE."""
    cache = tmp_path_factory.mktemp("cache")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny convs: one thread is as fast, and much faster on busy cores
    try:
        _scene_evaluator(cache)
    finally:
        torch.set_num_threads(threads)
    return cache


def _scene_evaluator(cache: Path):  # type: ignore[no-untyped-def]
    """The evaluator the training callback builds for 32x32 synthetic scenes, cached in `cache`."""
    from ganzoo.callbacks.metrics import synthetic_evaluator

    reference = SyntheticScenes(length=8, height=32, width=32, split="val")
    return synthetic_evaluator(reference, TEST_RECIPE, cache)


def _scenes(
    n: int, split: str = "val", start: int = 0, height: int = 32
) -> dict[str, torch.Tensor]:
    """Items start .. start + n - 1 of square synthetic scenes, stacked."""
    ds = SyntheticScenes(length=start + n, height=height, width=height, split=split)  # type: ignore[arg-type]
    items = [ds[i] for i in range(start, start + n)]
    return {k: torch.stack([s[k] for s in items]) for k in ("image", "label_map", "class_id")}


# ----- formulas --------------------------------------------------------------------------
def test_fid_is_zero_on_identical_sets_and_matches_the_gaussian_closed_form() -> None:
    g = torch.Generator().manual_seed(0)
    d, n = 6, 200_000
    mu1, mu2 = torch.zeros(d), torch.linspace(-1, 1, d)
    s1, s2 = torch.linspace(0.5, 2.0, d), torch.linspace(1.5, 0.2, d)  # diagonal variances
    x = mu1 + s1.sqrt() * torch.randn(n, d, generator=g, dtype=torch.float64)
    y = mu2 + s2.sqrt() * torch.randn(n, d, generator=g, dtype=torch.float64)
    closed = float(((mu1 - mu2) ** 2).sum() + (s1 + s2 - 2 * (s1 * s2).sqrt()).sum())
    assert functional.frechet_distance(x, x) == pytest.approx(0.0, abs=1e-9)
    assert functional.frechet_distance(x, y) == pytest.approx(closed, rel=0.02)
    assert functional.frechet_distance(x, x + 0.5) == pytest.approx(0.25 * d, rel=1e-6)


def test_low_rank_fid_path_equals_the_covariance_path() -> None:
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(12, 40, generator=g), 0.3 + 1.5 * torch.randn(15, 40, generator=g)
    via_stats = functional.frechet_distance_from_statistics(
        *functional.gaussian_statistics(a), *functional.gaussian_statistics(b)
    )
    # the covariance path carries sqrt(rounding) from ~30 zero eigenvalues: agree to 1e-7
    assert functional.frechet_distance(a, b) == pytest.approx(via_stats, rel=1e-7)


def test_kid_is_pr_on_constructed_features() -> None:
    g = torch.Generator().manual_seed(2)
    x = torch.randn(200, 16, generator=g)
    kid_same = functional.kernel_inception_distance(x, x.clone(), subsets=10, subset_size=80)
    kid_far = functional.kernel_inception_distance(x, x + 3.0, subsets=10, subset_size=80)
    assert kid_far[0] > 1.0 and abs(kid_same[0]) < 0.02 * kid_far[0]  # unbiased: ~0 on equal sets
    assert functional.inception_score(torch.zeros(50, 10), splits=5) == pytest.approx((1.0, 0.0))
    confident = 30.0 * torch.eye(10).repeat(20, 1)  # 200 images, 10 classes, all certain
    assert functional.inception_score(confident, splits=1)[0] == pytest.approx(10.0, rel=1e-6)
    assert functional.precision_recall(x, x.clone(), k=3) == (1.0, 1.0)
    assert functional.precision_recall(x, x + 100.0, k=3) == (0.0, 0.0)


def test_kid_is_unbiased_on_discrete_distributions_with_a_known_mmd() -> None:
    """P and Q uniform on three points each: the population MMD^2 under KID's kernel is exact.

    The unbiased estimator's mean over subsets must match it within its Monte-Carlo error,
    while the biased (V-statistic) estimator is off by (E k(x, x) - E k(x, x')) / m per set.
    """
    a = torch.tensor([[0.0, 1.0], [1.0, 0.5], [2.0, -1.0]], dtype=torch.float64)
    b = torch.tensor([[0.5, 1.0], [1.5, 0.0], [2.0, -0.5]], dtype=torch.float64)
    kernel = lambda x, y: (x @ y.T / 2 + 1) ** 3  # noqa: E731  (KID's kernel, d = 2)
    mmd2 = float(kernel(a, a).mean() + kernel(b, b).mean() - 2 * kernel(a, b).mean())
    g = torch.Generator().manual_seed(8)
    real = b[torch.randint(3, (6000,), generator=g)]  # iid samples of Q
    fake = a[torch.randint(3, (6000,), generator=g)]  # iid samples of P
    subsets, m = 400, 12
    mean, std = functional.kernel_inception_distance(real, fake, subsets=subsets, subset_size=m)
    error = std / subsets**0.5
    v_bias = (
        float(
            kernel(a, a).diagonal().mean()
            - kernel(a, a).mean()
            + kernel(b, b).diagonal().mean()
            - kernel(b, b).mean()
        )
        / m
    )  # how far the biased estimator's expectation lies from the truth
    assert mmd2 > 0.5 and v_bias > 12 * error  # the test can tell the two estimators apart
    assert mean == pytest.approx(mmd2, abs=4 * error)


def test_precision_recall_on_points_on_a_line_with_hand_computed_answers() -> None:
    """Real: 100 points at x = 0..99. Fake: 50 at x = 0.5..49.5 and 50 far away at 1000..1049.

    k = 3 radii (the 4th smallest distance, the point itself included): 2 inside a row of
    unit-spaced points, 3 at its ends. Precision: the 50 near fakes lie within 0.5 of a real
    point, the far ones in no ball -> 50/100. Recall: the near fakes' balls cover x in
    [-2.5, 52.5] (end radii 3 at 0.5 and 49.5) -> real points 0..52 -> 53/100.
    """
    line = lambda x: torch.stack([x, torch.zeros_like(x)], 1)  # noqa: E731
    real = line(torch.arange(100.0))
    fake = line(torch.cat([torch.arange(50.0) + 0.5, torch.arange(50.0) + 1000]))
    radii = functional.knn_radii(real, 3)
    assert radii[[0, 1, 50, 99]].tolist() == [3.0, 2.0, 2.0, 3.0]
    assert functional.precision_recall(real, fake, k=3) == pytest.approx((0.50, 0.53))
    assert functional.precision_recall(fake, real, k=3)[1] == pytest.approx(0.50)  # swapped


def test_feature_formulas_equal_torch_fidelity_functions() -> None:
    from torch_fidelity.metric_isc import isc_features_to_metric
    from torch_fidelity.metric_kid import kid_features_to_metric
    from torch_fidelity.metric_prc import prc_features_to_metric

    g = torch.Generator().manual_seed(3)
    real, fake = torch.randn(60, 32, generator=g), 0.2 + torch.randn(50, 32, generator=g)
    kid = kid_features_to_metric(
        fake, real, kid_subsets=30, kid_subset_size=25, kid_kernel="poly",
        kid_kernel_poly_degree=3, kid_kernel_poly_gamma=None, kid_kernel_poly_coef0=1,
        rng_seed=2020, verbose=False,
    )  # fmt: skip
    ours = functional.kernel_inception_distance(real, fake, subsets=30, subset_size=25)
    assert ours[0] == pytest.approx(kid["kernel_inception_distance_mean"], rel=1e-5)
    assert ours[1] == pytest.approx(kid["kernel_inception_distance_std"], rel=1e-4)
    logits = 3 * torch.randn(50, 20, generator=g)
    isc = isc_features_to_metric(logits, splits=10, shuffle=True, rng_seed=2020)
    assert functional.inception_score(logits) == pytest.approx(
        (isc["inception_score_mean"], isc["inception_score_std"]), rel=1e-9
    )
    prc = prc_features_to_metric(
        fake, real, prc_neighborhood=3, prc_batch_size=10000, save_cpu_ram=False, verbose=False
    )
    assert functional.precision_recall(real, fake) == pytest.approx(
        (prc["precision"], prc["recall"]),
        abs=1e-6,  # torch-fidelity returns float32 means
    )


# ----- merging states across processes ---------------------------------------------------
def _feature_sets(seed: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(40, 24, generator=g), 0.3 + torch.randn(36, 24, generator=g)


def _half(x: torch.Tensor, rank: int) -> torch.Tensor:
    """Rank's contiguous share of x among 2 processes (as ganzoo.callbacks.metrics.shard)."""
    return x[rank * len(x) // 2 : (rank + 1) * len(x) // 2]


def _metrics() -> list:  # type: ignore[type-arg]
    return [FrechetDistance(), KernelDistance(subsets=10, subset_size=30), PrecisionRecall(k=3)]


def test_merging_two_states_equals_one_state_on_all_samples() -> None:
    from ganzoo.callbacks.metrics import shard

    real, fake = _feature_sets()
    for n in (36, 40, 7):
        assert [len(_half(torch.ones(n), r)) for r in (0, 1)] == [
            len(shard(n, r, 2, batch_size=1)) for r in (0, 1)
        ]
    for whole, part_a, part_b in zip(_metrics(), _metrics(), _metrics(), strict=True):
        whole.update(real, real=True)
        whole.update(fake, real=False)
        for part, rank in ((part_a, 0), (part_b, 1)):
            part.update(_half(real, rank), real=True)
            part.update(_half(fake, rank), real=False)
        part_b.merge_state(part_a)  # torchmetrics puts the incoming state first: rank 0, rank 1
        assert torch.equal(part_b.compute(), whole.compute()), type(whole).__name__


class _ToyFeatures(nn.Module):
    """Stands in for the Inception in the DDP test: a fixed random projection of the pixels."""

    def __init__(self, pixels: int = 3 * 8 * 8, dim: int = 24, classes: int = 10) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(5)
        self.register_buffer("w_pool", torch.randn(pixels, dim, generator=g) / pixels**0.5)
        self.register_buffer("w_logits", torch.randn(pixels, classes, generator=g))

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        x = images.flatten(1)
        return {"pool": torch.tanh(x @ self.w_pool), "logits": x @ self.w_logits / 4}

    def provenance(self) -> dict:
        return {"extractor": "toy projection"}


class _ToyTask:
    """A GANTask's sampling hooks: latents from the given generator, noise from the global RNG;
    and the evaluation views of attribute translation and text-to-image tasks."""

    evaluation_views = ("translations", "text_image_codes")

    def sample_latents(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        return torch.randn(n, 4, generator=generator)

    def sample_ema(self, batch, latents: torch.Tensor) -> torch.Tensor:  # type: ignore[no-untyped-def]
        noise = torch.randn(batch.image.shape)  # seeded per batch by score_generated
        return (batch.image + latents.mean(1)[:, None, None, None] + 0.8 * noise).clamp(-1, 1)

    def evaluation_view(self, view: str, batch, images: torch.Tensor):  # type: ignore[no-untyped-def]
        if view == "text_image_codes":  # the "captions": the real images' first pixels
            return images.flatten(1)[:, :6], batch.image.flatten(1)[:, :6]
        flip_a, set_b = batch.attributes.clone(), batch.attributes.clone()
        flip_a[:, 0] = 1 - flip_a[:, 0]
        set_b[:, 1] = 1.0
        return [("a", flip_a, images.flip(3)), ("b", set_b, (images + 0.3).clamp(-1, 1))]


def _toy_evaluation(n_fake: int = 20, batch_size: int = 4):  # type: ignore[no-untyped-def]
    """An Evaluation of fid, kid, is, pr, and the task-view metrics attributes, target_fid and
    rprecision, with the toy extractor on a 10-image toy split."""
    from ganzoo.callbacks.metrics import Evaluation
    from ganzoo.metrics.attribute_classifier import AttributeClassifier, AttributeNet

    g = torch.Generator().manual_seed(6)
    dataset = [
        {
            "image": torch.rand(3, 8, 8, generator=g) * 2 - 1,
            "attributes": (torch.rand(2, generator=g) > 0.5).float(),
        }
        for _ in range(10)
    ]
    compute = {"fid": {}, "kid": {"subsets": 10, "subset_size": 8}, "is": {"splits": 4}}
    compute |= {"attributes": {}, "target_fid": {}, "rprecision": {"candidates": 5, "splits": 2}}
    torch.manual_seed(7)
    classifier = AttributeClassifier(AttributeNet(2, (4, 4, 4, 4)), ["a", "b"], {})
    suite = MetricSuite(
        {**compute, "pr": {"k": 3}},
        _ToyFeatures(),
        None,
        None,
        classifier=classifier,
        attribute_names=["a", "b"],
    )
    suite.set_reference(
        suite.real_features(torch.stack([d["image"] for d in dataset])),
        torch.stack([d["attributes"] for d in dataset]),
    )
    info = {"num_fake": n_fake, "batch_size": batch_size, "seed": 3}
    return Evaluation(suite, dataset, info)  # type: ignore[arg-type]


def _ddp_worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    real, fake = _feature_sets()
    results = []
    for metric in _metrics():  # the metrics alone, each rank updated with its half
        metric.update(_half(real, rank), real=True)
        metric.update(_half(fake, rank), real=False)
        results.append(metric.compute())
    # the whole path of the training callback: uneven whole-batch shares (8 and 12 images)
    evaluation = _toy_evaluation()
    numbers = evaluation.run(_ToyTask(), rank, world, torch.device("cpu"))
    if rank == 0:
        torch.save({"metrics": results, "evaluation": numbers}, out)
    dist.barrier()
    dist.destroy_process_group()


def test_two_process_gloo_run_computes_the_single_process_numbers(tmp_path: Path) -> None:
    out = tmp_path / "ddp.pt"
    port = 29500 + os.getpid() % 1000
    mp.spawn(_ddp_worker, args=(2, port, str(out)), nprocs=2, join=True)
    got = torch.load(out, weights_only=True)
    real, fake = _feature_sets()
    for value, metric in zip(got["metrics"], _metrics(), strict=True):
        metric.update(real, real=True)
        metric.update(fake, real=False)
        assert torch.equal(value, metric.compute()), type(metric).__name__
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the workers: bitwise equal features
    try:
        single = _toy_evaluation().run(_ToyTask(), 0, 1, torch.device("cpu"))
    finally:
        torch.set_num_threads(threads)
    image_metrics = {"fid", "kid_mean", "kid_std", "is_mean", "is_std", "precision", "recall"}
    task_metrics = {"attr_acc/a", "attr_acc/b", "attr_acc/mean", "attr_kept", "target_fid_mean"}
    task_metrics |= {"target_fid/a", "target_fid/not_a", "target_fid/b"}  # every image sets b
    task_metrics |= {"rprecision_mean", "rprecision_std"}
    assert set(single) == image_metrics | task_metrics
    assert single["fid"] > 0.01 and 0 < single["precision"] < 1  # not a degenerate case
    assert 0 < single["rprecision_mean"] < 1 and single["rprecision_std"] > 0
    assert got["evaluation"] == pytest.approx(single, rel=1e-9, abs=1e-12)


def test_shards_are_whole_batches_in_order_and_too_few_batches_is_an_error() -> None:
    from ganzoo.callbacks.metrics import shard

    assert [shard(20, r, 2, 4) for r in (0, 1)] == [range(0, 8), range(8, 20)]
    assert [shard(10, r, 3, 4) for r in (0, 1, 2)] == [range(0, 4), range(4, 8), range(8, 10)]
    assert shard(10, 0, 1, 4) == range(0, 10)
    with pytest.raises(ConfigError, match="gives 2 batch\\(es\\) for 3 processes"):
        shard(8, 0, 3, 4)


# ----- label agreement -------------------------------------------------------------------
def test_miou_and_pixel_accuracy_on_hand_made_maps() -> None:
    target = torch.tensor([[[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 255, 255]]])  # 255: ignored
    pred = torch.tensor([[[0, 1, 1, 1], [0, 0, 1, 1], [2, 1, 0, 0]]])
    confusion = confusion_matrix(pred, target, num_labels=4)  # class 3 is absent everywhere
    assert confusion.tolist() == [[3, 1, 0, 0], [0, 4, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0]]
    scores = scores_from_confusion(confusion)
    iou = [3 / 4, 4 / 6, 1 / 2]  # TP / (TP + FP + FN) for classes 0, 1, 2
    assert scores["miou"] == pytest.approx(sum(iou) / 3)
    assert scores["pixel_accuracy"] == pytest.approx(8 / 10)
    metric = SegmentationAgreement(num_labels=4)
    metric.update(pred[:, :2], target[:, :2])
    metric.update(pred[:, 2:], target[:, 2:])
    assert float(metric.compute()["miou"]) == pytest.approx(sum(iou) / 3)


# ----- Inception: weight file, resize policies, torch-fidelity agreement -----------------
def test_missing_inception_file_is_one_line_naming_file_place_and_checksum(tmp_path) -> None:
    from ganzoo.metrics.inception import InceptionFeatures

    with pytest.raises(WeightsError) as info:
        InceptionFeatures.from_file(None, tmp_path / "weights", "tf_bilinear")
    message = str(info.value)
    assert "\n" not in message
    for part in (
        "weights.inception",
        "pt_inception-2015-12-05-6726825d.pth",
        str(tmp_path / "weights"),
        WEIGHT_FILES["inception"].sha256,
    ):
        assert part in message
    with pytest.raises(ConfigError, match="valid choices: tf_bilinear, clean"):
        InceptionFeatures.from_file(None, tmp_path, "bicubic")


def test_clean_policy_network_path_equals_torch_fidelity_at_299(inception_file) -> None:
    from ganzoo.metrics.inception import InceptionFeatures, clean_resize, quantize

    net = InceptionFeatures.from_file(inception_file, "unused", "clean")
    pixels = torch.randint(0, 256, (1, 3, 299, 299), dtype=torch.uint8)
    pool, logits = net.network(pixels)  # torch-fidelity's own forward (its resize: identity)
    ours = net._forward_resized(pixels.float())
    torch.testing.assert_close(ours["pool"], pool, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours["logits"], logits, rtol=1e-5, atol=1e-5)
    resized = clean_resize(quantize(torch.zeros(1, 3, 32, 32)))
    assert resized.shape == (1, 3, 299, 299) and torch.allclose(
        resized, torch.full_like(resized, 128)
    )


def _write_pngs(folder: Path, images: torch.Tensor) -> Path:
    from ganzoo.metrics.inception import quantize

    folder.mkdir(parents=True)
    for i, array in enumerate(quantize(images).permute(0, 2, 3, 1).numpy()):
        Image.fromarray(array).save(folder / f"{i:04d}.png")
    return folder


def test_fid_kid_is_agree_with_torch_fidelity_calculate_metrics(inception_file, tmp_path) -> None:
    from torch_fidelity import calculate_metrics

    from ganzoo.evaluate import evaluate
    from tests.conftest import compose_train

    n = 16  # per set: each image costs one 299x299 Inception forward, here and in torch-fidelity
    real = _write_pngs(tmp_path / "real", _scenes(n)["image"])
    fake = _write_pngs(tmp_path / "fake", -_scenes(n, start=n)["image"])  # other scenes, inverted
    reference = calculate_metrics(
        input1=str(fake), input2=str(real), cuda=False, isc=True, fid=True, kid=True,
        kid_subset_size=8, isc_splits=4, feature_extractor_weights_path=str(inception_file),
        cache=False, save_cpu_ram=True, verbose=False,
    )  # fmt: skip
    cfg = compose_train(
        tmp_path / "run",
        [
            "metrics=[fid,kid,is]",
            f"real={real}",
            f"fake={fake}",
            f"weights.inception={inception_file}",
            "metrics.compute.kid.subset_size=8",
            "metrics.compute.is.splits=4",
            "device=cpu",
        ],
        config_name="evaluate",
    )
    ours = evaluate(cfg)
    numbers = ours["metrics"]
    pairs = {
        "fid": "frechet_inception_distance",
        "kid_mean": "kernel_inception_distance_mean",
        "kid_std": "kernel_inception_distance_std",
        "is_mean": "inception_score_mean",
        "is_std": "inception_score_std",
    }
    print({k: (numbers[k], reference[v]) for k, v in pairs.items()})
    assert numbers["fid"] > 1.0 and numbers["kid_mean"] > 1e-3 and numbers["is_mean"] > 1.01
    for key, theirs in pairs.items():
        assert numbers[key] == pytest.approx(reference[theirs], rel=1e-4), key
    provenance = ours["provenance"]
    assert provenance["inception"]["resize"] == "tf_bilinear"
    assert provenance["inception"]["weights_sha256"] and provenance["num_fake"] == n
    cfg.fake = str(real)  # a set against itself (its first 8 images)
    cfg.metrics.compute, cfg.metrics.num_samples = {"fid": {}}, 8
    assert abs(evaluate(cfg)["metrics"]["fid"]) < 1e-6 * numbers["fid"]


# ----- the synthetic scene evaluator and the caches --------------------------------------
def test_scene_metrics_separate_real_from_noise_and_shuffled_label_maps(
    scene_cache, monkeypatch
) -> None:
    def no_training(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("the cached scene evaluator was trained again")

    monkeypatch.setattr("ganzoo.metrics.scene_evaluator.train_scene_net", no_training)
    evaluator = _scene_evaluator(scene_cache)  # from the cache
    data = _scenes(64)
    suite = MetricSuite({"domain": {}, "miou": {}}, None, evaluator, evaluator, True)
    suite.set_reference({"scene": evaluator(_scenes(64, start=64)["image"])["features"]})

    def score(images: torch.Tensor, labels: torch.Tensor, classes: torch.Tensor) -> dict:
        suite.reset()
        suite.update_fake(images, labels, classes)
        return suite.compute()

    real = score(data["image"], data["label_map"], data["class_id"])
    noise = score(torch.rand(64, 3, 32, 32) * 2 - 1, data["label_map"], data["class_id"])
    perm = torch.roll(torch.arange(64), 1)
    shuffled = score(data["image"], data["label_map"][perm], data["class_id"][perm])
    print(real, noise, shuffled)
    assert real["pixel_accuracy"] > 0.75 and real["class_accuracy"] > 0.8
    assert real["miou"] > shuffled["miou"] + 0.15 and real["miou"] > noise["miou"] + 0.15
    assert real["pixel_accuracy"] > shuffled["pixel_accuracy"] + 0.3
    assert real["class_accuracy"] > shuffled["class_accuracy"] + 0.4
    assert noise["domain_fid"] > 5 * real["domain_fid"]  # 64 vs 64 disjoint real scenes: ~5


def test_manifest_cache_never_serves_stale_entries(tmp_path) -> None:
    cache = ManifestCache(tmp_path, "reference")
    manifest = {"dataset": "synthetic", "resize": "tf_bilinear", "weights_sha256": "aa"}
    assert cache.load(manifest) is None and cache.last_miss == "no entry"
    cache.save(manifest, {"features": torch.ones(3, 2)})
    assert torch.equal(cache.load(manifest)["features"], torch.ones(3, 2))  # type: ignore[index]
    assert cache.load({**manifest, "weights_sha256": "bb"}) is None  # another network
    assert cache.load({**manifest, "resize": "clean"}) is None  # another resize policy
    folder = cache.directory(manifest)
    torch.save({"features": torch.zeros(3, 2)}, folder / "payload.pt")  # replaced behind its back
    assert (
        cache.load(manifest) is None and cache.last_miss == "payload changed since it was written"
    )
    meta = (folder / "manifest.json").read_text().replace('"aa"', '"cc"')
    (folder / "manifest.json").write_text(meta)
    assert cache.load(manifest) is None and cache.last_miss == "manifest differs"


class _CountingSuite:
    """The parts of a MetricSuite reference_features uses, counting feature extractions."""

    def __init__(self, sha: str) -> None:
        self.inception, self.calls, self.sha = None, 0, sha
        self.scene = self

    def provenance(self) -> dict:
        return {"extractor": "test", "weights_sha256": self.sha, "weights": "/somewhere"}

    def reference_spaces(self) -> list[str]:
        return ["scene"]

    def real_features(self, images: torch.Tensor, spaces: list[str]) -> dict[str, torch.Tensor]:
        self.calls += 1
        return {"scene": images.mean((2, 3))}


def test_real_statistics_are_cached_and_recomputed_when_anything_changes(tmp_path) -> None:
    from ganzoo.callbacks.metrics import reference_features

    dataset = SyntheticScenes(length=12, height=16, width=16, split="val")
    info = {"name": "synthetic", "split": "val", "height": 16, "width": 16}

    def features(suite: _CountingSuite, count: int = 8, data=dataset, description=info):  # type: ignore[no-untyped-def]
        return reference_features(suite, data, description, count, 4, torch.device("cpu"), tmp_path)  # type: ignore[arg-type]

    first = _CountingSuite("aa")
    computed = features(first)["scene"]
    assert first.calls == 2 and computed.shape == (8, 3)
    again = _CountingSuite("aa")
    assert torch.equal(features(again)["scene"], computed) and again.calls == 0  # served
    for changed in (
        lambda s: features(s, count=12),  # another sample count
        lambda s: features(s, description={**info, "split": "test"}),  # another split
        lambda s: features(
            s, data=SyntheticScenes(length=12, height=16, width=16, split="val", seed=7)
        ),  # other images, same description: the fingerprint differs
    ):
        suite = _CountingSuite("aa")
        changed(suite)
        assert suite.calls > 0
    other_weights = _CountingSuite("bb")
    features(other_weights)
    assert other_weights.calls == 2


def test_reference_cache_key_changes_when_any_provenance_field_changes() -> None:
    from ganzoo.callbacks.metrics import reference_manifest
    from ganzoo.metrics.cache import manifest_key

    description = {"name": "synthetic", "split": "val", "height": 32, "width": 32}
    network = {"extractor": "inception", "weights_sha256": "ab" * 32, "resize": "tf_bilinear"}
    base = reference_manifest(description, 1000, network, "cd" * 32)
    changed = [
        reference_manifest({**description, "name": "ade20k"}, 1000, network, "cd" * 32),
        reference_manifest({**description, "split": "train"}, 1000, network, "cd" * 32),
        reference_manifest({**description, "height": 64}, 1000, network, "cd" * 32),
        reference_manifest({**description, "width": 64}, 1000, network, "cd" * 32),
        reference_manifest(description, 999, network, "cd" * 32),  # n
        reference_manifest(description, 1000, {**network, "extractor": "scene"}, "cd" * 32),
        reference_manifest(description, 1000, {**network, "weights_sha256": "ef" * 32}, "cd" * 32),
        reference_manifest(description, 1000, {**network, "resize": "clean"}, "cd" * 32),
        reference_manifest(description, 1000, network, "00" * 32),  # other images
    ]
    keys = {manifest_key(m) for m in changed}
    assert len(keys) == len(changed) and manifest_key(base) not in keys
    assert manifest_key(reference_manifest(description, 1000, network, "cd" * 32)) == manifest_key(
        base
    )


def test_unknown_metric_and_settings_list_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match="unknown metric 'fdi'; valid metrics: fid, kid"):
        MetricSuite({"fdi": {}}, None, None, None)
    with pytest.raises(ConfigError, match=r"metrics.compute.kid.subset; valid keys: subsets"):
        MetricSuite({"kid": {"subset": 3}}, None, None, None)
    with pytest.raises(ConfigError, match="metrics fid need the inception network"):
        MetricSuite({"fid": {}}, None, None, None)


def test_inception_score_metric_ignores_real_features() -> None:
    metric = InceptionScore(splits=2)
    metric.update(torch.zeros(4, 5), real=False)
    assert metric.compute().tolist() == pytest.approx([1.0, 0.0])
    assert np.isfinite(metric.compute().numpy()).all()


# ----- real-dataset segmenters -------------------------------------------------------------
def _parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_segmenters_have_the_official_parameter_counts() -> None:
    """Counted from the official code (fyu/drn DRNSeg('drn_d_105', 19); CSAIL Resnet(resnet101)
    + UPerNet(fc_dim 2048, fpn_dim 512, 150 classes); deeplab-pytorch
    DeepLabV2_ResNet101_MSC(182)) with the same torch version."""
    from ganzoo.metrics import segmenter_nets as nets

    with torch.device("meta"):
        drn, deeplab = nets.DRNSegD105(), nets.DeepLabV2()
        encoder, decoder = nets.ResNet101Encoder(), nets.UPerNetDecoder()
    assert _parameters(drn) == 54_302_915
    assert _parameters(drn.base) + 512 * 1000 + 1000 == 54_801_304  # with ImageNet fc: "54.8M"
    assert (_parameters(encoder), _parameters(decoder)) == (42_623_936, 40_590_486)
    assert _parameters(deeplab) == 55_919_384


def _save_as_published(net: nn.Module, path: Path, sync_bn: bool = False) -> None:
    """A random state dict in the authors' layout: DataParallel's 'module.' prefix, no
    num_batches_tracked (PyTorch < 0.4.1), CSAIL's SynchronizedBatchNorm2d buffers."""
    state = {}
    for key, value in net.state_dict().items():
        if key.endswith("num_batches_tracked"):
            if sync_bn:
                prefix = key.removesuffix("num_batches_tracked")
                state[prefix + "_tmp_running_mean"] = torch.zeros(1)
                state[prefix + "_running_iter"] = torch.ones(1)
            continue
        state["module." + key] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)


def test_real_dataset_segmenters_load_their_published_file_layouts(tmp_path) -> None:
    from ganzoo.metrics import segmenter_nets as nets
    from ganzoo.metrics import segmenters

    torch.manual_seed(0)
    files = segmenters.SEGMENTERS
    _save_as_published(nets.DRNSegD105(), tmp_path / files["cityscapes"].filenames[0])
    upernet = tmp_path / "upernet"  # weights.upernet101_ade20k names the folder
    _save_as_published(nets.ResNet101Encoder(), upernet / "encoder_epoch_50.pth", sync_bn=True)
    _save_as_published(nets.UPerNetDecoder(), upernet / "decoder_epoch_50.pth", sync_bn=True)
    _save_as_published(nets.DeepLabV2(), tmp_path / files["cocostuff"].filenames[0])
    weights = {e.key: None for e in files.values()} | {"upernet101_ade20k": str(upernet)}
    images = torch.rand(2, 3, 24, 40) * 2 - 1
    for data, labels, targets in (
        ("cityscapes", [7, 8, 26, 0], [0, 1, 13, 255]),  # label ids -> train ids
        ("ade20k", [0, 149, 150, 3], [0, 149, 255, 3]),  # 150 ("other") ignored
        ("cocostuff", [0, 181, 182, 90], [0, 181, 255, 90]),  # 182 (unlabeled) ignored
    ):
        segmenter = segmenters.build(data, weights, tmp_path)
        if data == "ade20k":
            segmenter.short_sides = (48,)  # one small scale: the test's CPU budget
        assert segmenter.targets(torch.tensor(labels)).tolist() == targets
        pred = segmenter.segment(images)
        assert pred.shape == (2, 24, 40) and 0 <= int(pred.min()) <= int(pred.max()) < (
            segmenter.num_labels
        )
        provenance = segmenter.provenance()
        assert provenance["weights_published"] is False
        assert all(len(h) == 64 for h in provenance["weights_sha256"])


def test_segmenters_missing_or_wrong_files_are_one_line_errors(tmp_path) -> None:
    from ganzoo.metrics import segmenters

    weights = {e.key: None for e in segmenters.SEGMENTERS.values()}
    for data, name in (
        ("cityscapes", "drn-d-105_ms_cityscapes.pth"),
        ("ade20k", "ade20k-resnet101-upernet/encoder_epoch_50.pth"),
        ("cocostuff", "deeplabv2_resnet101_msc-cocostuff164k-100000.pth"),
    ):
        with pytest.raises(WeightsError) as info:
            segmenters.build(data, weights, tmp_path)
        message = str(info.value)
        assert "\n" not in message and str(tmp_path / name) in message and "sha256" in message
    wrong = tmp_path / "wrong.pth"
    torch.save({"conv.weight": torch.zeros(1)}, wrong)
    with pytest.raises(WeightsError, match="is not a DeepLabV2 state dict"):
        segmenters.build("cocostuff", {**weights, "deeplabv2_cocostuff": str(wrong)}, tmp_path)
    with pytest.raises(ConfigError, match="no segmenter for data=celeba"):
        segmenters.build("celeba", weights, tmp_path)


def test_evaluators_train_even_when_first_needed_inside_no_grad() -> None:
    """ganzoo.evaluate scores under torch.no_grad(); a cold cache trains the evaluator there."""
    from ganzoo.metrics.attribute_classifier import AttributeRecipe, train_attribute_net
    from ganzoo.metrics.scene_evaluator import SceneRecipe, train_scene_net

    scenes = SyntheticScenes(length=8, height=16, width=16)
    samples = [scenes[i] for i in range(8)]
    with torch.no_grad():
        net = train_scene_net(samples, 15, 12, SceneRecipe(steps=2, batch_size=4))
        before = AttributeRecipe(steps=2, batch_size=4)
        images = torch.stack([s["image"] for s in samples])
        attrs = torch.stack([s["attributes"] for s in samples])
        attr_net = train_attribute_net(images, attrs, before)
    assert not any(p.requires_grad for p in [*net.parameters(), *attr_net.parameters()])
    torch.manual_seed(0)  # SceneRecipe's default seed: the same initial weights as `net`
    from ganzoo.metrics.scene_evaluator import SceneNet

    initial = SceneNet(15, 12)
    moved = [
        (a - b).abs().max() for a, b in zip(net.parameters(), initial.parameters(), strict=True)
    ]
    assert max(float(m) for m in moved) > 0  # two Adam steps were taken, not skipped
