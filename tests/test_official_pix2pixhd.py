"""NVIDIA/pix2pixHD checkpoints (issue 13): the golden latest_net_{G,D,E}.pth of the official code,
netG global and netG local (G1 + enhancer, with the instance-feature encoder), convert to
ganzoo's task and give the official outputs (G, the EMA G, D logits of every scale, E's
instance-averaged features); files of another configuration are one-line errors.

Fixtures: tests/golden/pix2pixhd/ (experiments/parity/pix2pixhd.py; see its README.md)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from ganzoo import official
from ganzoo.cli.build import build_task
from ganzoo.data.batch import Batch
from ganzoo.official import pix2pixhd as reader
from ganzoo.official.base import ConvertError
from tests.conftest import REPO, close

pytestmark = pytest.mark.usefixtures("one_thread")

GOLDEN = REPO / "tests" / "golden" / "pix2pixhd"
COMMON = (
    "model=pix2pixhd",
    "data=synthetic",
    "data.resolution=64",
    "data.aspect_ratio=2.0",
    "data.label_nc=4",
    "data.batch_size=2",
    "model.lambda_vgg=0",
    "model.generator.n_downsample_global=2",
    "model.generator.n_blocks_global=2",
    "model.discriminator.ndf=4",
)
# The golden configurations (experiments/parity/pix2pixhd.py CONFIGS) as ganzoo overrides.
OVERRIDES = {
    "global": (*COMMON, "model.netG=global", "model.generator.ngf=4",
               "model.discriminator.num_scales=2"),
    "local": (*COMMON, "model.netG=local", "model.generator.ngf=4",  # G1 = official ngf 2 x 2
              "model.generator.n_local_enhancers=1", "model.generator.n_blocks_local=1",
              "model.discriminator.num_scales=3", "model.instance_feat=true",
              "model.encoder.nef=4", "model.encoder.n_downsampling=2"),
}  # fmt: skip


def batch_of(stored: dict[str, torch.Tensor]) -> Batch:
    return Batch(
        image=stored["image_u8"].float() / 127.5 - 1,
        label_map=stored["label"].long(),
        instance_map=stored["instance"].long(),
    )


def converted(make_cfg: Any, name: str, *extra: str, source: Path | None = None) -> Any:
    """The ganzoo task holding a converted golden checkpoint (as `python -m ganzoo.convert`)."""
    task = build_task(make_cfg(*OVERRIDES[name], *extra))
    task.load_state_dict(official.assemble(task, reader.convert(source or GOLDEN / name, task)))
    return task


@pytest.mark.parametrize("name", ["global", "local"])
def test_converted_checkpoint_gives_the_official_outputs(make_cfg: Any, name: str) -> None:
    task = converted(make_cfg, name)
    ref = torch.load(GOLDEN / "forward.pt", weights_only=True)[name]
    out, batch = ref["outputs"], batch_of(ref["batch"])
    with torch.no_grad():
        sem = task.semantics(batch)
        (x,) = task.generator_inputs(batch, None)
        if name == "local":
            assert close(task.encode(batch), out["E"])
        for g in (task.generator, task.generator_ema):
            assert close(g(x), out["G"])
        for image, key in ((batch.image, "D/real"), (out["G"], "D/fake")):
            logits = [s[-1] for s in task.discriminator(torch.cat([sem, image], 1))]
            assert all(close(a, b) for a, b in zip(logits, out[key], strict=True)), key


def test_a_file_and_what_is_absent(make_cfg: Any, tmp_path: Path) -> None:
    shutil.copy(GOLDEN / "local" / "latest_net_G.pth", tmp_path / "latest_net_G.pth")
    task = build_task(make_cfg(*OVERRIDES["local"]))
    result = reader.convert(tmp_path / "latest_net_G.pth", task)
    assert result.absent == ("discriminator.", "encoder.") and len(result.sources) == 1
    official.assemble(task, result)


@pytest.mark.parametrize(
    ("name", "override", "message"),
    [
        ("global", "data.label_nc=5", "source G takes 5 input channels"),
        ("global", "model.netG=local", "source G is netG global with 0 local enhancers"),
        ("local", "model.generator.ngf=8", "source G1 has width 4; model.generator.ngf=8"),
        ("global", "model.generator.n_blocks_global=3", "source G1 has 2 residual blocks"),
        ("global", "model.discriminator.num_scales=3", "source D has 2 scales"),
        ("local", "model.instance_feat=false", "source G takes 8 input channels"),
    ],
)
def test_another_configuration_is_a_one_line_error(
    make_cfg: Any, name: str, override: str, message: str
) -> None:
    task = build_task(make_cfg(*OVERRIDES[name], override))
    with pytest.raises(ConvertError, match=message) as err:
        official.assemble(task, reader.convert(GOLDEN / name, task))
    assert "\n" not in str(err.value)


def test_a_file_of_another_model_is_refused_in_one_line(make_cfg: Any) -> None:
    task = build_task(make_cfg(*OVERRIDES["global"]))
    with pytest.raises(ConvertError, match="not an official pix2pixHD generator") as err:
        reader.convert(REPO / "tests" / "golden" / "spade", task)
    assert "\n" not in str(err.value)
