"""`python -m ganzoo.sample`: a run rebuilt from its checkpoint alone renders label-map files,
and latent models (StyleGAN2 here) generate, style-mix and interpolate without the dataset.

pix2pixHD's cluster / render round trip is in tests/test_pix2pixhd.py; here the generic path
(SPADE, which has no render hook of its own), the latent actions and the one-line errors.
"""

from __future__ import annotations

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


pytestmark = pytest.mark.usefixtures("one_thread")


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


# ----- latent models: generate, mix, interpolate ---------------------------------------------
@pytest.fixture(scope="module")
def stylegan2_ckpt(tmp_path_factory: pytest.TempPathFactory, one_thread: None) -> Path:
    """Checkpoint of a 2-step unconditional StyleGAN2 smoke run (32x32)."""
    root = tmp_path_factory.mktemp("stylegan2")
    train(compose_train(root / "run", [*SMOKE, "model=stylegan2"]))
    return root / "run" / "checkpoints" / "last.ckpt"


def _pixels(path: str | Path) -> np.ndarray:
    return np.array(Image.open(path)).astype(np.int64)


def _cell(grid_png: np.ndarray, row: int, col: int, size: int = 32, pad: int = 2) -> np.ndarray:
    y, x = pad + row * (size + pad), pad + col * (size + pad)
    return grid_png[y : y + size, x : x + size]


def test_generate_writes_a_png_per_seed_and_is_deterministic(
    stylegan2_ckpt: Path, tmp_path: Path
) -> None:
    ckpt = stylegan2_ckpt
    out = _sample(tmp_path, f"ckpt={ckpt}", "action=generate", "seeds=[0,1,2]")
    files = [Path(f) for f in out["files"]]
    assert [f.name for f in files] == ["seed0000.png", "seed0001.png", "seed0002.png", "grid.png"]
    assert files[0].parent == ckpt.parent.parent / "samples" / "generate"
    images = [_pixels(f) for f in files[:3]]
    assert images[0].shape == (32, 32, 3) and not np.array_equal(images[0], images[1])
    sheet = _pixels(files[3])
    assert sheet.shape == (36, 3 * 34 + 2, 3)  # one row, a column per seed
    assert np.array_equal(_cell(sheet, 0, 2), images[2])
    again = _sample(
        tmp_path, f"ckpt={ckpt}", "action=generate", "seeds=[0,1,2]", f"output={tmp_path / 'again'}"
    )
    assert all(np.array_equal(_pixels(f), i) for f, i in zip(again["files"], images, strict=False))
    alone = _sample(
        tmp_path, f"ckpt={ckpt}", "action=generate", "seeds=[2]", f"output={tmp_path / 'alone'}"
    )
    assert np.abs(_pixels(alone["files"][0]) - images[2]).max() <= 1  # the seed's z, any batch
    mean = _sample(
        tmp_path, f"ckpt={ckpt}", "action=generate", "truncation=0", f"output={tmp_path / 'psi0'}"
    )
    same = [_pixels(f) for f in mean["files"][:-1]]
    assert len(same) == 4 and all(np.array_equal(same[0], other) for other in same[1:])


def test_style_mixing_grid(stylegan2_ckpt: Path, tmp_path: Path) -> None:
    ckpt = stylegan2_ckpt
    common = [f"ckpt={ckpt}", "row_seeds=[0,1]", "col_seeds=[2,3,4]"]
    out = _sample(tmp_path, *common, "action=mix", "mix_layers=[0,1,2,3,4,5,6,7]")
    names = [Path(f).name for f in out["files"]]
    assert names == ["0-2.png", "0-3.png", "0-4.png", "1-2.png", "1-3.png", "1-4.png", "grid.png"]
    sheet = _pixels(out["files"][-1])
    assert sheet.shape == (3 * 34 + 2, 4 * 34 + 2, 3)  # header row and column
    assert (_cell(sheet, 0, 0) == 255).all()  # blank corner
    generated = _sample(tmp_path, f"ckpt={ckpt}", "action=generate", "seeds=[0,1,2,3,4]")
    seeds = [_pixels(f) for f in generated["files"][:-1]]
    # all 8 ws from the column: each cell is the column's image; header row / column the seeds'
    assert np.abs(_pixels(out["files"][4]) - seeds[3]).max() <= 1  # row 1, column seed 3
    assert np.abs(_cell(sheet, 0, 2) - seeds[3]).max() <= 1  # grid column 2: col_seeds[1]
    assert np.abs(_cell(sheet, 2, 0) - seeds[1]).max() <= 1
    coarse = _sample(
        tmp_path, *common, "action=mix", "mix_layers=[0,1]", f"output={tmp_path / 'coarse'}"
    )
    cell = _pixels(coarse["files"][4])
    assert not np.array_equal(cell, seeds[3]) and not np.array_equal(cell, seeds[1])
    with pytest.raises(ConfigError, match=r"mixing layers must be in \[0, 8\)"):
        _sample(tmp_path, *common, "action=mix", "mix_layers=[8]")


def test_interpolation_frames_start_and_end_at_the_seeds(
    stylegan2_ckpt: Path, tmp_path: Path
) -> None:
    ckpt = stylegan2_ckpt
    out = _sample(tmp_path, f"ckpt={ckpt}", "action=interpolate", "seeds=[0,1,2]", "steps=5")
    assert (out["rows"], out["steps"]) == (2, 5)
    sheet = _pixels(out["files"][0])
    assert sheet.shape == (2 * 34 + 2, 5 * 34 + 2, 3)
    generated = _sample(tmp_path, f"ckpt={ckpt}", "action=generate", "seeds=[0,1,2]")
    seeds = [_pixels(f) for f in generated["files"][:-1]]
    assert np.abs(_cell(sheet, 0, 0) - seeds[0]).max() <= 1
    assert np.abs(_cell(sheet, 0, 4) - seeds[1]).max() <= 1
    assert np.abs(_cell(sheet, 1, 4) - seeds[2]).max() <= 1
    middle = _cell(sheet, 0, 2)
    assert not np.array_equal(middle, seeds[0]) and not np.array_equal(middle, seeds[1])


def test_latent_actions_give_one_line_errors(
    stylegan2_ckpt: Path, spade_run: tuple[Path, Path], tmp_path: Path
) -> None:
    ckpt = f"ckpt={stylegan2_ckpt}"
    with pytest.raises(ConfigError, match="is for latent models .* SpadeTask has no draw_latents"):
        _sample(tmp_path, f"ckpt={spade_run[0]}", "action=generate")
    with pytest.raises(ConfigError, match="classes are for a class-conditional model"):
        _sample(tmp_path, ckpt, "action=generate", "classes=[1]")
    with pytest.raises(ConfigError, match="seeds must be a non-empty list of integers"):
        _sample(tmp_path, ckpt, "action=generate", "seeds=7")
    with pytest.raises(ConfigError, match="at least 2 seeds"):
        _sample(tmp_path, ckpt, "action=interpolate", "seeds=[3]")
    with pytest.raises(ConfigError, match="action=mix takes one class"):
        _sample(tmp_path, ckpt, "action=mix", "classes=[1,2]")
    with pytest.raises(ConfigError, match=r"seeds must be in \[0, 2\*\*32\)"):
        _sample(tmp_path, ckpt, "action=generate", "seeds=[-1]")
