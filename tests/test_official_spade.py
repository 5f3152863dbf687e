"""NVlabs/SPADE checkpoints (issue 13): the golden latest_net_{G,D,E}.pth of the official code
convert to ganzoo's task and give the official outputs (G in eval and train mode, the EMA G, D
logits, E's mu and logvar); files of another configuration are one-line errors.

Fixtures: tests/golden/spade/ (experiments/parity/spade.py; see its README.md)."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from ganzoo import official
from ganzoo.cli.build import build_task
from ganzoo.data.batch import Batch
from ganzoo.official import spade as reader
from ganzoo.official.base import ConvertError
from tests.conftest import REPO, close

pytestmark = pytest.mark.usefixtures("one_thread")

GOLDEN = REPO / "tests" / "golden" / "spade"
SCALE = 8  # the stored 32x32 batches are upsampled x8 (nearest) to 256x256
# The golden configuration (experiments/parity/spade.py ARGS) as ganzoo overrides.
OVERRIDES = (
    "model=spade",
    "data=synthetic",
    "data.resolution=256",
    "data.label_nc=4",
    "data.batch_size=2",
    "model.use_vae=true",
    "model.lambda_vgg=0",
    "model.generator.ngf=1",
    "model.generator.z_dim=16",
    "model.generator.num_upsampling_layers=more",
    "model.generator.spade_hidden=8",
    "model.discriminator.ndf=4",
    "model.encoder.ndf=1",
    "optim=spade_code",
)


def expand(x: torch.Tensor) -> torch.Tensor:
    """(..., 32, 32) -> (..., 256, 256), nearest, as the fixture script."""
    return x.repeat_interleave(SCALE, dim=-2).repeat_interleave(SCALE, dim=-1)


def batch_of(stored: dict[str, torch.Tensor]) -> Batch:
    """A ganzoo Batch of a stored golden batch."""
    return Batch(
        image=expand(stored["image_u8"]).float() / 127.5 - 1,
        label_map=expand(stored["label"]).long(),
        instance_map=expand(stored["instance"]).long(),
    )


def converted(make_cfg: Any, *extra: str, source: Path = GOLDEN) -> Any:
    """The ganzoo task holding the converted checkpoint (as `python -m ganzoo.convert`)."""
    task = build_task(make_cfg(*OVERRIDES, *extra))
    task.load_state_dict(official.assemble(task, reader.convert(source, task)))
    return task


def test_converted_checkpoint_gives_the_official_outputs(make_cfg: Any) -> None:
    task = converted(make_cfg)
    ref = torch.load(GOLDEN / "forward.pt", weights_only=True)
    out, z = ref["outputs"], ref["z"]
    batch = batch_of(ref["batch"])
    sem = task.semantics(batch)
    with torch.no_grad():
        for mode in ("eval", "train"):
            for name, net in (("G", task.generator), ("G_ema", task.generator_ema)):
                g = copy.deepcopy(net).train(mode == "train")
                assert close(g(sem, z)[:, :, ::SCALE, ::SCALE], out[f"G/{mode}"]), (name, mode)
            d = copy.deepcopy(task.discriminator).train(mode == "train")
            logits = [s[-1] for s in d(torch.cat([sem, batch.image], 1))]
            assert all(close(a, b) for a, b in zip(logits, out[f"D/{mode}/real"], strict=True))
            e = copy.deepcopy(task.encoder).train(mode == "train")
            mu, logvar = e(batch.image)
            assert close(mu, out[f"E/{mode}/mu"]) and close(logvar, out[f"E/{mode}/logvar"])
    # the hook-SN keys arrive as they are: u, v of the release, not re-estimated
    official_g = torch.load(GOLDEN / "latest_net_G.pth", weights_only=True)
    assert torch.equal(task.generator.head_0.conv_0.weight_u, official_g["head_0.conv_0.weight_u"])


def test_a_file_or_a_folder_and_what_is_absent(make_cfg: Any, tmp_path: Path) -> None:
    only_g = tmp_path / "ckpt"
    only_g.mkdir()
    shutil.copy(GOLDEN / "latest_net_G.pth", only_g / "latest_net_G.pth")
    shutil.copy(GOLDEN / "latest_net_E.pth", only_g / "latest_net_E.pth")
    task = build_task(make_cfg(*OVERRIDES))
    result = reader.convert(only_g / "latest_net_G.pth", task)
    assert result.absent == ("discriminator.",) and len(result.sources) == 2
    assert any("no _net_D.pth" in note for note in result.notes)
    official.assemble(task, result)  # the D keeps its init, named


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.label_nc=5", "source G takes 5 label channels"),
        ("model.generator.spade_hidden=16", "spade_hidden=16"),
        ("model.generator.ngf=2", "source G has ngf 1; model.generator.ngf=2"),
        ("data.resolution=512", "source G starts from 16 cells of z"),
        ("model.discriminator.num_scales=3", "source D has 2 scales"),
    ],
)
def test_another_configuration_is_a_one_line_error(
    make_cfg: Any, override: str, message: str
) -> None:
    task = build_task(make_cfg(*OVERRIDES, override))
    with pytest.raises(ConvertError, match=message) as err:
        official.assemble(task, reader.convert(GOLDEN, task))
    assert "\n" not in str(err.value)


def test_a_file_of_another_model_is_refused_in_one_line(make_cfg: Any) -> None:
    task = build_task(make_cfg(*OVERRIDES))
    with pytest.raises(ConvertError, match="not an official SPADEGenerator") as err:
        reader.convert(REPO / "tests" / "golden" / "pix2pixhd" / "global", task)
    assert "\n" not in str(err.value)
