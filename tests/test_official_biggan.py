"""BigGAN-PyTorch releases -> model=biggan (ganzoo.official.biggan), against the golden outputs of
the official code (tests/golden/biggan, made by experiments/parity/biggan.py)."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pytest
import torch

from ganzoo import official
from ganzoo.cli.build import build_task
from ganzoo.official.base import ConvertError
from ganzoo.official.biggan import convert, generator_state
from ganzoo.tasks.biggan import BigGanTask
from tests.conftest import REPO, assert_close

GOLDEN = REPO / "tests" / "golden" / "biggan"
# the golden configuration (experiments/parity/biggan.py CONFIG) as ganzoo overrides
SMALL = [
    "model=biggan",
    "data=synthetic",  # 12 classes
    "data.resolution=32",
    "data.batch_size=4",
    "model.generator.ch=2",
    "model.generator.dim_z=32",
    "model.generator.shared_dim=16",
    "model.generator.attention=[16]",
    "model.discriminator.ch=2",
    "model.discriminator.attention=[16]",
]

pytestmark = pytest.mark.usefixtures("one_thread")


def converted(make_cfg, source: Path, *overrides: str) -> tuple[BigGanTask, official.Converted]:
    task = build_task(make_cfg(*SMALL, *overrides))
    assert isinstance(task, BigGanTask)
    result = convert(source, task)
    task.load_state_dict(official.assemble(task, result))
    return task.eval(), result


def test_weights_folder_converts_and_g_g_ema_d_equal_the_official_outputs(make_cfg) -> None:
    task, result = converted(make_cfg, GOLDEN / "trained")
    assert [p.name for p in result.sources] == ["G.pth", "G_ema.pth", "D.pth", "state_dict.pth"]
    assert result.absent == ()
    assert "the release was trained for 3 G iterations" in result.notes
    golden = torch.load(GOLDEN / "forward.pt")
    z, y, images, out = golden["z"], golden["y"], golden["images"], golden["outputs"]
    with torch.no_grad():
        assert_close(task.generator(z, y), out["G_eval"])
        assert_close(task.generator_ema(z, y), out["G_ema_eval"])  # averaged BN statistics and u
        assert_close(task.discriminator(images, y), out["D_eval"])
        g_train = copy.deepcopy(task.generator).train()  # batch statistics, u updated
        assert_close(g_train(z, y), out["G_train"])
    assert not torch.equal(task.generator.linear.weight, task.generator_ema.linear.weight)


def test_tfhub_format_generator_converts_with_its_epsilons(make_cfg) -> None:
    eps = ["model.generator.bn_eps=1e-4", "model.generator.sn_eps=1e-4"]
    task, result = converted(make_cfg, GOLDEN / "tfhub" / "biggan-32.pth", *eps)
    assert result.absent == ("discriminator.",)
    assert any("TF-Hub" in n for n in result.notes)
    golden = torch.load(GOLDEN / "forward.pt")
    with torch.no_grad():
        out = task.generator_ema(golden["z"], golden["y"])
    assert_close(out, golden["outputs"]["G_tfhub_eval"])
    _, default_eps = converted(make_cfg, GOLDEN / "tfhub" / "biggan-32.pth")
    assert any("bn_eps=1e-4" in n for n in default_eps.notes)  # told how to match


def test_official_keys_map_one_to_one() -> None:
    official_g = torch.load(GOLDEN / "init" / "G.pth")
    mapped = generator_state(official_g)
    assert mapped["blocks.0.0.conv1.u0"] is official_g["blocks.0.0.conv1.u0"]
    assert mapped["blocks.0.0.bn1.bn.running_mean"] is official_g["blocks.0.0.bn1.stored_mean"]
    assert mapped["output_layer.0.weight"] is official_g["output_layer.0.gain"]
    renamed = {"stored_mean", "stored_var", "gain"}
    same = [k for k in official_g if k.split(".")[-1] not in renamed]
    assert all(k in mapped for k in same)


def test_wrong_class_count_resolution_and_width_are_one_line_errors(make_cfg, tmp_path) -> None:
    for overrides, message in (
        (["data.num_classes=10"], "source has 12 classes; data.num_classes=10"),
        (["model.generator.ch=8"], "source G_ch 2; model.generator.ch=8"),
        (["model.generator.attention=[]"], "source has self-attention after G blocks [1]"),
    ):
        task = build_task(make_cfg(*SMALL, *overrides))
        with pytest.raises(ConvertError) as err:
            convert(GOLDEN / "trained", task)
        assert str(err.value).startswith(message) and "\n" not in str(err.value)
    # (D attention left at the preset's []: at 64 the block at 16 has too few channels)
    task = build_task(make_cfg(*SMALL[:2], "data.resolution=64", *SMALL[3:-1]))
    with pytest.raises(ConvertError, match="source resolution 32 .3 G blocks.; data.resolution=64"):
        convert(GOLDEN / "trained", task)
    # a stray or missing key is listed by the framework, never dropped
    bad = tmp_path / "weights"
    shutil.copytree(GOLDEN / "trained", bad)
    g = torch.load(bad / "G.pth")
    g["blocks.0.0.extra"] = torch.zeros(1)
    del g["linear.bias"]
    torch.save(g, bad / "G.pth")
    (bad / "G_ema.pth").unlink()
    task = build_task(make_cfg(*SMALL))
    with pytest.raises(ConvertError, match="generator.blocks.0.0.extra"):
        official.assemble(task, convert(bad, task))
    del g["blocks.0.0.extra"]
    torch.save(g, bad / "G.pth")
    with pytest.raises(ConvertError, match="missing from the release: generator.linear.bias"):
        official.assemble(task, convert(bad, task))


class _Mkdir:
    """A pickle that would create a folder when loaded (the 'malicious file' of issue 13)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple:
        import os

        return (os.mkdir, (str(self.path),))


def test_malicious_files_run_nothing_and_state_dict_is_optional(make_cfg, tmp_path) -> None:
    import numpy as np

    task = build_task(make_cfg(*SMALL))
    folder = tmp_path / "weights"
    shutil.copytree(GOLDEN / "trained", folder)
    marker = tmp_path / "executed"
    g = torch.load(folder / "G.pth")
    torch.save({**g, "payload": _Mkdir(marker)}, folder / "G.pth")
    with pytest.raises(ConvertError, match="refused") as err:
        convert(folder, task)
    assert "\n" not in str(err.value) and not marker.exists()
    torch.save(g, folder / "G.pth")
    run_state = torch.load(folder / "state_dict.pth", weights_only=False)
    # numpy scalars (best_IS / best_FID after an evaluation) are read; anything else skipped
    torch.save({**run_state, "best_FID": np.float64(12.5)}, folder / "state_dict.pth")
    assert "the release was trained for 3 G iterations" in convert(folder, task).notes
    torch.save({**run_state, "payload": _Mkdir(marker)}, folder / "state_dict.pth")
    result = convert(folder, task)
    assert any("state_dict.pth not read" in n for n in result.notes) and not marker.exists()
    assert [p.name for p in result.sources] == ["G.pth", "G_ema.pth", "D.pth"]
