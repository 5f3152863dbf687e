"""AttnGAN and its DAMSM stage: networks and paper parameter counts, each DAMSM loss term by
hand, R-precision on known cases, the DAMSM checkpoint feeding a frozen text encoder in AttnGAN,
the caption sampling path, and learning (R-precision of a trained DAMSM over the untrained one).

The module runs torch with one intra-op thread (2 shared cores; see test_pix2pixhd.py).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from ganzoo.cli.build import build_datamodule, build_task, load_run, train
from ganzoo.core.errors import ConfigError
from ganzoo.data.batch import Batch, collate
from ganzoo.info import describe
from ganzoo.losses.damsm import ca_kl, sentence_loss, word_attention, word_loss
from ganzoo.metrics.r_precision import RPrecision, r_precision
from ganzoo.models.attngan import AttnGANDiscriminator, AttnGANGenerator
from ganzoo.models.damsm import ImageEncoder, TextEncoder
from ganzoo.tasks.attngan import AttnGANTask
from ganzoo.tasks.damsm import DAMSMTask
from tests.conftest import REPO, compose_train, run_cli

PARAMS = json.loads((REPO / "reference" / "params.json").read_text())["params"]["attngan"]
QUIET = [
    "logger=csv",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "callbacks.samples=null",
]


pytestmark = pytest.mark.usefixtures("one_thread")


# ----- networks ----------------------------------------------------------------------------------
def test_paper_configs_match_official_counts(make_cfg) -> None:
    cub = PARAMS["cub_birds_256"]
    info = describe(make_cfg("model=attngan", "data=cub"))
    p = info["parameters"]
    assert p["G"] == cub["G_NET"]
    assert (p["D64"], p["D128"], p["D256"]) == (cub["D_NET64"], cub["D_NET128"], cub["D_NET256"])
    assert p["D"] == cub["D_total_3_scales"]
    assert info["shapes"]["G"]["output"] == [[1, 3, s, s] for s in (64, 128, 256)]
    assert info["shapes"]["G"]["attention"] == [[1, 18, 64, 64], [1, 18, 128, 128]]
    damsm = describe(make_cfg("model=damsm", "data=cub"))
    assert damsm["parameters"] == {
        "text_encoder": cub["RNN_ENCODER"],
        "image_encoder": cub["CNN_ENCODER"],
    }
    assert damsm["shapes"]["image_encoder"]["output"] == [[1, 256, 17, 17], [1, 256]]
    with torch.device("meta"):
        full = ImageEncoder()
    assert sum(q.numel() for q in full.parameters()) == 22_506_720  # with the frozen Inception
    # COCO (cfg/coco_attn2.yml): GF 48, DF 96, R_NUM 3, vocabulary 27,297, 12 words
    coco = describe(make_cfg("model=attngan", "data=coco_captions"))
    with torch.device("meta"):
        g = AttnGANGenerator(gf_dim=48, r_num=3)
        d = AttnGANDiscriminator(df_dim=96)
        t = TextEncoder(27297)
    assert coco["parameters"]["G"] == sum(q.numel() for q in g.parameters()) != cub["G_NET"]
    assert coco["parameters"]["D"] == sum(q.numel() for q in d.parameters())
    assert coco["shapes"]["G"]["inputs"][2] == [1, 256, 12]
    assert sum(q.numel() for q in t.parameters()) == 27297 * 300 + 2 * (
        4 * 128 * (300 + 128) + 8 * 128
    )
    cfg = make_cfg("model=attngan", "data=coco_captions")
    assert cfg.model.lambda_damsm == 50.0 and cfg.data.vocab_size == 27297


def test_generator_stages_attention_and_discriminator_shapes() -> None:
    torch.manual_seed(0)
    g = AttnGANGenerator(gf_dim=2, z_dim=4, c_dim=3, nef=6, r_num=1, branch_num=2)
    d = AttnGANDiscriminator(df_dim=2, nef=6, branch_num=2)
    words = torch.randn(3, 6, 5)
    mask = torch.tensor([[False] * 5, [False, False, True, True, True], [False] + [True] * 4])
    images, maps, mu, logvar = g(torch.randn(3, 4), torch.randn(3, 6), words, mask)
    assert [tuple(x.shape) for x in images] == [(3, 3, 64, 64), (3, 3, 128, 128)]
    assert maps[0].shape == (3, 5, 64, 64) and mu.shape == logvar.shape == (3, 3)
    assert images[1].abs().max() <= 1.0
    # attention over each caption's real words only: sums to 1 per pixel, 0 on padding
    assert torch.allclose(maps[0].sum(1), torch.ones(3, 64, 64), atol=1e-5)
    assert maps[0][1, 2:].abs().max() == 0 and maps[0][2, 1:].abs().max() == 0
    out = d(images, torch.randn(3, 6))
    assert [(u.shape, c.shape) for u, c in out] == [((3,), (3,))] * 2
    assert all(((u > 0) & (u < 1)).all() and ((c > 0) & (c < 1)).all() for u, c in out)
    with pytest.raises(ConfigError, match="branch_num"):
        AttnGANGenerator(branch_num=0)


def test_text_encoder_ignores_padding_and_sentence_is_final_states() -> None:
    torch.manual_seed(0)
    enc = TextEncoder(20, embedding_dim=8, word_dim=5).eval()
    caps = torch.tensor([[3, 4, 5, 0, 0], [7, 8, 9, 10, 11]])
    words, sentence = enc(caps, torch.tensor([3, 5]))
    alone_w, alone_s = enc(caps[:1, :3], torch.tensor([3]))
    assert torch.allclose(words[:1, :, :3], alone_w, atol=1e-6)
    assert torch.allclose(sentence[:1], alone_s, atol=1e-6)
    assert words.shape == (2, 8, 5) and sentence.shape == (2, 8)
    # forward half of the sentence = last real word's forward output; backward half = first word's
    assert torch.allclose(sentence[1, :4], words[1, :4, 4], atol=1e-6)
    assert torch.allclose(sentence[1, 4:], words[1, 4:, 0], atol=1e-6)


# ----- DAMSM losses by hand ----------------------------------------------------------------------
def _cos(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def _ce(row: list[float], label: int) -> float:
    m = max(row)
    return -(row[label] - m - math.log(sum(math.exp(v - m) for v in row if v != float("-inf"))))


def test_sentence_loss_by_hand_with_class_mask() -> None:
    img = [[1.0, 0.0], [0.6, 0.8], [-1.0, 1.0]]
    txt = [[2.0, 0.5], [0.0, 1.0], [-0.5, 0.2]]
    s = [[10 * _cos(img[i], txt[j]) for j in range(3)] for i in range(3)]
    l0 = sum(_ce(s[i], i) for i in range(3)) / 3
    l1 = sum(_ce([s[j][i] for j in range(3)], i) for i in range(3)) / 3
    got0, got1 = sentence_loss(torch.tensor(img), torch.tensor(txt), None, 10.0)
    assert got0.item() == pytest.approx(l0, rel=1e-5) and got1.item() == pytest.approx(l1, rel=1e-5)
    # images 0 and 2 share a class: neither is the other's negative
    m = [row[:] for row in s]
    m[0][2] = m[2][0] = float("-inf")
    l0m = sum(_ce(m[i], i) for i in range(3)) / 3
    got0m, _ = sentence_loss(torch.tensor(img), torch.tensor(txt), torch.tensor([4, 1, 4]), 10.0)
    assert got0m.item() == pytest.approx(l0m, rel=1e-5) and got0m < got0


def test_word_attention_and_word_loss_by_hand() -> None:
    # 2 images with 2 regions each (1x2 maps), D = 2; caption 0 has 2 words, caption 1 one word
    regions = torch.tensor([[[[1.0, 0.0]], [[0.0, 1.0]]], [[[0.5, -1.0]], [[1.0, 0.3]]]])
    words = torch.tensor([[[1.0, -0.5], [0.2, 1.0]], [[0.3, 9.0], [-1.0, 9.0]]])  # 9: padding
    lengths = torch.tensor([2, 1])
    g1, g2, g3 = 4.0, 5.0, 10.0

    def region_vec(i: int, r: int) -> list[float]:
        return [float(regions[i, k, 0, r]) for k in range(2)]

    def word_vec(j: int, t: int) -> list[float]:
        return [float(words[j, k, t]) for k in range(2)]

    def sim(i: int, j: int) -> float:  # R(Q_i, D_j) by the paper's equations 7-10
        n_words = int(lengths[j])
        dots = [
            [
                sum(a * b for a, b in zip(region_vec(i, r), word_vec(j, t), strict=True))
                for t in range(n_words)
            ]
            for r in range(2)
        ]
        norm_words = [
            [math.exp(dots[r][t]) / sum(math.exp(v) for v in dots[r]) for t in range(n_words)]
            for r in range(2)
        ]
        total = 0.0
        for t in range(n_words):
            e = [math.exp(g1 * norm_words[r][t]) for r in range(2)]
            alpha = [v / sum(e) for v in e]
            c = [sum(alpha[r] * region_vec(i, r)[k] for r in range(2)) for k in range(2)]
            total += math.exp(g2 * _cos(c, word_vec(j, t)))
        return math.log(total)

    s = [[g3 * sim(i, j) for j in range(2)] for i in range(2)]
    l0 = sum(_ce(s[i], i) for i in range(2)) / 2
    l1 = sum(_ce([s[j][i] for j in range(2)], i) for i in range(2)) / 2
    got0, got1, maps = word_loss(regions, words, lengths, None, g1, g2, g3)
    assert got0.item() == pytest.approx(l0, rel=1e-5) and got1.item() == pytest.approx(l1, rel=1e-5)
    assert maps[0].shape == (2, 1, 2) and maps[1].shape == (1, 1, 2)
    assert torch.allclose(maps[0].sum((1, 2)), torch.ones(2))  # each word's map sums to 1
    weighted, attn = word_attention(words[:1, :, :2], regions[:1], g1)
    assert weighted.shape == (1, 2, 2) and attn.shape == (1, 2, 1, 2)


def test_ca_kl_is_the_mean_kl() -> None:
    mu, logvar = torch.tensor([[0.5, -1.0]]), torch.tensor([[0.2, -0.3]])
    hand = sum(-0.5 * (1 + lv - m * m - math.exp(lv)) for m, lv in [(0.5, 0.2), (-1.0, -0.3)]) / 2
    assert ca_kl(mu, logvar).item() == pytest.approx(hand, rel=1e-6)
    assert ca_kl(torch.zeros(3, 4), torch.zeros(3, 4)).item() == 0.0


# ----- R-precision -------------------------------------------------------------------------------
def test_r_precision_on_known_cases() -> None:
    g = torch.Generator().manual_seed(0)
    codes = torch.randn(1000, 16, generator=g)
    assert r_precision(codes, codes, 100, 10, g) == (1.0, 0.0)
    mean, std = r_precision(codes, torch.randn(1000, 16, generator=g), 100, 10, g)
    assert mean < 0.04 and std >= 0.0  # chance is 1 / 100
    # the true caption must rank strictly first: a mismatched caption scoring the same is a miss
    dup = codes.clone()
    dup[1::2] = dup[0::2]
    assert r_precision(codes[:200], dup[:200], 100, 1, g)[0] < 1.0
    metric = RPrecision(candidates=10, splits=2)
    metric.update(codes[:30], codes[:30])
    metric.update(codes[30:40], codes[30:40])
    assert metric.compute() == (1.0, 0.0)
    with pytest.raises(ConfigError, match="at least"):
        r_precision(codes[:50], codes[:50], 100)


# ----- the DAMSM stage, AttnGAN on it, sampling, learning ----------------------------------------
DAMSM_TINY = [
    "model=damsm",
    "data=synthetic",
    "data.batch_size=16",
    "model.damsm.text_encoder.embedding_dim=32",
    "model.damsm.text_encoder.word_dim=32",
    "model.damsm.image_encoder.image_size=75",
    "model.damsm.image_encoder.train_backbone=false",
    "model.epoch_iterations=10",
    "callbacks.checkpoint.every_n_iterations=0",
    *QUIET,
]


def _val_batches(cfg, n: int, size: int) -> list[Batch]:
    dm = build_datamodule(cfg)
    ds = dm.build("val")
    from ganzoo.data.batch import collate

    return [collate([ds[i] for i in range(s, s + size)]) for s in range(0, n, size)]


def _damsm_r_precision(task: DAMSMTask, batches: list[Batch]) -> float:
    metric = RPrecision(candidates=10, splits=1)
    for b in batches:
        metric.update(*task.embed(b))
    return metric.compute()[0]


def test_damsm_learns_and_feeds_a_frozen_text_encoder_in_attngan(tmp_path: Path) -> None:
    damsm_dir = tmp_path / "damsm"
    cfg = compose_train(damsm_dir, [*DAMSM_TINY, "steps=200"])
    batches = _val_batches(cfg, 128, 32)
    torch.manual_seed(0)
    untrained = _damsm_r_precision(build_task(cfg), batches)
    train(cfg)
    ckpt = damsm_dir / "checkpoints" / "last.ckpt"
    task, _ = load_run(ckpt, "cpu")
    assert isinstance(task, DAMSMTask) and int(task.iteration) == 200
    trained = _damsm_r_precision(task, batches)
    assert trained > untrained + 0.1, (untrained, trained)  # chance 0.1 among 10 captions
    # (measured: 0.09 untrained, 0.28 after 200 steps)
    # lr x 0.98 per 10-iteration epoch
    assert task.lr_factor(25) == pytest.approx(0.98**2)
    assert task.lr_factor(10_000) == pytest.approx(0.98**114)

    # AttnGAN on that checkpoint: its encoders loaded and frozen
    gan_dir = tmp_path / "gan"
    gan_cfg = compose_train(
        gan_dir,
        [
            "model=attngan",
            "data=synthetic",
            "data.batch_size=4",
            "debug=smoke",
            "steps=2",
            "model.allow_untrained_damsm=false",
            f"model.damsm_ckpt={ckpt}",
            "model.damsm.text_encoder.embedding_dim=32",
            "model.damsm.text_encoder.word_dim=32",
            "metrics=rprecision",  # evaluated at the end of training
            "metrics.num_samples=16",
            "metrics.batch_size=16",
            "metrics.compute.rprecision.candidates=10",
            "metrics.compute.rprecision.splits=2",
            *QUIET,
        ],
    )
    train(gan_cfg)
    gan, _ = load_run(gan_dir / "checkpoints" / "last.ckpt", "cpu")
    assert isinstance(gan, AttnGANTask) and int(gan.iteration) == 2
    saved = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    for name, value in gan.damsm.state_dict().items():
        assert torch.equal(value, saved[f"generator.{name}"]), name  # frozen: unchanged
    # metrics=rprecision: the EMA G's images of val items 0..15 (latents seeded per index, as
    # the callback draws them), each ranked against its own and 9 other captions
    logged = json.loads((gan_dir / "metrics.jsonl").read_text().splitlines()[-1])["metrics"]
    val = collate([build_datamodule(gan_cfg).build("val")[i] for i in range(16)])  # type: ignore[index]
    latents = torch.cat(
        [gan.sample_latents(1, torch.Generator().manual_seed(i)) for i in range(16)]
    )
    codes = gan.evaluation_view("text_image_codes", val, gan.sample_ema(val, latents))
    by_hand = r_precision(*codes, 10, 2, torch.Generator().manual_seed(0))
    assert (logged["rprecision_mean"], logged["rprecision_std"]) == pytest.approx(by_hand)
    assert 0.0 <= logged["rprecision_mean"] <= 1.0 and logged["rprecision_std"] >= 0.0
    before = build_task(gan_cfg)  # fresh random G: training changed it
    assert not torch.equal(
        gan.generator.ca_net.fc.weight,
        before.generator.ca_net.fc.weight,  # type: ignore[union-attr]
    )

    # caption sampling: each stage's images and the per-word attention grids
    out = tmp_path / "captions"
    proc = run_cli(
        "ganzoo.sample",
        f"ckpt={gan_dir / 'checkpoints' / 'last.ckpt'}",
        "action=caption",
        "caption='a large red circle by a lake xyzzy'",
        "num_samples=2",
        f"output={out}",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["dropped"] == ["xyzzy"] and "red" in result["words"]
    names = sorted(Path(f).name for f in result["files"])
    assert names == sorted(
        [f"stage{k}_{i}.png" for k in (0, 1) for i in (0, 1)]
        + [f"attention_stage1_{i}.png" for i in (0, 1)]
    )
    from PIL import Image

    grid = Image.open(out / "attention_stage1_0.png")
    assert grid.size[0] > (len(result["words"]) + 1) * 128  # image + one column per word
    assert Image.open(out / "stage0_0.png").size == (64, 64)


def test_attngan_needs_a_damsm_checkpoint_and_a_matching_resolution(make_cfg, tmp_path) -> None:
    cfg = make_cfg(
        "model=attngan",
        "data=synthetic",
        "debug=smoke",
        "model.allow_untrained_damsm=false",
        *QUIET,
    )
    with pytest.raises(ConfigError, match="damsm_ckpt"):
        train(cfg)
    with pytest.raises(ConfigError, match="makes 128x128"):
        build_task(make_cfg("model=attngan", "data=synthetic", "debug=smoke", "data.resolution=64"))
    bad = tmp_path / "bad.ckpt"
    torch.save({"state_dict": {"x": torch.zeros(1)}}, bad)
    with pytest.raises(ConfigError, match="not a model=damsm checkpoint"):
        train(
            make_cfg(
                "model=attngan", "data=synthetic", "debug=smoke", f"model.damsm_ckpt={bad}", *QUIET
            )
        )
    other = tmp_path / "other.ckpt"  # a DAMSM of another vocabulary
    torch.save({"state_dict": {"generator.text_encoder.encoder.weight": torch.zeros(3, 3)}}, other)
    with pytest.raises(ConfigError, match="does not fit this run's DAMSM encoders"):
        train(
            make_cfg(
                "model=attngan",
                "data=synthetic",
                "debug=smoke",
                f"model.damsm_ckpt={other}",
                *QUIET,
            )
        )


def test_damsm_backbone_loads_from_weights_file_or_fails_in_one_line(make_cfg, tmp_path) -> None:
    from torchvision.models import inception_v3

    from ganzoo.core.errors import WeightsError

    smoke = ["model=damsm", "data=synthetic", "debug=smoke", "model.pretrained_backbone=true"]
    task = build_task(make_cfg(*smoke, f"paths.weights_dir={tmp_path}"))
    with pytest.raises(WeightsError, match="inception_v3_google-0cc3c7bd.pth not found"):
        task.setup("fit")
    torch.manual_seed(1)
    state = inception_v3(weights=None, aux_logits=True, init_weights=False).state_dict()
    path = tmp_path / "inception.pth"
    torch.save(state, path)
    task = build_task(make_cfg(*smoke, f"weights.inception_v3={path}"))
    assert isinstance(task, DAMSMTask)
    task.setup("fit")
    backbone = task.damsm.image_encoder.backbone.state_dict()
    assert torch.equal(
        backbone["Mixed_7c.branch_pool.conv.weight"], state["Mixed_7c.branch_pool.conv.weight"]
    )
    assert task.weights_provenance["inception_v3"]["path"] == str(path)
    assert not any(p.requires_grad for p in task.damsm.image_encoder.backbone.parameters())


def test_damsm_clips_only_the_text_encoder_gradient(make_cfg) -> None:
    task = build_task(make_cfg("model=damsm", "data=synthetic", "debug=smoke"))
    assert isinstance(task, DAMSMTask) and task.rnn_grad_clip == 0.25
    for p in task.damsm.parameters():
        p.grad = torch.full_like(p, 3.0)
    task.on_before_optimizer_step(None)
    text = torch.cat([p.grad.flatten() for p in task.damsm.text_encoder.parameters()])
    assert text.norm().item() == pytest.approx(0.25, rel=1e-4)
    assert task.damsm.image_encoder.emb_cnn_code.weight.grad.eq(3.0).all()


@pytest.mark.slow
def test_attngan_darkens_night_captions_after_a_short_synthetic_run(tmp_path: Path) -> None:
    """Conditioning learnt: the mean brightness of day-caption minus night-caption images of the
    EMA generator (real val scenes: 0.73), after 300 iterations (about 2.5 min here).

    The DAMSM weight is 0.05, not the paper's 5 / 50: this test's DAMSM (200 steps, a frozen
    random Inception backbone) gives generator gradients about 10^3 x the adversarial ones, so
    at 5 or 50 it swamps the conditional discriminator's signal in so short a run. Measured
    (script beside this test's settings): lambda 0 -> 0.78, 0.05 -> 0.66, 5 -> 0.08, 50 -> 0.10;
    untrained about 0.04; in this test 0.04 -> 0.74."""
    from ganzoo.data.synthetic import SyntheticScenes

    damsm_dir = tmp_path / "damsm"
    train(compose_train(damsm_dir, [*DAMSM_TINY, "steps=200"]))
    overrides = [
        "model=attngan",
        "data=synthetic",
        "data.batch_size=8",
        "steps=300",
        f"model.damsm_ckpt={damsm_dir / 'checkpoints' / 'last.ckpt'}",
        "model.damsm.text_encoder.embedding_dim=32",
        "model.damsm.text_encoder.word_dim=32",
        "model.generator.gf_dim=4",
        "model.discriminator.df_dim=4",
        "model.lambda_damsm=0.05",  # see the docstring
        "optim.lr_g=1e-3",
        "model.ema.decay=0.9",
        "callbacks.checkpoint.every_n_iterations=0",
        *QUIET,
    ]
    cfg = compose_train(tmp_path / "gan", overrides)
    val = _val_batches(cfg, 128, 32)
    night = SyntheticScenes.vocab.index("night")

    def gap(task: AttnGANTask | None) -> float:
        g = torch.Generator().manual_seed(0)
        means, is_night = [], []
        for b in val:
            x = b.image if task is None else task.sample_ema(b, task.sample_latents(b.size, g))
            means.append(x.mean((1, 2, 3)))
            assert b.caption_tokens is not None
            is_night.append((b.caption_tokens == night).any(1))
        m, n = torch.cat(means), torch.cat(is_night)
        assert 10 < int(n.sum()) < len(n) - 10
        return float(m[~n].mean() - m[n].mean())

    torch.manual_seed(0)
    fresh = build_task(cfg)
    assert isinstance(fresh, AttnGANTask)
    fresh.setup("fit")
    untrained = gap(fresh)
    train(cfg)
    trained_task, _ = load_run(tmp_path / "gan" / "checkpoints" / "last.ckpt", "cpu")
    assert isinstance(trained_task, AttnGANTask)
    trained = gap(trained_task)
    assert gap(None) > 0.5  # the real scenes: night is darker
    assert trained > untrained + 0.2 and trained > 0.2, (untrained, trained)
