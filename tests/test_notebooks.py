"""notebooks/: the quickstart and the model-zoo tour execute top to bottom (smoke settings)."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import REPO


def _execute(name: str, work: Path) -> nbformat.NotebookNode:
    nb = nbformat.read(REPO / "notebooks" / name, as_version=4)
    env = {
        "GANZOO_NOTEBOOK_DIR": str(work),
        "GANZOO_NOTEBOOK_OVERRIDES": "debug=smoke",
        # a small scene evaluator (the default one trains for minutes on a cold cache)
        "GANZOO_NOTEBOOK_EVAL_OVERRIDES": "metrics.scene_evaluator.train_samples=128 "
        "metrics.scene_evaluator.steps=20 "
        f"paths.cache_dir={work / 'cache'}",
    }
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        NotebookClient(
            nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(work)}}
        ).execute()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return nb


def _outputs(nb: nbformat.NotebookNode) -> tuple[str, int]:
    text, images = [], 0
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            text.append(out.get("text", ""))
            images += "image/png" in out.get("data", {})
    return "".join(text), images


def test_quickstart_trains_samples_and_evaluates(tmp_path: Path) -> None:
    nb = _execute("quickstart.ipynb", tmp_path)
    text, images = _outputs(nb)
    assert (tmp_path / "outputs" / "spade-synthetic" / "checkpoints" / "last.ckpt").is_file()
    assert images == 2  # the training grid and the rendered label map
    assert "loss/G/total" in text and '"miou"' in text


@pytest.mark.parametrize("name", ["model_zoo.ipynb"])
def test_model_zoo_tour_builds_every_paper_network_and_trains_each(
    tmp_path: Path, name: str
) -> None:
    nb = _execute(name, tmp_path)
    text, images = _outputs(nb)
    models = sorted(p.stem for p in (REPO / "conf" / "model").glob("*.yaml"))
    for model in models:
        assert f"{model} " in text
    assert images == len(models) - 1  # every model trains but EditGAN (needs a StyleGAN2 run)
