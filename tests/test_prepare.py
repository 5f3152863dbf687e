"""Fast caches (`python -m ganzoo.data.prepare`): round trip, manifest, stale caches refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ganzoo.core.errors import DataError
from ganzoo.data.cache import write_cache
from ganzoo.data.celeba import CelebA
from ganzoo.data.cityscapes import Cityscapes
from ganzoo.data.prepare import prepare
from tests.conftest import run_cli
from tests.test_datasets import ade, make_ade20k, make_celeba, make_cityscapes, rgb


def test_cache_round_trip_equals_direct_decoding(tmp_path: Path) -> None:
    root = make_ade20k(tmp_path / "ADEChallengeData2016")
    cache = tmp_path / "cache"
    for split in ("training", "validation"):
        direct = ade(root, split)
        manifest = write_cache(direct, cache)
        assert manifest["resize_filter"] == "bicubic" and manifest["resolution"] == [8, 8]
        assert manifest["source_counts"] == {"samples": len(direct), "files": 2 * len(direct)}
        assert len(manifest["files_sha256"]) == 64
        cached = ade(root, split, cache_dir=cache)
        assert cached.cache is not None
        for i in range(len(direct)):
            a, b = direct.pixels(i), cached.pixels(i)
            assert a[0] == b[0]
            assert all(np.array_equal(a[1][k], b[1][k]) for k in a[1])
            x, y = direct[i], cached[i]  # same seed, same draws: identical samples
            assert all(torch.equal(x[k], y[k]) for k in x)
    on_disk = json.loads((cache / "training-8x8" / "manifest.json").read_text())
    assert on_disk["params"] == {"load_size": [10, 10]} and on_disk["count"] == 3


def test_cache_keeps_16_bit_instances_and_attributes(tmp_path: Path) -> None:
    root = make_cityscapes(tmp_path / "cityscapes")
    args = ("val", 8, 16, "bicubic", True, "fail")
    write_cache(Cityscapes(root, *args, None, 0), tmp_path / "c")  # type: ignore[arg-type]
    sample = Cityscapes(root, *args, tmp_path / "c", 0)[1]  # type: ignore[arg-type]
    assert set(sample["instance_map"].unique().tolist()) == {7, 26000, 26001}
    croot, _ = make_celeba(tmp_path / "celeba")
    kw = dict(
        height=8, width=8, attributes=["Male"], crop_size=8, partition="eval_partition",
        resize_filter="bilinear", random_flip=True, on_corrupt="fail", seed=0,
    )  # fmt: skip
    direct = CelebA(croot, "train", cache_dir=None, **kw)  # type: ignore[arg-type]
    write_cache(direct, tmp_path / "cc")
    cached = CelebA(croot, "train", cache_dir=tmp_path / "cc", **kw)  # type: ignore[arg-type]
    assert torch.equal(cached[2]["attributes"], direct[2]["attributes"])


def test_stale_cache_is_refused_with_one_line(tmp_path: Path) -> None:
    root = make_ade20k(tmp_path / "ADEChallengeData2016")
    cache = tmp_path / "cache"
    write_cache(ade(root), cache)
    with pytest.raises(DataError) as err:
        ade(root, resize_filter="lanczos", cache_dir=cache)
    message = str(err.value)
    assert "\n" not in message and "stale cache" in message
    assert 'resize_filter="bicubic"' in message and "ganzoo.data.prepare data=ade20k" in message
    with pytest.raises(DataError, match="load_size"):
        ade(root, load_ratio=1.5, cache_dir=cache)
    rgb(root / "images/training/ADE_train_00000009.jpg")  # a new image: count and file list
    (root / "annotations/training/ADE_train_00000001.png").rename(
        root / "annotations/training/ADE_train_00000009.png"
    )
    (root / "images/training/ADE_train_00000001.jpg").unlink()
    with pytest.raises(DataError, match="files_sha256"):
        ade(root, cache_dir=cache)
    assert ade(root, height=6, width=6, cache_dir=cache).cache is None  # other size: no cache


def test_cache_prepared_with_skips_is_refused_under_fail(tmp_path: Path) -> None:
    root = make_ade20k(tmp_path / "ADEChallengeData2016")
    (root / "images/training/ADE_train_00000001.jpg").write_bytes(b"broken")
    cache = tmp_path / "cache"
    with pytest.warns(UserWarning):
        manifest = write_cache(ade(root, on_corrupt="skip"), cache)
    assert manifest["skipped"] == ["ADE_train_00000001.jpg"]
    assert ade(root, on_corrupt="skip", cache_dir=cache).skipped == 1
    with pytest.raises(DataError, match="on_corrupt=fail"):
        ade(root, cache_dir=cache)


def test_prepare_command_writes_caches_the_adapter_uses(tmp_path: Path) -> None:
    root = make_ade20k(tmp_path / "ADEChallengeData2016")
    cache = tmp_path / "cache"
    proc = run_cli(
        "ganzoo.data.prepare",
        "data=ade20k",
        f"data.root={root}",
        "data.resolution=8",
        f"data.dataset.cache_dir={cache}",
    )
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.strip().splitlines()]
    assert [(d["split"], d["samples"]) for d in lines] == [("training", 3), ("validation", 2)]
    assert ade(root, cache_dir=cache, load_ratio=1.1171875).cache is not None  # 8 * 286/256 = 9


def test_prepare_without_the_dataset_names_the_layout(make_cfg, tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        prepare(make_cfg("data=cityscapes", f"data.root={tmp_path / 'none'}"))
    assert "expected layout <root>/leftImg8bit" in str(err.value)
    assert str(tmp_path / "none") in str(err.value)
