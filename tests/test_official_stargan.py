"""yunjey/stargan releases -> model=stargan (ganzoo.official.stargan), against the golden outputs
of the official code (tests/golden/stargan, made by experiments/parity/stargan.py)."""

from __future__ import annotations

import shutil

import pytest
import torch

from ganzoo import official
from ganzoo.cli.build import build_task
from ganzoo.models.stargan import StarGANDiscriminator, StarGANGenerator
from ganzoo.official.base import ConvertError
from ganzoo.official.stargan import convert
from ganzoo.tasks.stargan import StarGANTask
from tests.conftest import REPO, assert_close

GOLDEN = REPO / "tests" / "golden" / "stargan"
# the golden configuration (experiments/parity/stargan.py CONFIG) as ganzoo overrides
SMALL = [
    "model=stargan",
    "data=synthetic",  # 6 binary attributes: c_dim 6, BCE
    "data.resolution=32",
    "data.batch_size=4",
    "model.generator.conv_dim=4",
    "model.generator.repeat_num=2",
    "model.discriminator.conv_dim=4",
    "model.discriminator.repeat_num=3",
]

pytestmark = pytest.mark.usefixtures("one_thread")


def test_models_folder_converts_and_g_d_equal_the_official_outputs(make_cfg) -> None:
    task = build_task(make_cfg(*SMALL))
    assert isinstance(task, StarGANTask)
    result = convert(GOLDEN / "trained", task)
    assert [p.name for p in result.sources] == ["3-G.ckpt", "3-D.ckpt"]
    task.load_state_dict(official.assemble(task, result))
    task.eval()
    golden = torch.load(GOLDEN / "forward.pt")
    x, c, out = golden["x"], golden["c"], golden["outputs"]
    with torch.no_grad():
        assert_close(task.generator(x, c), out["G"])
        assert_close(task.generator_ema(x, c), out["G"])  # no EMA in the release: G's weights
        assert_close(task.translate(x, c), out["G"])  # what sampling and evaluation run
        src, cls = task.discriminator(x)
        assert_close(src, out["D_src"])
        assert_close(cls, out["D_cls"])
    g_only = convert(GOLDEN / "trained" / "3-G.ckpt", task)
    assert g_only.absent == ("discriminator.",)
    official.assemble(task, g_only)


def test_joint_training_networks_keep_the_official_layout() -> None:
    golden = torch.load(GOLDEN / "forward.pt")
    g = StarGANGenerator(c_dim=6 + 3 + 2, conv_dim=4, repeat_num=2)
    d = StarGANDiscriminator(c_dim=6 + 3, image_size=32, conv_dim=4, repeat_num=3)
    g.load_state_dict(torch.load(GOLDEN / "joint" / "3-G.ckpt"))
    d.load_state_dict(torch.load(GOLDEN / "joint" / "3-D.ckpt"))
    out = golden["outputs"]
    with torch.no_grad():
        assert_close(g(golden["x"], golden["c_joint"]), out["G_joint"])
        src, cls = d(golden["x"])
    assert_close(src, out["D_joint_src"])
    assert_close(cls, out["D_joint_cls"])


def test_wrong_labels_resolution_and_width_are_one_line_errors(make_cfg, tmp_path) -> None:
    task = build_task(make_cfg(*SMALL))
    for source, message in (
        (GOLDEN / "joint", "source G takes 11 label channels; this model 6 (model.c_dim=6)"),
        (GOLDEN / "trained" / "3-D.ckpt", "3-D.ckpt is a discriminator"),
    ):
        with pytest.raises(ConvertError) as err:
            convert(source, task)
        assert str(err.value).startswith(message) and "\n" not in str(err.value)
    for overrides, message in (
        (["data.resolution=64"], "source image_size 32; data.resolution=64"),
        (["model.generator.repeat_num=6"], "source G has 2 residual blocks"),
        (["model.discriminator.conv_dim=8"], "source D conv_dim 4"),
    ):
        with pytest.raises(ConvertError, match=message):
            convert(GOLDEN / "trained", build_task(make_cfg(*SMALL, *overrides)))
    # a file saved before PyTorch 0.4.1 (no num_batches_tracked) converts; stray keys are listed
    old = tmp_path / "models"
    shutil.copytree(GOLDEN / "trained", old)
    g = torch.load(old / "3-G.ckpt")
    g = {k: v for k, v in g.items() if not k.endswith("num_batches_tracked")}
    torch.save(g, old / "3-G.ckpt")
    result = convert(old, task)
    assert any("num_batches_tracked" in n for n in result.notes)
    official.assemble(task, result)
    g["main.99.weight"] = torch.zeros(1)
    torch.save(g, old / "3-G.ckpt")
    with pytest.raises(ConvertError, match="does not have: generator.main.99.weight"):
        official.assemble(task, convert(old, task))
