"""pix2pixHD: networks, paper parameter counts, instance features and their clusters, the
coarse-to-fine schedule, a CLI smoke run and learning on the synthetic scenes.

The machine these run on has 2 CPU cores shared with other jobs; the module runs torch with
one intra-op thread (two threads on oversubscribed cores are many times slower).
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganzoo.cli.build import build_datamodule, build_task, train
from ganzoo.core.errors import ConfigError
from ganzoo.data.batch import Batch
from ganzoo.info import describe
from ganzoo.losses.adversarial import d_loss
from ganzoo.metrics.colour_segmenter import ColourSegmenter, pixel_accuracy
from ganzoo.models.pix2pixhd import FeatureEncoder, Pix2PixHDGenerator, instance_average
from ganzoo.sample import main_fn as sample_main
from ganzoo.tasks.pix2pixhd import Pix2PixHDTask, kmeans
from tests.conftest import REPO, compose_train, run_cli

PARAMS = json.loads((REPO / "reference" / "params.json").read_text())["params"]["pix2pixhd"]
QUIET = [
    "logger=csv",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "callbacks.samples=null",
]
SMOKE = ["model=pix2pixhd", "debug=smoke", *QUIET]


pytestmark = pytest.mark.usefixtures("one_thread")


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters() if p.requires_grad)


# ----- networks ---------------------------------------------------------------------------
@pytest.mark.parametrize("netG", ["global", "local"])
def test_generator_shapes(netG: str) -> None:
    torch.manual_seed(0)
    g = Pix2PixHDGenerator(5, netG=netG, ngf=8, n_downsample_global=2, n_blocks_global=2)
    x = torch.randn(2, 5, 16, 32)
    out = g(x)
    assert out.shape == (2, 3, 16, 32) and out.abs().max() <= 1
    scale = 2 if netG == "local" else 1  # G1 sees the input downsampled once per enhancer
    assert g.global_features(x).shape == (2, 8, 16 // scale, 32 // scale)
    assert len(g.local_enhancers) == (netG == "local")
    assert g.output_layer[1].in_channels == 8 // scale  # the enhancer has half G1's width
    with pytest.raises(AssertionError, match="divisible by"):
        g(torch.randn(1, 5, 10, 32))


def test_paper_configs_match_official_counts(make_cfg) -> None:
    """The four Cityscapes configurations of params.json, built on the meta device."""
    cases = {
        "cityscapes_1024x512_global": ["experiment=pix2pixhd_cityscapes_global"],
        "cityscapes_1024x512_global_feat": [
            "experiment=pix2pixhd_cityscapes_global",
            "model.instance_feat=true",
        ],
        "cityscapes_2048x1024_local": ["model=pix2pixhd", "data=cityscapes"],
        "cityscapes_2048x1024_local_feat": [
            "experiment=pix2pixhd_cityscapes_local",
            "model.instance_feat=true",
        ],
    }
    for key, overrides in cases.items():
        info = describe(make_cfg(*overrides))
        assert info["parameters"] == PARAMS[key], key
        resolution = [512, 1024] if "1024x512" in key else [1024, 2048]
        assert info["resolution"] == resolution
        in_channels = 35 + 1 + 3 * ("feat" in key)
        assert info["shapes"]["G"]["inputs"] == [[1, in_channels, *resolution]]
        assert info["shapes"]["D"]["inputs"] == [[1, 39, *resolution]]  # no features in D


def test_info_cli_prints_the_2048x1024_network() -> None:
    proc = run_cli("ganzoo.info", "model=pix2pixhd", "data=cityscapes")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    assert info["parameters"] == PARAMS["cityscapes_2048x1024_local"]
    assert info["shapes"]["G"]["output"] == [1, 3, 1024, 2048]


# ----- instance-wise features -------------------------------------------------------------
def test_instance_average_is_constant_within_each_instance() -> None:
    torch.manual_seed(0)
    e = FeatureEncoder(feat_num=3, nef=4, n_downsampling=2)
    image = torch.randn(2, 3, 16, 16)
    regions = torch.randint(0, 3, (2, 16, 16))
    regions[1] = 0  # one region covering the second image
    out = e(image, regions)
    raw = e.model(image)
    assert out.shape == (2, 3, 16, 16)
    for b in range(2):
        for r in regions[b].unique():
            mask = regions[b] == r
            inside = out[b][:, mask]  # (3, pixels)
            torch.testing.assert_close(
                inside, raw[b][:, mask].mean(1, keepdim=True).expand_as(inside)
            )
    assert not torch.allclose(out[0][:, regions[0] == 0][:, 0], out[1][:, 0, 0])  # per image
    out.sum().backward()
    assert all(p.grad is not None for p in e.parameters())
    assert torch.equal(
        instance_average(raw, torch.arange(256).reshape(1, 16, 16).expand(2, -1, -1)), raw
    )


def test_task_with_features_trains_e_and_d_judges_the_g_phase_fake(make_cfg) -> None:
    torch.manual_seed(0)
    cfg = make_cfg(*SMOKE, "model.instance_feat=true")
    task = build_task(cfg)
    batch = build_datamodule(cfg).fixed_batch(2)
    assert task.generator.input_nc == 15 + 1 + 3  # labels + edges + feat_num
    # E averages over instance ids as the official Encoder; instance_regions=label_instance
    # over (label, instance) pairs (these scenes give every background class id 0).
    assert torch.equal(task.regions(batch.label_map, batch.instance_map), batch.instance_map)
    task.instance_regions = "label_instance"
    regions = task.regions(batch.label_map, batch.instance_map)
    pairs = torch.unique(batch.label_map[0] * 1000 + batch.instance_map[0])
    assert len(regions[0].unique()) == len(pairs) > len(batch.instance_map[0].unique())
    task.instance_regions = "instance"
    terms = task.generator_loss(batch)
    assert set(terms) == {"gan", "feat"}
    sum(terms.values()).backward()
    assert all(p.grad is not None for p in task.encoder.parameters())
    # The D phase judges the G phase's fake (train.py steps G, then D on that same fake),
    # not a new one from the updated G.
    fake = next(iter(task._fakes.values())).clone()
    with torch.no_grad():
        task.generator.output_layer[1].weight.zero_()
    d_terms = task.discriminator_loss(batch)
    pred_fake, pred_real = task.discriminate(task.semantics(batch), fake, batch.image)
    expected = d_loss("lsgan", [s[-1] for s in pred_real], [s[-1] for s in pred_fake], "sum")
    torch.testing.assert_close(d_terms["fake"], 0.5 * expected["fake"])
    torch.testing.assert_close(d_terms["real"], 0.5 * expected["real"])
    assert not task._fakes


def test_kmeans_is_deterministic_and_finds_the_clusters() -> None:
    g = torch.Generator().manual_seed(0)
    truth = torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 0.0], [-1.0, 0.5, 1.0]])
    points = torch.cat([c + 0.05 * torch.randn(40, 3, generator=g) for c in truth])
    a = kmeans(points, 3, seed=0)
    assert torch.equal(a, kmeans(points, 3, seed=0))
    order = [int(torch.cdist(t[None], a).argmin()) for t in truth]
    assert sorted(order) == [0, 1, 2]
    torch.testing.assert_close(a[order], truth, atol=0.03, rtol=0)
    assert kmeans(points[:2], 2, seed=0).shape == (2, 3)


def _save_ids(array: torch.Tensor, path: Path) -> str:
    Image.fromarray(array.numpy().astype(np.uint8), mode="L").save(path)
    return str(path)


def test_clusters_are_saved_and_reused_by_sample(make_cfg, tmp_path: Path) -> None:
    run = tmp_path / "run"
    train(make_cfg(*SMOKE, "model.instance_feat=true", "steps=2", run_dir=run))
    ckpt = run / "checkpoints" / "last.ckpt"

    def sample(*overrides: str) -> dict:
        cfg = compose_train(tmp_path / "s", [f"ckpt={ckpt}", *overrides], config_name="sample")
        return sample_main(cfg)

    out = sample("action=cluster", "num_images=16", "n_clusters=3")
    saved = torch.load(out["file"], weights_only=True)
    assert Path(out["file"]) == run / "checkpoints" / "feature_clusters.pt"
    assert saved["provenance"]["iteration"] == 2 and saved["provenance"]["num_images"] == 16
    assert saved["provenance"]["checkpoint_sha256"]
    centres = saved["centres"]
    assert centres and all(1 <= len(c) <= 3 and c.shape[1] == 3 for c in centres.values())

    # Render a validation scene; make class `c`'s centres known, and choose between them.
    scene = build_datamodule(make_cfg(*SMOKE)).fixed_batch(1)
    label, instance = scene.label_map[0], scene.instance_map[0]
    c = int(label.unique()[0])
    centres[c] = torch.tensor([[0.9, 0.9, 0.9], [-0.9, -0.9, -0.9]])
    torch.save(saved, out["file"])
    files = {
        "label_map": _save_ids(label, tmp_path / "labels.png"),
        "instance_map": _save_ids(instance, tmp_path / "instances.png"),
    }
    args = [f"{k}={v}" for k, v in files.items()]
    images = {}
    for i in (0, 1):
        result = sample(*args, f"centres={{{c}: {i}}}", f"output={tmp_path / str(i)}")
        images[i] = np.array(Image.open(result["files"][0]))
    again = sample(*args, f"centres={{{c}: 0}}", f"output={tmp_path / 'again'}")
    assert np.array_equal(np.array(Image.open(again["files"][0])), images[0])  # seeded draws
    assert not np.array_equal(images[0], images[1])  # the chosen centre changes the image

    task: Pix2PixHDTask = build_task(make_cfg(*SMOKE, "model.instance_feat=true"))
    batch = Batch(
        image=torch.zeros(1, 3, *label.shape), label_map=label[None], instance_map=instance[None]
    )
    maps = task.render_latents(batch, centres, {c: 1}, torch.Generator().manual_seed(0))
    assert torch.equal(maps[0][:, label == c], torch.full((3, int((label == c).sum())), -0.9))


# ----- coarse-to-fine ---------------------------------------------------------------------
def _state(ckpt: Path) -> dict[str, torch.Tensor]:
    return torch.load(ckpt, weights_only=True)["state_dict"]


def _part(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def test_coarse_to_fine_fixes_g1_then_trains_it(make_cfg, tmp_path: Path) -> None:
    torch.manual_seed(0)
    # Stage 1: G1 alone at half resolution.
    train(
        make_cfg(
            *SMOKE, "model.netG=global", "data.resolution=16", "steps=2", run_dir=tmp_path / "g"
        )
    )
    global_state = _state(tmp_path / "g/checkpoints/last.ckpt")
    # Stage 2: the enhancer with G1 fixed for 2 iterations, then everything (4 iterations).
    local = [
        *SMOKE,
        "model.netG=local",
        f"model.load_global={tmp_path / 'g/checkpoints/last.ckpt'}",
        "model.fix_global_steps=2",
        "model.discriminator.num_scales=3",
        "steps=4",
        "callbacks.checkpoint.every_n_iterations=2",
    ]
    train(make_cfg(*local, run_dir=tmp_path / "l"))
    at2, at4 = (_state(tmp_path / f"l/checkpoints/iter_000000{i}.ckpt") for i in (2, 4))
    g1 = _part(global_state, "generator.global_generator.")
    for name, value in g1.items():  # unchanged while fixed, and equal to the global run's
        assert torch.equal(at2[f"generator.global_generator.{name}"], value), name
    changed = [n for n in g1 if not torch.equal(at4[f"generator.global_generator.{n}"], g1[n])]
    assert len(changed) == len(g1)  # trained once the fixed iterations are over
    enhancer = _part(at2, "generator.local_enhancers.")
    assert any(
        not torch.equal(at4[f"generator.local_enhancers.{n}"], v) for n, v in enhancer.items()
    )

    # What load_global copies: G1, and global D scale s into local scale s + 1; the EMA follows G.
    task: Pix2PixHDTask = build_task(make_cfg(*local))
    task.load_global_run(tmp_path / "g/checkpoints/last.ckpt")
    for s in (0, 1):
        for name, value in _part(global_state, f"discriminator.scales.{s}.").items():
            assert torch.equal(task.discriminator.scales[s + 1].state_dict()[name], value)
    ema = task.generator_ema.state_dict()
    assert all(torch.equal(ema[f"global_generator.{n}"], v) for n, v in g1.items())

    with pytest.raises(ConfigError, match="model.netG=local"):
        build_task(make_cfg(*SMOKE, "model.netG=global", "model.fix_global_steps=2"))
    with pytest.raises(ConfigError, match="load_global is null"):
        train(
            make_cfg(*SMOKE, "model.netG=local", "model.fix_global_steps=2", run_dir=tmp_path / "x")
        )


# ----- command line and learning ----------------------------------------------------------
def test_cli_smoke_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    proc = run_cli(
        "ganzoo.train",
        "debug=smoke",
        "model=pix2pixhd",
        "logger=csv",
        f"paths.output_dir={tmp_path}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = tmp_path / "pix2pixhd-synthetic"
    assert (run_dir / "checkpoints" / "iter_0000004.ckpt").is_file()
    assert [p.name for p in sorted((run_dir / "samples").glob("*.png"))] == [
        "iter_0000002.png",
        "iter_0000004.png",
    ]
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    losses = {k: float(r[k]) for r in rows for k in r if k.startswith("loss/") and r[k] != ""}
    assert {"loss/G/gan", "loss/G/feat", "loss/D/real", "loss/D/fake"} <= set(losses)
    assert all(math.isfinite(v) for v in losses.values())


def test_outputs_agree_with_label_maps_after_training(make_cfg, tmp_path: Path) -> None:
    """The synthetic preset at 32x32 (G1 with 2 downsamplings: the preset's 8x8 bottleneck)."""
    torch.manual_seed(0)
    cfg = make_cfg(
        *QUIET,
        "model=pix2pixhd",
        "data.resolution=32",
        "model.generator.n_downsample_global=2",
        "model.generator.n_blocks_global=4",
        "steps=200",
        "callbacks.checkpoint.every_n_iterations=200",
        "model.ema.decay=0.9",
        "optim.decay_start=1.0",
        run_dir=tmp_path / "run",
    )
    batch = build_datamodule(cfg).fixed_batch(48)
    segmenter = ColourSegmenter().fit(batch.image, batch.label_map, int(cfg.data.label_nc))

    def accuracy(task) -> float:
        return pixel_accuracy(segmenter.predict(task.sample_ema(batch, None)), batch.label_map)

    before = accuracy(build_task(cfg))
    train(cfg)
    trained = build_task(cfg)
    trained.load_state_dict(_state(tmp_path / "run/checkpoints/last.ckpt"))
    after = accuracy(trained)
    assert after > 0.45 and after > before + 0.3, (before, after)
