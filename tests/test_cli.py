"""The command line as a user meets it: info, errors, a smoke run that writes its files."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from tests.conftest import REPO, run_cli

PARAMS = json.loads((REPO / "reference" / "params.json").read_text())["params"]


def _info(*args: str) -> dict:
    proc = run_cli("ganzoo.info", *args)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_info_spade_ade20k_matches_official_counts() -> None:
    ref = PARAMS["spade"]["ade20k_256x256"]
    info = _info("model=spade", "data=ade20k")
    assert info["parameters"] == {"G": ref["G"], "D": ref["D"]}
    assert info["shapes"]["G"]["inputs"] == [[1, 151, 256, 256]]
    assert info["shapes"]["G"]["output"] == [1, 3, 256, 256]
    assert info["shapes"]["D"]["inputs"] == [[1, 154, 256, 256]]


def test_info_spade_ade20k_vae_matches_official_counts() -> None:
    ref = PARAMS["spade"]["ade20k_256x256_vae"]
    info = _info("model=spade", "data=ade20k", "model.use_vae=true")
    assert info["parameters"] == {"G": ref["G"], "D": ref["D"], "E": ref["E"]}
    assert info["shapes"]["G"]["inputs"] == [[1, 151, 256, 256], [1, 256]]


def test_info_cityscapes_uses_more_upsampling_and_2to1_aspect() -> None:
    info = _info("model=spade", "data=cityscapes")
    assert info["resolution"] == [256, 512]
    assert info["shapes"]["G"]["inputs"] == [[1, 36, 256, 512]]  # 35 labels + instance edges
    assert info["shapes"]["G"]["output"] == [1, 3, 256, 512]


def test_unknown_group_choice_lists_valid_options() -> None:
    proc = run_cli("ganzoo.info", "optim=spade_paperr")
    assert proc.returncode == 2
    valid = sorted(p.stem for p in (REPO / "conf/optim").glob("*.yaml"))
    assert "spade_paper" in valid
    assert (
        proc.stderr.strip()
        == f"error: unknown optim=spade_paperr; valid choices: {', '.join(valid)}"
    )


def test_unknown_key_lists_valid_keys() -> None:
    proc = run_cli("ganzoo.info", "model.generator.ngff=3")
    assert proc.returncode == 2
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("error: unknown key model.generator.ngff")
    assert "ngf" in line and "num_upsampling_layers" in line


def test_missing_vgg_weights_is_one_clear_line(tmp_path: Path) -> None:
    proc = run_cli(
        "ganzoo.train",
        "debug=smoke",
        "logger=csv",
        "model.lambda_vgg=10",
        f"paths.output_dir={tmp_path}",
        f"paths.weights_dir={tmp_path / 'weights'}",
    )
    assert proc.returncode == 2
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("error: weights.vgg19")
    assert "vgg19-dcbb9e9d.pth" in line and str(tmp_path / "weights") in line
    assert "sha256" in line


def test_missing_dataset_root_names_the_layout(tmp_path: Path) -> None:
    missing = tmp_path / "ADEChallengeData2016"
    proc = run_cli(
        "ganzoo.train",
        "data=ade20k",
        "debug=smoke",
        f"data.root={missing}",
        f"paths.output_dir={tmp_path}",
    )
    assert proc.returncode == 2
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("error: data=ade20k: folder ") and str(missing) in line
    assert "expected layout <root>/images/{training,validation}/ADE_*.jpg" in line


def test_smoke_run_writes_checkpoints_samples_and_metrics(tmp_path: Path) -> None:
    proc = run_cli("ganzoo.train", "debug=smoke", "logger=default", f"paths.output_dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = tmp_path / "spade-synthetic"
    assert (run_dir / "config.yaml").is_file()
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert (run_dir / "checkpoints" / "iter_0000004.ckpt").is_file()
    pngs = sorted((run_dir / "samples").glob("iter_*.png"))
    assert [p.name for p in pngs] == ["iter_0000002.png", "iter_0000004.png"]
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    losses = [float(r[k]) for r in rows for k in r if k.startswith("loss/") and r[k] != ""]
    assert losses and all(math.isfinite(v) for v in losses)
    assert any(k == "loss/G/feat" for k in rows[0])
    assert list((run_dir / "wandb").glob("offline-run-*")), "W&B offline run missing"


@pytest.mark.parametrize(
    "experiment", sorted(p.stem for p in (REPO / "conf/experiment").glob("*.yaml"))
)
def test_every_experiment_composes(experiment: str, make_cfg) -> None:
    cfg = make_cfg(f"experiment={experiment}")
    assert cfg.steps > 0 and cfg.model._target_ and cfg.data._target_
