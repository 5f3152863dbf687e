"""Metrics where a user meets them: the training callback and `python -m ganzoo.evaluate`."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from ganzoo.cli.build import train
from ganzoo.evaluate import evaluate
from tests.conftest import compose_train, run_cli
from tests.test_metrics import (  # noqa: F401  (session fixtures shared with test_metrics)
    TEST_RECIPE,
    _scenes,
    _write_pngs,
    inception_file,
    scene_cache,
)

SMOKE = ["debug=smoke", "logger=csv", "trainer.enable_progress_bar=false", "callbacks.samples=null"]


def _recipe(prefix: str = "metrics.scene_evaluator") -> list[str]:
    return [f"{prefix}.{k}={v}" for k, v in TEST_RECIPE.items()]


def test_training_callback_writes_jsonl_logs_and_matches_checkpoint_evaluation(
    tmp_path: Path,
    scene_cache: Path,  # noqa: F811  (the shared fixture)
) -> None:
    metric_args = [
        "metrics=[domain,miou]",
        "metrics.num_samples=8",
        "metrics.batch_size=4",
        f"paths.cache_dir={scene_cache}",
        *_recipe(),
    ]
    run_dir = tmp_path / "run"
    cfg = compose_train(run_dir, [*SMOKE, "metrics.every_n_iterations=2", *metric_args])
    logged = train(cfg)
    lines = [json.loads(s) for s in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [line["iteration"] for line in lines] == [2, 4]  # every 2 iterations; 4 is the end
    last = lines[-1]
    assert set(last["metrics"]) == {"miou", "pixel_accuracy", "domain_fid", "class_accuracy"}
    provenance = last["provenance"]
    assert provenance["num_fake"] == 8 and provenance["num_real"] == 8
    assert provenance["split"] == "val" and provenance["height"] == 32
    assert provenance["seed"] == 0 and provenance["world_size"] == 1
    hparams = (run_dir / "hparams.yaml").read_text()  # the CSV logger's copy of the provenance
    assert "metrics_provenance:" in hparams and provenance["scene_evaluator"]["weights_sha256"] in (
        hparams
    )
    assert len(provenance["scene_evaluator"]["weights_sha256"]) == 64
    assert logged["metrics/miou"] == pytest.approx(last["metrics"]["miou"])
    with (run_dir / "metrics.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r.get("metrics/domain_fid")]
    assert [float(r["metrics/domain_fid"]) for r in rows] == pytest.approx(
        [line["metrics"]["domain_fid"] for line in lines]
    )

    # the checkpoint, evaluated afterwards, gives the numbers of the callback's last evaluation
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    eval_cfg = compose_train(
        tmp_path / "eval",
        [f"ckpt={ckpt}", "device=cpu", *metric_args],
        config_name="evaluate",
    )
    result = evaluate(eval_cfg)
    assert result["iteration"] == 4
    for key, value in last["metrics"].items():
        assert result["metrics"][key] == pytest.approx(value, rel=1e-6, abs=1e-9), key


def test_evaluate_checkpoint_with_every_inception_metric_prints_one_json_object(
    tmp_path: Path,
    scene_cache: Path,  # noqa: F811  (the shared fixtures)
    inception_file: Path,  # noqa: F811
) -> None:
    run_dir = tmp_path / "run"
    train(compose_train(run_dir, [*SMOKE, "steps=2"]))
    proc = run_cli(
        "ganzoo.evaluate",
        f"ckpt={run_dir / 'checkpoints' / 'last.ckpt'}",
        "metrics=[fid,kid,is,pr,miou]",
        "metrics.num_samples=4",  # KID: subsets of all 4; precision / recall: k = 3 < 4
        "metrics.batch_size=2",
        "metrics.compute.is.splits=2",
        f"weights.inception={inception_file}",
        f"paths.cache_dir={scene_cache}",
        *_recipe(),
        f"hydra.run.dir={tmp_path / 'out'}",
        "device=cpu",
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)  # exactly one JSON object
    assert set(result["metrics"]) == {
        "fid", "kid_mean", "kid_std", "is_mean", "is_std", "precision", "recall", "miou",
        "pixel_accuracy",
    }  # fmt: skip
    assert result["metrics"]["fid"] > 0 and result["iteration"] == 2
    provenance = result["provenance"]
    assert provenance["kid_subset_size"] == 4 and provenance["seed"] == 0
    assert provenance["inception"]["weights_sha256"] and provenance["segmenter"]["extractor"]
    assert json.loads((tmp_path / "out" / "evaluation.json").read_text()) == result


def test_callback_scores_pix2pixhd_at_the_end_of_training(
    tmp_path: Path,
    scene_cache: Path,  # noqa: F811  (the shared fixture)
) -> None:
    run_dir = tmp_path / "run"
    overrides = [
        "model=pix2pixhd",
        *SMOKE,
        "metrics=[miou,domain]",
        "metrics.every_n_iterations=0",  # only at the end
        "metrics.num_samples=4",
        "metrics.batch_size=2",
        f"paths.cache_dir={scene_cache}",
        *_recipe(),
    ]
    logged = train(compose_train(run_dir, overrides))
    lines = [json.loads(s) for s in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [line["iteration"] for line in lines] == [4]
    numbers = lines[0]["metrics"]
    assert set(numbers) == {"miou", "pixel_accuracy", "domain_fid", "class_accuracy"}
    assert 0 <= numbers["miou"] <= 1 and 0 <= numbers["pixel_accuracy"] <= 1
    assert numbers["domain_fid"] > 0
    assert logged["metrics/domain_fid"] == pytest.approx(numbers["domain_fid"])


def test_evaluate_two_folders_prints_one_json_object(
    tmp_path: Path,
    inception_file: Path,  # noqa: F811  (the shared fixture)
) -> None:
    real = _write_pngs(tmp_path / "real", _scenes(4)["image"])
    fake = _write_pngs(tmp_path / "fake", -_scenes(4, start=4)["image"])
    proc = run_cli(
        "ganzoo.evaluate",
        f"real={real}",
        f"fake={fake}",
        "metrics=[fid,kid,is]",
        "metrics.compute.kid.subset_size=3",
        "metrics.compute.is.splits=2",
        f"weights.inception={inception_file}",
        f"hydra.run.dir={tmp_path / 'out'}",
        "device=cpu",
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert set(result["metrics"]) == {"fid", "kid_mean", "kid_std", "is_mean", "is_std"}
    assert result["metrics"]["fid"] > 0
    inception = result["provenance"]["inception"]
    assert inception["resize"] == "tf_bilinear" and inception["weights_published"] is False
    assert result["provenance"]["num_real"] == 4 and result["provenance"]["num_fake"] == 4
    assert json.loads((tmp_path / "out" / "evaluation.json").read_text()) == result


def test_evaluate_without_the_inception_file_is_one_line(tmp_path: Path) -> None:
    folder = _write_pngs(tmp_path / "images", _scenes(2)["image"])
    proc = run_cli(
        "ganzoo.evaluate",
        f"real={folder}",
        f"fake={folder}",
        f"paths.weights_dir={tmp_path / 'weights'}",
        f"hydra.run.dir={tmp_path / 'out'}",
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: weights.inception: file ")
    assert (
        "pt_inception-2015-12-05-6726825d.pth" in lines[0] and str(tmp_path / "weights") in lines[0]
    )
    assert "sha256 6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2" in lines[0]
    assert proc.stdout == ""


def test_metric_choices_and_misuse_are_one_line_errors(tmp_path: Path) -> None:
    proc = run_cli("ganzoo.evaluate", "metrics=fidd", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 2
    assert (
        proc.stderr.strip()
        .splitlines()[-1]
        .startswith(
            "error: unknown metrics=fidd; valid choices: attributes, domain, fid, is, kid, "
            "miou, none, pr, rprecision, target_fid"
        )
    )
    folder = _write_pngs(tmp_path / "images", _scenes(2)["image"])
    cfg = compose_train(
        tmp_path / "eval", [f"real={folder}", f"fake={folder}", "metrics=miou"], "evaluate"
    )
    from ganzoo.core.errors import ConfigError

    with pytest.raises(ConfigError, match="image folders have no label maps"):
        evaluate(cfg)
    cfg = compose_train(
        tmp_path / "eval1", [f"real={folder}", f"fake={folder}", "metrics=rprecision"], "evaluate"
    )
    with pytest.raises(ConfigError, match="metrics=rprecision needs a checkpoint"):
        evaluate(cfg)


def test_default_training_config_has_the_metric_callback_idle() -> None:
    cfg = compose_train(Path("unused"), [])
    assert dict(cfg.metrics.compute) == {}
    from hydra.utils import instantiate

    callback = instantiate(cfg.callbacks.metrics)
    assert not callback.active
