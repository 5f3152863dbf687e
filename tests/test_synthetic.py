"""The procedural synthetic scenes (`data=synthetic`) and the colour segmenter."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch

from ganzoo.data.batch import FIELDS, collate
from ganzoo.data.synthetic import (
    CLOUD,
    COLOURS,
    MOUNTAIN,
    NIGHT_SKY,
    PLACES,
    SHAPES,
    SKY,
    SNOW,
    WATER,
    SyntheticScenes,
    paint_objects,
)
from ganzoo.metrics.colour_segmenter import ColourSegmenter, mean_iou, pixel_accuracy

NUM_BACKGROUND = SyntheticScenes.label_names.index(SHAPES[0])


def stack(dataset: SyntheticScenes, indices: range) -> dict[str, torch.Tensor]:
    return {k: torch.stack([dataset[i][k] for i in indices]) for k in dataset.provides}


@pytest.fixture(scope="module")
def many() -> SyntheticScenes:
    return SyntheticScenes(500, 32, 32, seed=3)


def test_vocabulary_sizes() -> None:
    assert 10 <= SyntheticScenes.num_labels <= 20
    assert SyntheticScenes.num_scene_classes >= 10
    assert SyntheticScenes.num_attributes >= 5
    assert SyntheticScenes.vocab[0] == "<pad>"
    assert len(set(SyntheticScenes.vocab)) == SyntheticScenes.vocab_size
    assert set(SyntheticScenes.provides) <= set(FIELDS)


def test_deterministic_in_object_and_across_objects() -> None:
    a, b = SyntheticScenes(10, 48, 40, seed=7), SyntheticScenes(10, 48, 40, seed=7)
    for i in (0, 5, 9):
        first, again, fresh = a[i], a[i], b[i]
        for key in a.provides:
            assert torch.equal(first[key], again[key]), key
            assert torch.equal(first[key], fresh[key]), key


def test_deterministic_across_processes() -> None:
    code = (
        "from ganzoo.data.synthetic import SyntheticScenes as S; import hashlib;"
        "x = S(5, 40, 56, seed=11, split='val')[4];"
        "print(hashlib.sha256(b''.join(x[k].numpy().tobytes() for k in S.provides)).hexdigest())"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    x = SyntheticScenes(5, 40, 56, seed=11, split="val")[4]
    digest = hashlib.sha256(b"".join(x[k].numpy().tobytes() for k in x)).hexdigest()
    assert out.stdout.strip() == digest


def test_seeds_and_splits_differ() -> None:
    images = [
        SyntheticScenes(4, 32, 32, seed=seed, split=split)[2]["image"]
        for seed, split in [(0, "train"), (1, "train"), (0, "val"), (0, "test")]
    ]
    for i in range(len(images)):
        for j in range(i + 1, len(images)):
            assert not torch.equal(images[i], images[j])
    same = SyntheticScenes(4, 32, 32)
    assert not torch.equal(same[0]["image"], same[1]["image"])


@pytest.mark.parametrize("height,width", [(32, 32), (64, 128), (48, 32), (17, 23)])
def test_fields_match_contract(height: int, width: int) -> None:
    data = SyntheticScenes(6, height, width, caption_length=18)
    sizes = {"H": height, "W": width, "A": data.num_attributes, "T": 18}
    for i in range(len(data)):
        sample = data[i]
        assert set(sample) == set(data.provides)
        for key, value in sample.items():
            dtype, shape, _ = FIELDS[key]
            assert value.dtype == dtype, key
            expected = tuple(sizes.get(s, 3) for s in shape.split(",")) if shape else ()
            assert tuple(value.shape) == expected, key
        assert -1.0 <= sample["image"].min() and sample["image"].max() <= 1.0
        assert 0 <= sample["label_map"].min() and sample["label_map"].max() < data.num_labels
        assert 0 <= int(sample["class_id"]) < data.num_scene_classes
        assert set(sample["attributes"].tolist()) <= {0.0, 1.0}
        assert 1 <= int(sample["caption_lengths"]) <= 18
    batch = collate([data[i] for i in range(3)])
    assert batch.image.shape == (3, 3, height, width) and batch.size == 3


def test_out_of_range_and_bad_split() -> None:
    with pytest.raises(IndexError):
        SyntheticScenes(3, 8, 8)[3]
    with pytest.raises(ValueError, match="train, val, test"):
        SyntheticScenes(3, 8, 8, split="dev")  # type: ignore[arg-type]


def test_labels_and_instances_agree() -> None:
    data = SyntheticScenes(40, 40, 56, seed=1)
    for i in range(len(data)):
        _, label, instance, info = data.render(i)
        is_object = label >= NUM_BACKGROUND
        assert np.array_equal(instance > 0, is_object)
        assert sorted(np.unique(instance[instance > 0])) == list(range(1, len(info.objects) + 1))
        for obj in info.objects:
            shapes = np.unique(label[instance == obj.instance])
            assert shapes.tolist() == [data.label_names.index(obj.shape)]
            assert obj.pixels == int((instance == obj.instance).sum())


def test_objects_occlude_each_other() -> None:
    data = SyntheticScenes(60, 64, 64, seed=2)
    occluded = 0
    for i in range(len(data)):
        _, label, instance, info = data.render(i)
        alone = [
            int((paint_objects(replace(info.scene, objects=(obj,)), label.copy())[0] > 0).sum())
            for obj in info.scene.objects
        ]
        occluded += int(sum(alone) > int((instance > 0).sum()))
    assert occluded >= 10


def test_geometry_scales_with_resolution() -> None:
    small, large = SyntheticScenes(8, 32, 48, seed=4), SyntheticScenes(8, 64, 96, seed=4)
    for i in range(len(small)):
        coarse, fine = small[i]["label_map"], large[i]["label_map"]
        agree = (coarse == fine[1::2, 1::2]).float().mean()
        assert agree > 0.9
        assert small.caption(i).split()[-4:] == large.caption(i).split()[-4:]


def test_images_are_textured_not_flat() -> None:
    data = SyntheticScenes(20, 64, 64, seed=5)
    for i in range(len(data)):
        sample = data[i]
        image, label = sample["image"], sample["label_map"]
        for lab in label.unique():
            region = image[:, label == lab]
            if region.shape[1] > 50:
                assert region.std(dim=1).max() > 0.005


def test_objects_have_the_colour_they_are_named() -> None:
    data = SyntheticScenes(120, 24, 24, seed=9)
    names = list(COLOURS)
    palette = np.asarray([COLOURS[n] for n in names])
    checked = 0
    for i in range(len(data)):
        rgb, _, instance, info = data.render(i)
        for obj in info.objects if not info.scene.night else ():
            if obj.pixels >= 20:
                mean = rgb[instance == obj.instance].mean(0)
                assert names[int(((palette - mean) ** 2).sum(1).argmin())] == obj.colour
                checked += 1
    assert checked > 50


def test_captions_name_what_is_there() -> None:
    data = SyntheticScenes(60, 48, 48, seed=6)
    vocab = set(data.vocab)
    for i in range(len(data)):
        sample, info = data[i], data.describe(i)
        words = info.caption.split()
        assert set(words) <= vocab
        assert data.decode(sample["caption_tokens"]) == info.caption == data.caption(i)
        assert int(sample["caption_lengths"]) == len(words)
        named = sorted(info.objects, key=lambda o: -o.pixels)[:2]
        for obj in named:
            assert f"{obj.size} {obj.colour} {obj.shape}" in info.caption
        mentioned = [w for w in words if w in SHAPES]
        assert len(mentioned) == min(2, len(info.objects))
        assert " ".join(words[-5:-2]) == PLACES[info.scene.layout]
        assert words[-2:] == (["at", "night"] if info.scene.night else ["by", "day"])


def test_caption_relations_follow_centroids() -> None:
    data = SyntheticScenes(40, 64, 64, seed=8)
    for i in range(len(data)):
        info = data.describe(i)
        if len(info.objects) < 2:
            continue
        first, second = sorted(info.objects, key=lambda o: -o.pixels)[:2]
        (x1, y1), (x2, y2) = first.centroid, second.centroid
        if " left of " in info.caption:
            assert x1 < x2
        elif " right of " in info.caption:
            assert x1 > x2
        elif " above " in info.caption:
            assert y1 < y2
        else:
            assert " below " in info.caption and y1 > y2


def test_attributes_agree_with_content(many: SyntheticScenes) -> None:
    names = many.attribute_names
    day_sky, night_sky = [], []
    for i in range(120):
        sample = many[i]
        rgb, label = sample["image"], sample["label_map"]
        attrs = dict(zip(names, sample["attributes"].tolist(), strict=True))
        labels = set(label.unique().tolist())
        assert attrs["has_water"] == float(WATER in labels)
        assert attrs["has_mountains"] == float(bool({MOUNTAIN, SNOW} & labels))
        assert attrs["has_circle"] == float(many.label_names.index("circle") in labels)
        info = many.describe(i)
        assert attrs["night"] == float(info.scene.night)
        assert not ({SKY, CLOUD} if info.scene.night else {NIGHT_SKY}) & labels
        sky = rgb[:, (label == SKY) | (label == NIGHT_SKY)]
        if sky.shape[1]:
            (night_sky if attrs["night"] else day_sky).append(float(sky.mean()))
        red = [o for o in info.objects if o.colour == "red"]
        assert attrs["has_red_object"] == float(bool(red))
        for obj in red:
            r, g, b = rgb[:, sample["instance_map"] == obj.instance].mean(1).tolist()
            assert r > g and r > b
        assert attrs["has_large_object"] == float(any(o.size == "large" for o in info.objects))
    assert max(night_sky) < min(day_sky)


def test_classes_attributes_and_labels_all_occur(many: SyntheticScenes) -> None:
    batch = stack(many, range(len(many)))
    assert set(batch["class_id"].tolist()) == set(range(many.num_scene_classes))
    frequency = batch["attributes"].mean(0)
    assert bool(((frequency > 0.1) & (frequency < 0.9)).all()), frequency
    assert set(batch["label_map"].unique().tolist()) == set(range(many.num_labels))
    counts = (batch["instance_map"].flatten(1).max(1).values).tolist()
    assert min(counts) >= 1 and max(counts) >= 4


def test_colour_segmenter_separates_real_from_noise_and_shuffled() -> None:
    train = stack(SyntheticScenes(64, 32, 32, seed=0, split="train"), range(64))
    val = stack(SyntheticScenes(32, 32, 32, seed=0, split="val"), range(32))
    labels = SyntheticScenes.num_labels
    segmenter = ColourSegmenter().fit(train["image"], train["label_map"], labels)
    target = val["label_map"]
    pred = segmenter.predict(val["image"])
    noise = torch.rand(val["image"].shape, generator=torch.Generator().manual_seed(0)) * 2 - 1
    pred_noise = segmenter.predict(noise)
    shuffled = target.roll(1, dims=0)
    real_acc, real_iou = pixel_accuracy(pred, target), mean_iou(pred, target, labels)
    assert real_acc > 0.7 and real_iou > 0.3
    assert real_acc > pixel_accuracy(pred_noise, target) + 0.4
    assert real_acc > pixel_accuracy(pred, shuffled) + 0.3
    assert real_iou > 2 * mean_iou(pred_noise, target, labels)
    assert real_iou > 2 * mean_iou(pred, shuffled, labels)


def test_metrics_on_known_maps() -> None:
    target = torch.tensor([[[0, 0, 1, 1]]])
    pred = torch.tensor([[[0, 1, 1, 1]]])
    assert pixel_accuracy(pred, target) == pytest.approx(0.75)
    # class 0: 1 / 2, class 1: 2 / 3, class 2 absent from both and ignored
    assert mean_iou(pred, target, 3) == pytest.approx((0.5 + 2 / 3) / 2)
    with pytest.raises(RuntimeError):
        ColourSegmenter().predict(torch.zeros(1, 3, 4, 4))
