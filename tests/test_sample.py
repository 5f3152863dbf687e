"""`python -m ganzoo.sample`: a run rebuilt from its checkpoint alone renders label-map files.

pix2pixHD's cluster / render round trip is in tests/test_pix2pixhd.py; here the generic path
(SPADE, which has no render hook of its own) and the one-line errors.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganzoo.cli.build import build_datamodule, train
from ganzoo.core.errors import ConfigError
from ganzoo.sample import main_fn
from tests.conftest import compose_train, run_cli

SMOKE = [
    "debug=smoke",
    "logger=csv",
    "trainer.enable_progress_bar=false",
    "callbacks.samples=null",
    "steps=2",
]


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """One intra-op thread: the 2 CPU cores of the test machines are shared with other jobs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def spade_run(tmp_path_factory: pytest.TempPathFactory, one_thread: None) -> tuple[Path, Path]:
    """(checkpoint, label-map PNG) of a 2-step SPADE smoke run."""
    root = tmp_path_factory.mktemp("spade")
    cfg = compose_train(root / "run", SMOKE)
    train(cfg)
    label = build_datamodule(cfg).fixed_batch(1).label_map[0]
    png = root / "scene.png"
    Image.fromarray(label.numpy().astype(np.uint8), mode="L").save(png)
    return root / "run" / "checkpoints" / "last.ckpt", png


def _sample(tmp_path: Path, *overrides: str) -> dict:
    return main_fn(compose_train(tmp_path, list(overrides), config_name="sample"))


def test_spade_renders_a_label_map_file(spade_run: tuple[Path, Path], tmp_path: Path) -> None:
    ckpt, png = spade_run
    out = _sample(tmp_path, f"ckpt={ckpt}", f"label_map={png}", "num_samples=2")
    files = [Path(f) for f in out["files"]]
    assert [f.name for f in files] == ["scene_0.png", "scene_1.png", "scene_grid.png"]
    assert files[0].parent == ckpt.parent.parent / "samples" / "render"
    assert np.array(Image.open(files[0])).shape == (32, 32, 3)
    assert np.array(Image.open(files[2])).shape[1] > 3 * 32  # label map | two samples
    assert "one instance per class" in out["note"]  # SPADE uses instance edges here


def test_errors_are_one_line(spade_run: tuple[Path, Path], tmp_path: Path) -> None:
    ckpt, png = spade_run
    with pytest.raises(ConfigError, match="needs ckpt=PATH"):
        _sample(tmp_path)
    with pytest.raises(ConfigError, match="unknown action=draw; valid: render, cluster"):
        _sample(tmp_path, f"ckpt={ckpt}", "action=draw")
    with pytest.raises(ConfigError, match="does not exist"):
        _sample(tmp_path, f"ckpt={tmp_path / 'missing.ckpt'}")
    rgb = tmp_path / "rgb.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(rgb)
    with pytest.raises(ConfigError, match="one-channel PNG of ids"):
        _sample(tmp_path, f"ckpt={ckpt}", f"label_map={rgb}")
    proc = run_cli("ganzoo.sample", f"ckpt={ckpt}", "action=cluster")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "no instance features to cluster" in proc.stderr
    assert torch.load(ckpt, weights_only=True)["ganzoo_config"]["model"]["_target_"].endswith(
        "SpadeTask"
    )
