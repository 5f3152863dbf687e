"""StarGAN: networks, paper parameter counts, each loss term, the mask-vector path, n_critic,
the learning-rate schedule, the translate action and learning on the synthetic scenes (the
attribute classifier's reading of translated images).

The module runs torch with one intra-op thread (2 shared cores; see test_pix2pixhd.py).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from ganzoo.cli.build import build_datamodule, build_task, train
from ganzoo.core.errors import ConfigError
from ganzoo.data.batch import Batch, collate
from ganzoo.data.synthetic import SyntheticScenes
from ganzoo.info import describe
from ganzoo.metrics import attribute_classifier as ac
from ganzoo.models.stargan import StarGANDiscriminator, StarGANGenerator
from ganzoo.tasks.stargan import (
    StarGANTask,
    classification_loss,
    create_labels,
    gradient_penalty,
    lr_factor,
)
from tests.conftest import REPO, compose_train, run_cli

PARAMS = json.loads((REPO / "reference" / "params.json").read_text())["params"]["stargan"]
QUIET = [
    "logger=csv",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "callbacks.samples=null",
]
SMOKE = ["model=stargan", "debug=smoke", *QUIET]
CELEBA = ["Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young"]
RAFD = ["angry", "contemptuous", "disgusted", "fearful", "happy", "neutral", "sad", "surprised"]
OPTIM = {
    "lr_g": 1e-4,
    "lr_d": 1e-4,
    "betas_g": [0.5, 0.999],
    "betas_d": [0.5, 0.999],
    "decay_start": 0.5,
    "decay_end": 1.0,
}
EMA = {"decay": 0.999}


pytestmark = pytest.mark.usefixtures("one_thread")


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters() if p.requires_grad)


def tiny_task(c_dim: int = 5, c2_dim: int = 0, **kw) -> StarGANTask:
    """A StarGAN task at 16x16 with tiny nets (CelebA names; joint: CelebA + RaFD)."""
    label_dim = c_dim + c2_dim + (2 if c2_dim else 0)
    names = (CELEBA + RAFD)[: c_dim + c2_dim] if c_dim == 5 else RAFD[:c_dim]
    args = dict(
        c_dim=c_dim,
        c2_dim=c2_dim,
        cls_loss="bce" if c_dim == 5 else "ce",
        cls_loss2="ce",
        attribute_names=names,
        one_of=[["Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair"]],
    )
    args.update(kw)
    return StarGANTask(
        StarGANGenerator(label_dim, conv_dim=4, repeat_num=1),
        StarGANDiscriminator(c_dim + c2_dim, image_size=16, conv_dim=4, repeat_num=3),
        OPTIM,
        EMA,
        1000,
        **args,  # type: ignore[arg-type]
    )


# ----- networks ---------------------------------------------------------------------------
def test_generator_and_discriminator_shapes_and_conditioning() -> None:
    torch.manual_seed(0)
    g = StarGANGenerator(c_dim=3, conv_dim=8, repeat_num=2)
    d = StarGANDiscriminator(c_dim=3, image_size=32, conv_dim=8, repeat_num=4)
    x = torch.randn(2, 3, 32, 32)
    c0, c1 = torch.zeros(2, 3), torch.tensor([[1.0, 0, 1], [0, 1, 0]])
    out = g(x, c1)
    assert out.shape == (2, 3, 32, 32) and out.abs().max() <= 1
    assert not torch.allclose(g(x, c0), out)  # the tiled label reaches the output
    src, cls = d(x)
    assert src.shape == (2, 1, 2, 2) and cls.shape == (2, 3)  # PatchGAN map, D_cls logits
    assert d.conv2.kernel_size == (2, 2)  # image_size / 2^repeat_num, as model.py
    assert all(m.bias is None for m in g.modules() if isinstance(m, torch.nn.Conv2d))
    assert not any(isinstance(m, torch.nn.InstanceNorm2d) for m in d.modules())
    slopes = {m.negative_slope for m in d.modules() if isinstance(m, torch.nn.LeakyReLU)}
    assert slopes == {0.01}
    with pytest.raises(ValueError, match="divisible by 2\\^repeat_num"):
        StarGANDiscriminator(3, image_size=40, repeat_num=4)
    with pytest.raises(AssertionError, match="label shape"):
        g(x, torch.zeros(2, 4))


def test_instance_norm_uses_each_images_statistics_in_eval_as_official() -> None:
    """solver.py never calls G.eval(): eval-mode output = train-mode output (running stats are
    tracked in train mode, buffers in the state dict, never used to normalise)."""
    torch.manual_seed(0)
    g = StarGANGenerator(2, conv_dim=4, repeat_num=1)
    x, c = torch.randn(2, 3, 16, 16) * 3 + 1, torch.ones(2, 2)
    before = g.main[1].running_mean.clone()
    train_out = g(x, c)
    assert not torch.equal(g.main[1].running_mean, before)  # tracked in train mode
    assert "main.1.running_var" in g.state_dict()
    g.eval()
    tracked = g.main[1].running_mean.clone()
    torch.testing.assert_close(g(x, c), train_out)
    assert torch.equal(g.main[1].running_mean, tracked)  # not updated in eval


def test_paper_configs_match_official_counts(make_cfg) -> None:
    """CelebA 128 (params.json); RaFD = the paper's 53.2M (Table 3); joint = the official
    build_model with c_dim + c2_dim + 2 in G and c_dim + c2_dim in D, counted by hand."""
    celeba = describe(make_cfg("model=stargan", "data=celeba"))
    assert celeba["parameters"] == PARAMS["celeba_128"]
    assert celeba["shapes"]["G"]["inputs"] == [[1, 3, 128, 128], [1, 5]]
    assert celeba["shapes"]["D"]["output"] == [[1, 1, 2, 2], [1, 5]]
    g0, d0 = PARAMS["celeba_128"]["G"], PARAMS["celeba_128"]["D"]
    per_g_label, per_d_class = 64 * 7 * 7, 2048 * 2 * 2  # first conv; D_cls conv (kernel 2)
    rafd = describe(make_cfg("model=stargan", "data=rafd"))["parameters"]
    assert rafd == {"G": g0 + 3 * per_g_label, "D": d0 + 3 * per_d_class}
    assert round((rafd["G"] + rafd["D"]) / 1e6, 1) == 53.2
    joint = describe(make_cfg("model=stargan", "data=celeba_rafd"))
    assert joint["parameters"] == {"G": g0 + 10 * per_g_label, "D": d0 + 8 * per_d_class}
    assert joint["shapes"]["G"]["inputs"][1] == [1, 15]
    assert joint["shapes"]["D"]["output"][1] == [1, 13]


def test_experiments_are_the_official_recipes(make_cfg) -> None:
    """experiment=stargan_*: README commands (joint at 256: D_cls kernel 4), main.py settings."""
    g0, d0 = PARAMS["celeba_128"]["G"], PARAMS["celeba_128"]["D"]
    expected = {
        "celeba": {"G": g0, "D": d0},
        "rafd": {"G": g0 + 3 * 3136, "D": d0 + 3 * 8192},
        "celeba_rafd": {"G": g0 + 10 * 3136, "D": d0 - 5 * 8192 + 13 * 2048 * 4 * 4},
    }
    for name, params in expected.items():
        cfg = make_cfg(f"experiment=stargan_{name}")
        assert describe(cfg)["parameters"] == params, name
        batches = 2 if name == "celeba_rafd" else 1  # a CelebA and a RaFD batch per iteration
        assert cfg.steps == 200_000 * batches and cfg.model.n_critic == 5
        assert cfg.data.batch_size == 16 and cfg.data.alternate_groups == (batches == 2)
        assert cfg.optim.lr_g == cfg.optim.lr_d == 1e-4 and list(cfg.optim.betas_g) == [0.5, 0.999]
        assert (cfg.model.lambda_cls, cfg.model.lambda_rec, cfg.model.lambda_gp) == (1, 10, 10)


def test_info_cli_prints_the_joint_network() -> None:
    proc = run_cli("ganzoo.info", "model=stargan", "data=celeba_rafd")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    assert info["parameters"] == {"G": 8_461_888, "D": 44_827_584}


def test_bad_label_configuration_is_one_clear_error(make_cfg) -> None:
    with pytest.raises(ConfigError, match="model.cls_loss=mse; valid: bce, ce"):
        tiny_task(cls_loss="mse")
    with pytest.raises(ConfigError, match="4 names for c_dim \\+ c2_dim = 5"):
        tiny_task(attribute_names=CELEBA[:4])
    cfg = make_cfg("model=stargan", "data=celeba_rafd", "model.generator.c_dim=13")
    with pytest.raises(ConfigError, match="labels need c_dim \\+ c2_dim \\+ 2 \\(mask\\) = 15"):
        with torch.device("meta"):
            build_task(cfg)


# ----- loss terms -------------------------------------------------------------------------
def test_gradient_penalty_equals_hand_computation() -> None:
    torch.manual_seed(0)
    x = torch.randn(4, 3, 8, 8)
    w = torch.randn(3, 8, 8, requires_grad=True)
    gp = gradient_penalty(lambda h: (h * w).sum((1, 2, 3)), x)  # grad = w for every image
    torch.testing.assert_close(gp, (w.detach().norm() - 1) ** 2)
    (dw,) = torch.autograd.grad(gp, w)  # differentiable in D's parameters (create_graph)
    torch.testing.assert_close(dw, 2 * (w.norm() - 1) * w.detach() / w.norm())
    # a non-linear critic: d/dx sum(x^2) = 2x, norm 2 ||x_i||
    gp2 = gradient_penalty(lambda h: h.pow(2).sum((1, 2, 3)), x)
    torch.testing.assert_close(gp2, ((2 * x.flatten(1).norm(dim=1) - 1) ** 2).mean())
    # under autocast the penalty is still computed in float32 and gives the same value
    d = StarGANDiscriminator(2, image_size=16, conv_dim=4, repeat_num=3)
    h = torch.randn(3, 3, 16, 16)
    ref = gradient_penalty(lambda t: d(t)[0], h)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = gradient_penalty(lambda t: d(t)[0], h.bfloat16())
    assert mixed.dtype == torch.float32
    torch.testing.assert_close(mixed, ref, rtol=1e-2, atol=1e-2)  # input rounded to bf16


def test_classification_loss_as_official() -> None:
    torch.manual_seed(0)
    logits, attrs = torch.randn(6, 5), torch.randint(0, 2, (6, 5)).float()
    official_bce = F.binary_cross_entropy_with_logits(logits, attrs, reduction="sum") / 6
    torch.testing.assert_close(classification_loss(logits, attrs, "bce").mean(), official_bce)
    cls = torch.randint(0, 8, (6,))
    logits8 = torch.randn(6, 8)
    official_ce = F.cross_entropy(logits8, cls)
    got = classification_loss(logits8, F.one_hot(cls, 8).float(), "ce").mean()
    torch.testing.assert_close(got, official_ce)


def test_generator_and_discriminator_terms_by_hand() -> None:
    torch.manual_seed(0)
    task = tiny_task()
    x = torch.rand(6, 3, 16, 16) * 2 - 1
    attrs = torch.randint(0, 2, (6, 5)).float()
    batch = Batch(image=x, attributes=attrs)
    c_trg = task.target_labels(batch)
    assert sorted(map(tuple, c_trg.tolist())) == sorted(map(tuple, attrs.tolist()))  # permuted
    g, d = task.generator, task.discriminator
    terms = task.generator_loss(batch)
    fake = g(x, c_trg)
    src, cls = d(fake)
    torch.testing.assert_close(terms["fake"], -src.mean())
    rec = (x - g(fake, attrs)).abs().mean()
    torch.testing.assert_close(terms["rec"], 10 * rec)  # lambda_rec 10
    expected_cls = F.binary_cross_entropy_with_logits(cls, c_trg, reduction="sum") / 6
    torch.testing.assert_close(terms["cls"], expected_cls)  # lambda_cls 1, against c_trg
    d_terms = task.discriminator_loss(batch)
    src_real, cls_real = d(x)
    with torch.no_grad():
        src_fake, _ = d(g(x, c_trg))
    torch.testing.assert_close(d_terms["real"], -src_real.mean())
    torch.testing.assert_close(d_terms["fake"], src_fake.mean())
    expected = F.binary_cross_entropy_with_logits(cls_real, attrs, reduction="sum") / 6
    torch.testing.assert_close(d_terms["cls"], expected)  # against the real labels
    assert d_terms["gp"] >= 0 and set(d_terms) == {"real", "fake", "cls", "gp"}


def test_rafd_labels_use_cross_entropy_and_one_hot_targets() -> None:
    torch.manual_seed(0)
    task = tiny_task(c_dim=8)
    labels = F.one_hot(torch.tensor([0, 3, 7, 3]), 8).float()
    logits = torch.randn(4, 8)
    torch.testing.assert_close(
        task.cls_loss(logits, labels), F.cross_entropy(logits, torch.tensor([0, 3, 7, 3]))
    )
    targets = task.translation_targets(labels)
    assert [k for k, _ in targets] == RAFD
    assert all(
        torch.equal(c, F.one_hot(torch.full((4,), i), 8).float())
        for i, (_, c) in enumerate(targets)
    )


def test_create_labels_treats_hair_colours_as_one_of() -> None:
    c = torch.tensor([[1.0, 0, 0, 1, 0], [0, 0, 1, 0, 1]])
    targets = dict(
        create_labels(c, CELEBA, "bce", [["Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair"]])
    )
    assert targets["Blond_Hair"].tolist() == [[0, 1, 0, 1, 0], [0, 1, 0, 0, 1]]
    assert targets["Black_Hair"].tolist() == [[1, 0, 0, 1, 0], [1, 0, 0, 0, 1]]
    assert targets["Male"].tolist() == [[1, 0, 0, 0, 0], [0, 0, 1, 1, 1]]  # flipped
    assert targets["Young"].tolist() == [[1, 0, 0, 1, 1], [0, 0, 1, 0, 0]]
    assert torch.equal(c, torch.tensor([[1.0, 0, 0, 1, 0], [0, 0, 1, 0, 1]]))  # not modified


# ----- the mask vector ----------------------------------------------------------------------
def test_mask_vector_path_for_celeba_rafd_batches() -> None:
    """data=celeba_rafd's batches: [5 CelebA | 8 RaFD] attributes and domain_mask."""
    torch.manual_seed(0)
    task = tiny_task(c2_dim=8)
    assert task.required_fields() == ("image", "attributes", "domain_mask")
    is_celeba = torch.tensor([1, 0, 1, 1, 0, 0, 1, 0]).bool()
    celeba = torch.randint(0, 2, (8, 5)).float()
    rafd = F.one_hot(torch.randint(0, 8, (8,)), 8).float()
    attrs = torch.cat([celeba * is_celeba[:, None], rafd * ~is_celeba[:, None]], 1)
    attrs[1, 0] = 1.0  # stray value in the other dataset's part: the mask zeroes it
    mask = torch.stack([is_celeba, ~is_celeba], 1).float()
    batch = Batch(image=torch.rand(8, 3, 16, 16) * 2 - 1, attributes=attrs, domain_mask=mask)
    c, dataset = task.domain_labels(batch)
    assert c.shape == (8, 15) and dataset.tolist() == (~is_celeba).long().tolist()
    assert torch.equal(c[:, 13:], mask)
    assert torch.equal(c[is_celeba, 5:13], torch.zeros(4, 8))  # RaFD part zero for CelebA
    assert torch.equal(c[~is_celeba, :5], torch.zeros(4, 5))  # CelebA part zero for RaFD
    assert torch.equal(c[is_celeba, :5], celeba[is_celeba])
    assert torch.equal(c[~is_celeba, 5:13], rafd[~is_celeba])
    trg = task.target_labels(batch)  # permuted within each dataset: the mask stays
    assert torch.equal(trg[:, 13:], mask)
    assert sorted(map(tuple, trg[is_celeba].tolist())) == sorted(map(tuple, c[is_celeba].tolist()))
    # D's classification: CelebA rows BCE on the first 5 logits, RaFD rows CE on the last 8
    logits = torch.randn(8, 13)
    bce = F.binary_cross_entropy_with_logits(logits[:, :5], c[:, :5], reduction="none").sum(1)
    ce = F.cross_entropy(logits[:, 5:], c[:, 5:13].argmax(1), reduction="none")
    torch.testing.assert_close(task.cls_loss(logits, c), torch.where(is_celeba, bce, ce).mean())
    # one dataset only: the official per-batch loss
    only = c[is_celeba]
    torch.testing.assert_close(
        task.cls_loss(logits[is_celeba], only),
        F.binary_cross_entropy_with_logits(logits[is_celeba, :5], only[:, :5], reduction="sum") / 4,
    )
    terms = {**task.discriminator_loss(batch), **task.generator_loss(batch)}
    assert all(torch.isfinite(v) for v in terms.values())
    # test targets (solver.py test_multi): 5 CelebA columns with mask [1, 0], 8 RaFD one-hot [0, 1]
    targets = task.translation_targets(c)
    assert [k for k, _ in targets] == CELEBA + RAFD
    for i, (_, t) in enumerate(targets):
        if i < 5:
            assert torch.equal(t[:, 13:], torch.tensor([[1.0, 0]]).expand(8, 2))
            assert torch.equal(t[:, 5:13], torch.zeros(8, 8))
        else:
            assert torch.equal(t[:, 13:], torch.tensor([[0.0, 1]]).expand(8, 2))
            assert torch.equal(t[:, :5], torch.zeros(8, 5))
            assert torch.equal(t[:, 5:13], F.one_hot(torch.full((8,), i - 5), 8).float())


# ----- schedule -----------------------------------------------------------------------------
def test_lr_schedule_values_as_solver_py() -> None:
    """num_iters 200k, num_iters_decay 100k, lr_update_step 1000 (solver.py:335-338)."""

    def code(n: int) -> float:
        return lr_factor(n, 100_000, 100_000, 1000, "code")

    assert code(0) == code(100_000) == code(100_999) == 1.0
    assert code(101_000) == pytest.approx(1 - 1e-5)  # lr -= lr0 / num_iters_decay
    assert code(150_500) == pytest.approx(1 - 50e-5)
    assert code(200_000) == pytest.approx(0.999)  # the whole "decay": 0.1%
    paper = [lr_factor(n, 100_000, 100_000, 1000, "paper") for n in (100_000, 101_000, 150_000)]
    assert paper == pytest.approx([1.0, 0.99, 0.5])
    assert lr_factor(200_000, 100_000, 100_000, 1000, "paper") == pytest.approx(0.0, abs=1e-12)


def test_n_critic_and_lr_decay_in_a_run(make_cfg, tmp_path: Path, monkeypatch) -> None:
    """10 iterations: D every iteration, G at iterations 4 and 9 ((i+1) % 5 == 0); the lr in
    the checkpoints follows solver.py with lr_update_step 2 and the decay from iteration 5:
    lr -= lr0 / 5 after iterations 6, 8 and 10."""
    calls: list[tuple[str, int]] = []
    for name in ("generator_loss", "discriminator_loss"):
        original = getattr(StarGANTask, name)

        def wrapped(self, batch, _original=original, _name=name):
            calls.append((_name[0].upper(), int(self.iteration)))
            return _original(self, batch)

        monkeypatch.setattr(StarGANTask, name, wrapped)
    cfg = make_cfg(
        *SMOKE,
        "steps=10",
        "model.lr_update_step=2",
        "callbacks.checkpoint.every_n_iterations=7",
        run_dir=tmp_path / "run",
    )
    train(cfg)
    assert [i for k, i in calls if k == "G"] == [4, 9]
    assert [i for k, i in calls if k == "D"] == list(range(10))
    lr0 = float(cfg.optim.lr_g)
    for name, factor in (("iter_0000007.ckpt", 0.8), ("last.ckpt", 0.4)):
        ckpt = torch.load(tmp_path / "run/checkpoints" / name, weights_only=True)
        lrs = [opt["param_groups"][0]["lr"] for opt in ckpt["optimizer_states"]]
        assert lrs == pytest.approx([lr0 * factor] * 2), name


# ----- the attribute classifier and learning ------------------------------------------------
def test_attribute_classifier_is_cached(tmp_path: Path, monkeypatch) -> None:
    scenes = SyntheticScenes(400, 16, 16, 0, "train")
    recipe = ac.AttributeRecipe(train_samples=64, steps=3, batch_size=8)
    names = list(SyntheticScenes.attribute_names)
    first = ac.load_or_train(scenes, {"name": "synthetic"}, names, recipe, tmp_path)
    assert Path(first.provenance()["weights"]).is_file()
    assert set(first.provenance()["holdout"]) == set(names)

    def no_training(*args, **kwargs):
        raise AssertionError("retrained although cached")

    monkeypatch.setattr(ac, "train_attribute_net", no_training)
    again = ac.load_or_train(scenes, {"name": "synthetic"}, names, recipe, tmp_path)
    x = scenes[0]["image"][None]
    torch.testing.assert_close(again(x), first(x))
    with pytest.raises(ConfigError, match="5 names given"):
        ac.load_or_train(scenes, {"name": "synthetic"}, names[:5], recipe, tmp_path)


def test_translated_attributes_are_read_by_the_classifier_after_training(
    make_cfg, tmp_path: Path
) -> None:
    """The synthetic preset at 32x32 for 400 iterations (80 G updates): the classifier
    trained on the real training scenes (metrics=attributes' classifier) reads the target
    attribute of translated images. Measured (G): mean over the 6 targets 0.40 -> 0.59, night
    0.50 -> 1.0, has_mountains 0.36 -> 0.73, has_large_object 0.39 -> 0.55 (the untrained G's
    outputs are read as arbitrary attributes). `ganzoo.evaluate metrics=attributes` on the
    checkpoint gives the numbers of the EMA generator's translations of the same images
    (measured: mean 0.53, night 0.86; the EMA lags G after 80 G updates)."""
    from ganzoo.callbacks.metrics import train_split_classifier
    from ganzoo.evaluate import evaluate

    torch.manual_seed(0)
    cache = tmp_path / "cache"
    cfg = make_cfg(
        *QUIET,
        "model=stargan",
        "data.resolution=32",
        "steps=400",
        "callbacks.checkpoint.every_n_iterations=400",
        f"paths.cache_dir={cache}",
        run_dir=tmp_path / "run",
    )
    names = list(cfg.model.attribute_names)
    recipe = dict(cfg.metrics.attribute_classifier)
    classifier = train_split_classifier(build_datamodule(cfg), names, recipe, cache)
    assert classifier.provenance()["holdout"]["night"] > 0.95
    val = build_datamodule(cfg).build("val")
    batch = collate([val[i] for i in range(96)])  # type: ignore[index]

    def scores(task: StarGANTask, generator: torch.nn.Module) -> dict[str, float]:
        targets = task.translation_targets(batch.attributes)
        images = [task.translate(batch.image, c, generator) for _, c in targets]
        return ac.translation_scores(classifier, [c for _, c in targets], images, names)

    untrained = build_task(cfg)
    before = scores(untrained, untrained.generator)
    train(cfg)
    task = build_task(cfg)
    ckpt = torch.load(tmp_path / "run/checkpoints/last.ckpt", weights_only=True)
    task.load_state_dict(ckpt["state_dict"])
    after = scores(task, task.generator)
    assert (
        after["attr_acc/night"] > 0.9 and after["attr_acc/night"] > before["attr_acc/night"] + 0.3
    )
    assert after["attr_acc/mean"] > before["attr_acc/mean"] + 0.05, (before, after)
    improved = [k for k in names if after[f"attr_acc/{k}"] > before[f"attr_acc/{k}"] + 0.2]
    assert len(improved) >= 2, (before, after)  # night, has_mountains

    # the metric: the EMA generator's translations of the first 96 val scenes, same classifier
    result = evaluate(
        compose_train(
            tmp_path / "eval",
            [
                f"ckpt={tmp_path / 'run/checkpoints/last.ckpt'}",
                "device=cpu",
                "metrics=attributes",
                "metrics.num_samples=96",
                "metrics.batch_size=96",
                f"paths.cache_dir={cache}",
            ],
            config_name="evaluate",
        )
    )
    expected = scores(task, task.generator_ema)
    assert result["metrics"] == pytest.approx(expected, abs=1e-9)
    provenance = result["provenance"]["attribute_classifier"]
    assert provenance["weights_sha256"] == classifier.provenance()["weights_sha256"]


def test_target_fid_groups_translations_by_the_value_their_target_sets() -> None:
    from ganzoo.metrics import functional
    from ganzoo.metrics.translation import TargetFID

    g = torch.Generator().manual_seed(0)
    real = torch.randn(40, 5, generator=g)
    real_attrs = torch.zeros(40, 2)
    real_attrs[:25, 0] = 1.0  # 25 real images with a, 15 without; b: all off
    metric = TargetFID(["a", "b"], min_samples=3)
    metric.set_reference(real, real_attrs)
    fake = torch.randn(12, 5, generator=g) + 1.0
    target_a = torch.tensor([1.0] * 8 + [0.0] * 4)[:, None].repeat(1, 2)  # 8 to a, 4 to not_a
    metric.update("a", target_a, fake)
    target_b = torch.zeros(12, 2)
    target_b[:, 1] = 1.0  # every image to b: no real image has b
    metric.update("b", target_b, fake)
    out = metric.compute()
    assert out["target_fid/a"] == pytest.approx(functional.frechet_distance(real[:25], fake[:8]))
    assert out["target_fid/not_a"] == pytest.approx(
        functional.frechet_distance(real[25:], fake[8:])
    )
    assert "target_fid/b" not in out  # 0 real images with b: not scored, but counted
    assert metric.last_counts["b"] == {"real": 0, "fake": 12}
    assert out["target_fid_mean"] == pytest.approx(
        (out["target_fid/a"] + out["target_fid/not_a"]) / 2
    )
    with pytest.raises(ConfigError, match="not an attribute of the data"):
        metric.update("c", target_b, fake)


def test_target_fid_of_a_checkpoint_groups_the_real_reference_by_attribute(
    make_cfg, tmp_path: Path
) -> None:
    from ganzoo.evaluate import evaluate
    from tests.test_metrics import write_random_inception

    run = tmp_path / "run"
    train(make_cfg(*SMOKE, "steps=2", run_dir=run))
    inception = write_random_inception(tmp_path / "inception.pth")
    args = [
        f"ckpt={run}/checkpoints/last.ckpt",
        "device=cpu",
        "metrics=target_fid",
        "metrics.num_samples=8",
        "metrics.batch_size=4",
        f"weights.inception={inception}",
        f"paths.cache_dir={tmp_path / 'cache'}",
    ]
    first = evaluate(compose_train(tmp_path / "e1", args, config_name="evaluate"))
    counts = first["provenance"]["samples"]["target_fid"]
    names = ["night", "has_water", "has_mountains", "has_red_object", "has_large_object"]
    for name in [*names, "has_circle"]:  # every real image is in one of the two domains
        assert counts[name]["real"] + counts[f"not_{name}"]["real"] == 8
        assert counts[name]["fake"] + counts[f"not_{name}"]["fake"] == 8  # one target each
    scored = [k for k in first["metrics"] if k.startswith("target_fid/")]
    assert scored and first["metrics"]["target_fid_mean"] == pytest.approx(
        sum(first["metrics"][k] for k in scored) / len(scored)
    )
    again = evaluate(compose_train(tmp_path / "e2", args, config_name="evaluate"))
    assert again["metrics"] == pytest.approx(
        first["metrics"]
    )  # reference and its attributes cached


def test_task_metrics_need_a_task_that_gives_their_view(make_cfg) -> None:
    from ganzoo.callbacks.metrics import check_views

    spade = build_task(make_cfg("model=spade", "debug=smoke"))
    with pytest.raises(ConfigError, match="'translations' view that SpadeTask does not give"):
        check_views({"attributes"}, spade)
    stargan = build_task(make_cfg(*SMOKE))
    check_views({"attributes", "target_fid", "fid"}, stargan)  # fine
    with pytest.raises(ConfigError, match="its own metrics: attributes, target_fid"):
        check_views({"rprecision"}, stargan)
    with pytest.raises(ConfigError, match="needs a checkpoint"):
        check_views({"target_fid"}, None)


# ----- joint training: alternating CelebA and RaFD batches ----------------------------------
def test_grouped_stream_gives_whole_batches_of_each_group_in_turn() -> None:
    from ganzoo.data.datamodule import GroupedStreamSampler

    def batches(rank: int = 0, world: int = 1, start: int = 0) -> list[list[int]]:
        sampler = GroupedStreamSampler((10, 3), 2, 24, seed=4, rank=rank, world_size=world)
        sampler.start = start
        items = list(sampler)
        return [items[i : i + 2] for i in range(0, len(items), 2)]

    run = batches()
    for b, items in enumerate(run):  # group 0 = items 0..9 (CelebA), group 1 = 10..12 (RaFD)
        assert all((i >= 10) == (b % 2 == 1) for i in items), (b, items)
    first_pass = [i for items in run[0:10:2] for i in items]  # 5 batches of group 0
    assert sorted(first_pass) == list(range(10))  # one shuffled pass over the group
    in_order = GroupedStreamSampler((10, 3), 2, 24, seed=4, shuffle=False)
    assert list(in_order)[:8] == [0, 1, 10, 11, 2, 3, 12, 10]  # the stream without shuffling
    assert [i for items in run for i in items] != list(in_order)
    assert batches(start=8) == run[4:]  # resume after 4 batches: the same stream
    ranks = [batches(r, 2) for r in (0, 1)]
    for b in range(len(run)):  # every rank in the same group at the same batch
        assert all((i >= 10) == (b % 2 == 1) for r in ranks for i in r[b])


def test_joint_training_alternates_datasets_and_counts_iterations_in_pairs(
    make_cfg, tmp_path: Path
) -> None:
    from tests.test_datasets import make_celeba, make_rafd

    make_celeba(tmp_path / "data" / "celeba")
    make_rafd(tmp_path / "data" / "RaFD")  # classes angry, happy, neutral
    run = tmp_path / "run"
    cfg = make_cfg(
        *SMOKE,
        "data=celeba_rafd",
        f"data.root={tmp_path / 'data'}",
        "data.resolution=16",
        "data.num_attributes=8",
        "data.dataset.partition=eval_partition",
        "data.dataset.celeba_crop_size=8",
        "data.dataset.rafd_crop_size=12",
        "data.dataset.cache_dir=null",
        "model.c2_dim=3",
        f"model.attribute_names=[{','.join(CELEBA + ['angry', 'happy', 'neutral'])}]",
        "model.n_critic=2",
        "steps=8",
        run_dir=run,
    )
    dm = build_datamodule(cfg)
    assert dm.alternate_groups and dm.batches_per_cycle == 2
    masks = [b.domain_mask for _, b in zip(range(4), dm.train_dataloader(), strict=False)]
    assert [m.argmax(1).tolist() for m in masks] == [[0, 0], [1, 1], [0, 0], [1, 1]]
    train(cfg)
    with (run / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    g_losses = [r["loss/G/total"] for r in rows]  # the last value is repeated until a G step
    g_steps = [
        int(float(r["iteration"]))
        for k, r in enumerate(rows)
        if g_losses[k] and (k == 0 or g_losses[k] != g_losses[k - 1])
    ]
    assert g_steps == [3, 4, 7, 8]  # after batches 2, 3, 6, 7: both batches of iterations 1, 3
    task = build_task(cfg)
    task.batches_per_iteration = 2
    assert [p.offset for p in task.phases() if p.name == "G"] == [2, 3]


def test_lr_schedule_counts_iterations_not_batches_when_datasets_alternate(make_cfg) -> None:
    task = build_task(make_cfg(*SMOKE, "steps=4000", "model.lr_update_step=100"))
    assert isinstance(task, StarGANTask)
    batches = [1999, 2000, 2200, 3001, 4000]
    assert [task._lr_factor(b) for b in batches] == pytest.approx(
        [lr_factor(b, 2000, 2000, 100, "code") for b in batches]
    )
    task.batches_per_iteration = 2  # 4000 batches = 2000 iterations, decay after 1000
    assert [task._lr_factor(b) for b in batches] == pytest.approx(
        [lr_factor(b // 2, 1000, 1000, 100, "code") for b in batches]
    )
    assert task._lr_factor(2200) < task._lr_factor(2000) == 1.0


# ----- sampling -----------------------------------------------------------------------------
def test_translate_action_writes_the_grid(make_cfg, tmp_path: Path) -> None:
    from ganzoo.sample import main_fn as sample_main

    run = tmp_path / "run"
    train(make_cfg(*SMOKE, "steps=2", run_dir=run))
    files = []
    for i, size in enumerate([(40, 30), (32, 32)]):
        rgb = (np.random.default_rng(i).random((size[1], size[0], 3)) * 255).astype(np.uint8)
        files.append(tmp_path / f"face{i}.png")
        Image.fromarray(rgb).save(files[-1])
    cfg = compose_train(
        tmp_path / "s",
        [
            f"ckpt={run}/checkpoints/last.ckpt",
            "action=translate",
            f"images=[{files[0]},{files[1]}]",
            "targets=[night,has_water]",
            f"output={tmp_path / 'out'}",
        ],
        config_name="sample",
    )
    result = sample_main(cfg)
    grid = np.array(Image.open(result["grid"]))
    # a 12-pixel strip naming the columns (core.image.with_headers), then 2 rows; input | 2 targets
    assert grid.shape == (12 + 2 + 2 * (32 + 2), 2 + 3 * (32 + 2), 3)
    assert result["columns"] == ["input", "night", "has_water"]
    given = compose_train(
        tmp_path / "s1",
        [
            f"ckpt={run}/checkpoints/last.ckpt",
            "action=translate",
            f"images=[{files[0]}]",
            "source_attributes=[1,0,1,0,0,0]",
            f"output={tmp_path / 'out1'}",
        ],
        config_name="sample",
    )
    result = sample_main(given)
    assert result["source_labels"] == [[1, 0, 1, 0, 0, 0]]
    assert result["columns"] == ["input", *SyntheticScenes.attribute_names]
    bad = compose_train(
        tmp_path / "s2",
        [
            f"ckpt={run}/checkpoints/last.ckpt",
            "action=translate",
            f"images=[{files[0]}]",
            "targets=[Blond_Hair]",
        ],
        config_name="sample",
    )
    with pytest.raises(ConfigError, match="unknown target Blond_Hair; valid targets: night"):
        sample_main(bad)
