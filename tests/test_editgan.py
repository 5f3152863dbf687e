"""EditGAN (issue 15): LPIPS from its weight files, G's feature maps, the encoder and branch, a
training run on a tiny StyleGAN2, embed / edit / apply as functions and as `ganzoo.sample`
actions, and the one-line errors. The StyleGAN2 and EditGAN runs are tiny (debug=smoke) and
shared by the module; quality numbers are the slow test's (test_editgan_quality.py)."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganzoo.cli import factories
from ganzoo.cli.build import load_run, train
from ganzoo.cli.editing import edit_quality
from ganzoo.core.errors import ConfigError, WeightsError
from ganzoo.losses.lpips import LPIPS
from ganzoo.models.editgan import FPNEncoder, feature_channels, synthesis_with_features
from ganzoo.models.stylegan2 import Generator
from ganzoo.sample import main_fn as sample_main
from ganzoo.tasks.editgan import EditGANTask
from ganzoo.tasks.editing import EditSettings, EditVector, apply_edits, edit, embed, segment
from tests.conftest import REPO, compose_train

pytestmark = pytest.mark.usefixtures("one_thread")

STAND_IN = "model.lpips.untrained_stand_in=true"


# ----- LPIPS and its weight files ------------------------------------------------------------
def _fabricated_lpips_files(folder: Path) -> tuple[Path, Path]:
    """A torchvision-layout vgg16 file and an LPIPS lin file of random tensors (not the real
    weights: the layout and the loading path are what is tested)."""
    torch.manual_seed(0)
    reference = LPIPS()
    vgg = {}
    for key, value in reference.state_dict().items():
        if key.startswith("slice"):
            vgg["features." + key.split(".", 1)[1]] = torch.randn_like(value) * 0.05
    vgg["classifier.0.weight"] = torch.zeros(2, 2)  # torchvision files carry the classifier too
    channels = (64, 128, 256, 512, 512)
    lin = {f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1) for k, c in enumerate(channels)}
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(vgg, folder / "vgg16.pth")
    torch.save(lin, folder / "lin.pth")
    return folder / "vgg16.pth", folder / "lin.pth"


@pytest.fixture(scope="module")
def lpips_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return _fabricated_lpips_files(tmp_path_factory.mktemp("lpips"))


def test_lpips_reads_its_two_weight_files_and_is_a_distance(lpips_files, tmp_path: Path) -> None:
    vgg, lin = lpips_files
    model = factories.lpips_vgg(str(vgg), str(lin), str(tmp_path / "none"), False)
    assert model.weights_provenance["vgg16"]["published"] is False  # a fabricated file
    x, y = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    d = model(x, y)
    assert d.shape == (2,) and bool((d > 0).all())
    assert torch.allclose(model(x, x), torch.zeros(2), atol=1e-7)
    assert torch.allclose(d, model(y, x))
    x.requires_grad_(True)
    model(x, y).sum().backward()  # gradients reach the image, never the frozen network
    assert x.grad is not None and all(p.grad is None for p in model.parameters())


def test_lpips_equals_the_official_network() -> None:
    """tests/golden/editgan: the official PNetLin (VGG16, v0.1) with the released lin file."""
    sys.path.insert(0, str(REPO / "experiments" / "parity"))
    from editgan import vgg16_weights  # the seeded VGG16 both sides use (not stored)

    golden = torch.load(REPO / "tests/golden/editgan/forward.pt", weights_only=True)
    model = LPIPS.from_state_dicts(vgg16_weights(), golden["lin"])
    with torch.no_grad():
        distance = model(golden["x"], golden["y"])
    torch.testing.assert_close(distance, golden["distance"], rtol=1e-5, atol=0)


def test_lpips_missing_or_wrong_files_are_one_line_errors(lpips_files, tmp_path: Path) -> None:
    with pytest.raises(WeightsError) as missing:
        factories.lpips_vgg(None, None, str(tmp_path), False)
    message = str(missing.value)
    assert "vgg16-397923af.pth" in message and "397923af8e79" in message and "\n" not in message
    vgg, _ = lpips_files
    with pytest.raises(WeightsError, match="not an LPIPS lin file"):
        factories.lpips_vgg(str(vgg), str(vgg), str(tmp_path), False)
    stand_in = factories.lpips_vgg(None, None, str(tmp_path), True)  # no file read
    assert "not LPIPS" in str(stand_in.weights_provenance)


# ----- networks ----------------------------------------------------------------------------
def test_feature_maps_of_config_f_at_512_have_the_official_6016_channels() -> None:
    with torch.device("meta"):
        g = Generator(img_resolution=512)
    assert sum(feature_channels(g.synthesis)) == 6016  # datasetgan_car.json "dim"


def test_features_are_the_constant_and_every_conv_output() -> None:
    torch.manual_seed(0)
    g = Generator(32, z_dim=8, w_dim=8, mapping_layers=1, channel_base=64, channel_max=16).eval()
    ws = g.mapping(torch.randn(2, 8), None)
    image, maps = synthesis_with_features(g.synthesis, ws, "const")
    assert torch.equal(image, g.synthesis(ws, noise_mode="const"))  # the hooks change nothing
    assert [m.shape[1] for m in maps] == feature_channels(g.synthesis)
    assert [m.shape[-1] for m in maps] == [4, 4, 8, 8, 16, 16, 32, 32]


@pytest.mark.parametrize("resolution", [32, 64])
def test_encoder_maps_images_to_w_plus(resolution: int) -> None:
    num_ws = 2 * int(np.log2(resolution)) - 2
    enc = FPNEncoder(resolution, num_ws, 8, base_channels=4, num_blocks=(1, 1, 1, 1), feature_dim=8)
    assert enc(torch.zeros(2, 3, resolution, resolution)).shape == (2, num_ws, 8)


# ----- a tiny run ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 4-step StyleGAN2 smoke run and an EditGAN smoke run on top of it."""
    root = tmp_path_factory.mktemp("editgan")
    common = ["data=synthetic", "debug=smoke", "logger=none", "callbacks.samples=null",
              f"paths.output_dir={root}"]  # fmt: skip
    train(compose_train(root / "sg2", ["model=stylegan2", *common]))
    sg2 = root / "sg2" / "checkpoints" / "last.ckpt"
    train(compose_train(root / "eg", ["model=editgan", *common, STAND_IN,
                                      f"model.stylegan2_ckpt={sg2}"]))  # fmt: skip
    return {"root": root, "sg2": sg2, "editgan": root / "eg" / "checkpoints" / "last.ckpt"}


@pytest.fixture(scope="module")
def task(runs: dict[str, Path]) -> EditGANTask:
    """The EditGAN run rebuilt from its checkpoint alone (the StyleGAN2 file moved away)."""
    moved = runs["sg2"].with_suffix(".away")
    shutil.move(runs["sg2"], moved)
    try:
        loaded, _ = load_run(runs["editgan"], "cpu")
    finally:
        shutil.move(moved, runs["sg2"])
    assert isinstance(loaded, EditGANTask)
    return loaded


def scenes(n: int, resolution: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    from ganzoo.data.synthetic import SyntheticScenes

    data = SyntheticScenes(split="val", length=n, height=resolution, width=resolution, seed=3,
                           caption_length=18)  # fmt: skip
    items = [data[i] for i in range(n)]
    return torch.stack([s["image"] for s in items]), torch.stack([s["label_map"] for s in items])


def test_training_runs_every_stage_and_keeps_g_frozen(runs, task: EditGANTask) -> None:
    sg2 = torch.load(runs["sg2"], weights_only=True)["state_dict"]
    for key, value in task.stylegan.state_dict().items():
        assert torch.equal(value, sg2[f"generator_ema.{key}"]), key
    assert int(task.annotated_count) == task.annotated == 2
    assert int(task.iteration) == 5 and task.branch_trained
    ckpt = torch.load(runs["editgan"], weights_only=True)
    assert ckpt["ganzoo_config"]["model"]["stylegan2_spec"]["source"] == str(runs["sg2"])
    assert not any(k.startswith(("_lpips.", "generator_ema.")) for k in ckpt["state_dict"])


def test_embed_edit_and_apply_as_functions(task: EditGANTask, tmp_path: Path) -> None:
    images, labels = scenes(2)
    s = EditSettings.from_dict({"steps": 3, "roi_dilation": 1})
    from dataclasses import replace

    task.embed_settings = replace(task.embed_settings, steps=3)
    ws = embed(task, images)
    assert ws.shape == (2, task.stylegan.num_ws, task.stylegan.w_dim)
    target = labels[0].clone()
    target[10:20, 10:20] = 8  # paint a circle-class square
    result = edit(task, ws[:1], target, settings=s, source={"image": "scene0"})
    assert result.region.equal(target != result.mask_before)
    assert torch.allclose(result.ws, ws[:1] + result.vector.delta)
    quality = edit_quality(result.image_before, result.image_after, result.region,
                           result.mask_after, result.target)  # fmt: skip
    assert 0 <= quality["change_inside_region"] <= 1 and 0 <= quality["painted_iou"] <= 1
    path = result.vector.save(tmp_path / "v.pt")
    vector = EditVector.load(path)
    assert vector.classes == result.vector.classes and vector.source["image"] == "scene0"
    assert torch.equal(vector.region, result.region.cpu())
    both = apply_edits(task, ws, [vector, vector], [1.0, 0.5])
    assert torch.allclose(both, ws + 1.5 * vector.delta, atol=1e-6)
    refined = apply_edits(task, ws[1:], [vector], [1.0], refine_steps=2)
    assert refined.shape == ws[1:].shape and not torch.equal(refined, ws[1:] + vector.delta)
    with torch.no_grad():
        image, logits = segment(task, ws)
    assert image.shape == (2, 3, 32, 32) and logits.shape == (2, task.num_classes, 32, 32)


def test_bad_masks_and_images_are_one_line_errors(task: EditGANTask) -> None:
    ws = torch.zeros(1, task.stylegan.num_ws, task.stylegan.w_dim)
    for mask, words in ((torch.zeros(16, 16), "segments 32x32"),
                        (torch.full((32, 32), 99), "unknown label ids [99]")):  # fmt: skip
        with pytest.raises(ConfigError, match=re.escape(words)) as err:
            edit(task, ws, mask)
        assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="RGB"):
        embed(task, torch.zeros(1, 1, 32, 32))
    with pytest.raises(ConfigError, match="nothing to edit"):
        _, logits = segment(task, ws)
        edit(task, ws, logits.argmax(1)[0])


def _sample(runs: dict[str, Path], tmp_path: Path, *overrides: str) -> dict:
    cfg = compose_train(tmp_path, [f"ckpt={runs['editgan']}", f"output={tmp_path}", *overrides],
                        config_name="sample")  # fmt: skip
    return sample_main(cfg)


def test_sample_actions_embed_edit_apply(runs, tmp_path: Path) -> None:
    images, labels = scenes(2)
    files = []
    for i in range(2):
        pixels = ((images[i].permute(1, 2, 0) + 1) * 127.5).round().byte().numpy()
        files.append(tmp_path / f"scene{i}.png")
        Image.fromarray(pixels).save(files[-1])
    out = _sample(runs, tmp_path / "embed", "action=embed", f"images=[{files[0]},{files[1]}]")
    assert len(out["lpips"]) == 2 and Path(out["files"][-1]).name == "grid.png"
    ids = np.array(Image.open(tmp_path / "embed" / "scene0_labels.png"))  # the branch's mask
    assert ids.shape == (32, 32) and int(ids.max()) < 15
    mask = labels[0].numpy().astype(np.uint8)
    mask[8:24, 8:24] = 8
    Image.fromarray(mask, mode="L").save(tmp_path / "edited.png")
    ws_file = tmp_path / "embed" / "scene0_ws.pt"
    out = _sample(runs, tmp_path / "edit", "action=edit", f"image={ws_file}",
                  f"mask={tmp_path / 'edited.png'}", "edit_steps=2")  # fmt: skip
    vector = tmp_path / "edit" / "scene0_edit.pt"
    assert str(vector) in out["files"] and (tmp_path / "edit" / "grid.png").is_file()
    out = _sample(runs, tmp_path / "apply", "action=apply_edit", f"images=[{files[1]}]",
                  f"vectors=[{vector},{vector}]", "scales=[1.0,0.5]")  # fmt: skip
    assert out["scales"] == [1.0, 0.5] and (tmp_path / "apply" / "scene1_edited.png").is_file()
    Image.fromarray(mask, mode="L").save(tmp_path / "grey.png")
    with pytest.raises(ConfigError, match="RGB images; this one is mode L"):
        _sample(runs, tmp_path / "bad", "action=embed", f"images=[{tmp_path / 'grey.png'}]")
    with pytest.raises(ConfigError, match="one-channel PNG"):
        _sample(runs, tmp_path / "bad", "action=edit", f"image={ws_file}", f"mask={files[0]}")


def test_stylegan2_ckpt_is_checked(runs, tmp_path: Path) -> None:
    base = ["model=editgan", "data=synthetic", "debug=smoke", STAND_IN]
    from ganzoo.cli.build import build_task

    info = build_task(compose_train(tmp_path, base), perceptual=lambda: None)  # ganzoo.info
    with pytest.raises(ConfigError, match="needs model.stylegan2_ckpt=PATH"):
        info.setup("fit")
    with pytest.raises(ConfigError, match="does not exist"):
        build_task(compose_train(tmp_path, [*base, f"model.stylegan2_ckpt={tmp_path}/x.ckpt"]))
    with pytest.raises(ConfigError, match="not a model=stylegan2 ganzoo checkpoint"):
        build_task(compose_train(tmp_path, [*base, f"model.stylegan2_ckpt={runs['editgan']}"]))
    with pytest.raises(ConfigError, match="leaves no branch training"):
        build_task(compose_train(tmp_path, [*base, f"model.stylegan2_ckpt={runs['sg2']}",
                                            "steps=3"]))  # fmt: skip


def test_starts_from_a_converted_official_pickle(tmp_path: Path) -> None:
    """tests/golden/stylegan2's official pickle (class-conditional, 32x32) through ganzoo.convert's
    path into an ordinary checkpoint, then model.stylegan2_ckpt=that file."""
    from ganzoo import convert, official
    from ganzoo.cli.build import build_task
    from ganzoo.official import stylegan2 as reader
    from tests.test_official_stylegan2 import OVERRIDES, PKL

    cfg = compose_train(tmp_path / "convert", list(OVERRIDES))
    sg2 = build_task(cfg, perceptual=lambda: None)
    sg2.run_config = convert.run_config(cfg)
    sg2.load_state_dict(official.assemble(sg2, reader.convert(PKL, sg2)))
    path = convert.save(sg2, {"files": []}, tmp_path / "converted.ckpt")
    eg = build_task(compose_train(tmp_path / "eg", [
        "model=editgan", "data=synthetic", "debug=smoke", STAND_IN, f"model.stylegan2_ckpt={path}",
    ]))  # fmt: skip
    assert isinstance(eg, EditGANTask) and eg.stylegan.c_dim == 12
    for key, value in sg2.generator_ema.state_dict().items():
        assert torch.equal(eg.stylegan.state_dict()[key], value), key
    terms = eg.encoder_sampled_loss(None)  # type: ignore[arg-type]  # random classes for G
    assert all(bool(torch.isfinite(t)) for t in terms.values())
