"""StyleGAN2: networks (ganzoo.models.stylegan2), their layers (ganzoo.nn equalized,
modulated_conv, resample, augment), the task's losses, ADA, EMA and truncation, the configs,
and learning on the synthetic scenes."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader

from ganzoo.cli.build import build_datamodule, build_task, train
from ganzoo.core.errors import ConfigError
from ganzoo.data.batch import Batch, collate
from ganzoo.info import describe
from ganzoo.models.stylegan2 import Discriminator, Generator, MappingNetwork
from ganzoo.nn.augment import AugmentPipe, ada_adjust, diff_augment
from ganzoo.nn.ema import ema_beta
from ganzoo.nn.equalized import EqualizedLinear, MinibatchStd
from ganzoo.nn.modulated_conv import modulated_conv2d
from ganzoo.nn.resample import conv2d_resample, downsample2d, setup_filter, upsample2d
from ganzoo.tasks.stylegan2 import StyleGAN2Task
from tests.conftest import REPO

OFFICIAL = json.loads((REPO / "reference" / "params.json").read_text())["params"]["stylegan2"]
# Counted here by instantiating NVlabs/stylegan2-ada-pytorch training/networks.py (commit
# d72cc7d0) on CPU, as params.json was: `--cfg=paper256` (channel_base 16384, mbstd group 8)
# at 256x256, unconditional and with c_dim 10.
PAPER256 = {"G": 24_767_458, "D": 24_001_089}
PAPER256_C10 = {"G": 25_035_234, "D": 26_370_112}
SYNTH = "model=stylegan2"
AUG_NAMES = [
    "xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac",
    "brightness", "contrast", "lumaflip", "hue", "saturation",
]  # fmt: skip


@pytest.fixture(autouse=True)
def one_thread(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """One intra-op thread: the 2 CPU cores of the test machines are shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    yield
    torch.set_num_threads(threads)


def tiny_task(**kw: Any) -> StyleGAN2Task:
    """A StyleGAN2Task at 16x16 with 16 channels, built without Hydra."""
    args: dict[str, Any] = {
        "generator": partial(Generator, 16, z_dim=8, w_dim=8, mapping_layers=2, channel_base=64,
                             channel_max=16),
        "discriminator": partial(Discriminator, 16, channel_base=64, channel_max=16,
                                 mbstd_group_size=2, mapping_layers=2),
        "optim": {"lr_g": 0.0025, "lr_d": 0.0025, "betas_g": [0.0, 0.99],
                  "betas_d": [0.0, 0.99]},
        "ema": {"half_life_kimg": 0.01, "rampup": None},
        "total_iterations": 10, "conditional": False, "num_classes": 12, "r1_gamma": 1.0,
        "r1_interval": 16, "pl_weight": 2.0, "pl_interval": 4, "pl_batch_shrink": 2,
        "pl_decay": 0.01, "style_mixing_prob": 0.9, "augment": "none",
        "augment_pipe": AugmentPipe, "augment_p": 0.0, "ada_target": 0.6, "ada_interval": 4,
        "ada_kimg": 500, "diffaugment_policy": "color,translation,cutout",
        "truncation_psi": 1.0, "truncation_cutoff": None, "sample_noise_mode": "const",
    }  # fmt: skip
    return StyleGAN2Task(**{**args, **kw})


def _fit(task: pl.LightningModule, batches: list[Batch]) -> None:
    samples = [{k: getattr(b, k)[i] for k in b.provided()} for b in batches for i in range(b.size)]
    trainer = pl.Trainer(
        max_epochs=1,
        limit_train_batches=len(batches),
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    trainer.fit(task, DataLoader(samples, batch_size=batches[0].size, collate_fn=collate))


def _count(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


# ----- parameter counts and shapes -----------------------------------------------------------
def test_config_f_on_ffhq_builds_the_official_1024_networks(make_cfg) -> None:
    info = describe(make_cfg(SYNTH, "data=ffhq"))
    ref = OFFICIAL["stylegan2_ffhq1024"]
    assert info["parameters"] == {"G": ref["G"], "D": ref["D"]}  # 30,370,060 / 29,012,513
    assert info["shapes"]["G"] == {"inputs": [[1, 512]], "output": [1, 3, 1024, 1024]}
    assert info["shapes"]["D"] == {"inputs": [[1, 3, 1024, 1024]], "output": [1, 1]}


def test_official_paper256_configuration_counts(make_cfg) -> None:
    cfg = make_cfg(
        SYNTH,
        "data=ffhq",
        "data.resolution=256",
        "model.generator.channel_base=16384",
        "model.discriminator.mbstd_group_size=8",
    )
    assert describe(cfg)["parameters"] == PAPER256
    with torch.device("meta"):
        g = Generator(256, c_dim=10, channel_base=16384)
        d = Discriminator(256, c_dim=10, channel_base=16384, mbstd_group_size=8)
    assert {"G": _count(g), "D": _count(d)} == PAPER256_C10
    assert _count(g.mapping) == 2_101_248 + 10 * 512 + 512 + 512 * 512  # + embed, wider fc0


def test_generator_and_discriminator_shapes_and_layer_count() -> None:
    g = Generator(32, z_dim=8, c_dim=3, w_dim=8, mapping_layers=2, channel_base=128, channel_max=16)
    d = Discriminator(32, c_dim=3, channel_base=128, channel_max=16, mbstd_group_size=2)
    assert g.num_ws == 2 * 5 - 2  # 2 log2(R) - 2 ws: 18 at 1024
    assert [g.synthesis.b4.const.shape[0], g.synthesis.b32.conv1.weight.shape[0]] == [16, 4]
    z, c = torch.randn(4, 8), F.one_hot(torch.tensor([0, 1, 2, 0]), 3).float()
    ws = g.mapping(z, c)
    assert ws.shape == (4, g.num_ws, 8) and torch.equal(ws[:, 0], ws[:, -1])  # broadcast
    img = g(z, c)
    assert img.shape == (4, 3, 32, 32)
    assert d(img, c).shape == (4, 1)
    with pytest.raises(AssertionError):
        d(torch.zeros(4, 3, 16, 16), c)


def test_mapping_normalises_z_and_uses_the_label_embedding() -> None:
    m = MappingNetwork(8, 5, 8, num_ws=3, num_layers=2).eval()
    z = torch.randn(2, 8)
    c0, c1 = F.one_hot(torch.tensor([0, 0]), 5).float(), F.one_hot(torch.tensor([1, 1]), 5).float()
    torch.testing.assert_close(m(z, c0), m(3 * z, c0))  # only the direction of z matters
    assert not torch.allclose(m(z, c0), m(z, c1))
    assert m.fc0.weight_gain == pytest.approx(0.01 / math.sqrt(16))  # lr multiplier 0.01


# ----- layers --------------------------------------------------------------------------------
def test_equalized_linear_scales_weights_at_run_time() -> None:
    torch.manual_seed(0)
    layer = EqualizedLinear(256, 64, lr_multiplier=0.1, bias_init=0.5)
    assert layer.weight.std().item() == pytest.approx(10.0, rel=0.05)  # N(0, 1) / lr_mult
    x = torch.randn(3, 256)
    expected = x @ (layer.weight * 0.1 / 16).t() + 0.5 * 0.1
    torch.testing.assert_close(layer(x), expected)


def test_demodulation_gives_unit_variance_outputs() -> None:
    """Sec. 2.2: with i.i.d. unit-variance inputs, demodulated outputs have unit variance."""
    torch.manual_seed(0)
    x = torch.randn(4, 64, 16, 16)
    weight = torch.randn(32, 64, 3, 3) * 5.0
    styles = torch.rand(4, 64) * 3 + 0.1
    y = modulated_conv2d(x, weight, styles, padding=1)
    std = y[:, :, 1:-1, 1:-1].std(dim=(2, 3))  # (N, C_out), away from the zero padding
    assert std.mean().item() == pytest.approx(1.0, abs=0.05)
    assert (std - 1).abs().max().item() < 0.2
    plain = modulated_conv2d(x, weight, styles, padding=1, demodulate=False)
    assert plain.std().item() > 10  # without demodulation the scale follows weights and styles
    for up in (1, 2):  # the fused grouped conv equals the per-sample scaling of activations
        f = setup_filter([1, 3, 3, 1])
        a = modulated_conv2d(x, weight, styles, up=up, padding=1, resample_filter=f)
        b = modulated_conv2d(x, weight, styles, up=up, padding=1, resample_filter=f,
                             fused_modconv=False)  # fmt: skip
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_fir_resampling_keeps_constants_and_commutes_with_convolution() -> None:
    f = setup_filter([1, 3, 3, 1])
    assert f.shape == (4, 4) and f.sum().item() == pytest.approx(1.0)
    ones = torch.ones(1, 2, 8, 8)
    assert torch.allclose(upsample2d(ones, f)[..., 2:-2, 2:-2], torch.ones(1))
    assert torch.allclose(downsample2d(ones, f)[..., 1:-1, 1:-1], torch.ones(1))
    torch.manual_seed(0)
    x, w = torch.randn(2, 4, 8, 8), torch.randn(5, 4, 3, 3)
    up = conv2d_resample(x, w, f, up=2, padding=1)  # transposed conv, then the FIR filter
    ref = F.conv2d(upsample2d(x, f), w, padding=1)  # FIR upsampling, then the conv
    assert up.shape == (2, 5, 16, 16)
    torch.testing.assert_close(up[..., 2:-2, 2:-2], ref[..., 2:-2, 2:-2], rtol=1e-4, atol=1e-4)
    skip = conv2d_resample(x, w[:, :, :1, :1], f, down=2)
    torch.testing.assert_close(skip, F.conv2d(downsample2d(x, f), w[:, :, :1, :1]))
    # [1, 3, 3, 1] downsampling of a 1D ramp along x: interior values are the pair averages
    ramp = torch.arange(8.0).view(1, 1, 1, 8).expand(1, 1, 8, 8)
    assert downsample2d(ramp, f)[0, 0, 2, 1:3].tolist() == pytest.approx([2.5, 4.5])


def test_minibatch_std_by_hand() -> None:
    torch.manual_seed(0)
    x = torch.randn(4, 6, 3, 3)
    y = MinibatchStd(group_size=2)(x)
    assert y.shape == (4, 7, 3, 3)
    for n in range(4):  # groups are samples {n, n + N/G}: (0, 2) and (1, 3)
        pair = x[[n % 2, n % 2 + 2]]
        std = (pair.var(dim=0, unbiased=False) + 1e-8).sqrt().mean()
        assert torch.allclose(y[n, 6], std.expand(3, 3))
    torch.testing.assert_close(y[:, :6], x)


# ----- augmentation ---------------------------------------------------------------------------
def test_ada_pipeline_groups_and_identity_at_p0() -> None:
    torch.manual_seed(0)
    x = torch.rand(16, 3, 16, 16) * 2 - 1
    pipe = AugmentPipe()
    assert torch.equal(pipe(x, 0.0), x)
    y = pipe(x.requires_grad_(True), 1.0)
    assert y.shape == x.shape and (y - x).abs().mean() > 0.2
    (g,) = torch.autograd.grad(y.square().sum(), x)  # differentiable, as D's input must be
    assert g.abs().sum() > 0
    only = {name: 0.0 for name in AUG_NAMES}
    smooth = F.interpolate(x[:, :, :4, :4].detach(), size=16, mode="bilinear")
    flip = AugmentPipe(**{**only, "xflip": 1.0})(smooth, 1.0)
    errors = torch.stack([(flip - c).abs().amax(dim=(1, 2, 3)) for c in (smooth, smooth.flip(-1))])
    # each image kept or mirrored (blits go through the sym6 resampling, as in the official)
    assert errors.min(0).values.max() < 0.05
    assert set(errors.argmin(0).tolist()) == {0, 1}
    colour = AugmentPipe(**{**only, "brightness": 1.0})(x.detach(), 1.0)
    shift = (colour - x).mean(dim=(1, 2, 3), keepdim=True)
    torch.testing.assert_close(colour, x + shift)  # brightness adds one offset per image
    x.requires_grad_(False)


def test_ada_adjustment_follows_the_overfitting_heuristic() -> None:
    step = 64 * 4 / (500 * 1000)  # batch x interval / ada_kimg images: one move
    assert ada_adjust(0.1, 0.9, 0.6, 256, 500) == pytest.approx(0.1 + step)
    assert ada_adjust(0.1, 0.2, 0.6, 256, 500) == pytest.approx(0.1 - step)
    assert ada_adjust(0.0, 0.2, 0.6, 256, 500) == 0.0  # floored at 0
    task = tiny_task(augment="ada", augment_p=0.25, ada_kimg=0.1)
    task.record_real_signs(torch.tensor([[2.0], [1.0], [0.5], [-1.0]]))  # r_t = 0.5 < 0.6
    assert task.ada_step(4) == pytest.approx(0.5)
    assert float(task.augment_p) == pytest.approx(0.25 - 16 / 100)
    task.record_real_signs(torch.ones(8, 1))  # D is confident on all reals: overfitting
    task.ada_step(4)
    assert float(task.augment_p) == pytest.approx(0.25)
    assert float(task.ada_sign_count) == 0  # statistics restart after each adjustment
    assert task.ada_step(4) is None
    state = task.state_dict()
    fresh = tiny_task(augment="ada")
    fresh.load_state_dict(state)
    assert float(fresh.augment_p) == pytest.approx(0.25)  # p is part of the checkpoint


def test_diffaugment_policies() -> None:
    torch.manual_seed(0)
    x = torch.rand(8, 3, 16, 16) + 0.5  # strictly positive, so zeros mark translation / cutout
    cut = diff_augment(x, "cutout")
    assert ((cut == 0).all(dim=1).sum(dim=(1, 2)) <= 64).all()  # at most an 8 x 8 square
    assert ((cut == 0).all(dim=1).sum(dim=(1, 2)) >= 16).all()
    assert torch.equal(cut[cut != 0], x[cut != 0])
    moved = diff_augment(x, "translation")
    assert moved.shape == x.shape and not torch.equal(moved, x)
    colour = diff_augment(x, "color")
    assert colour.shape == x.shape and (colour - x).abs().mean() > 0.05
    assert torch.equal(diff_augment(x, ""), x)
    with pytest.raises(ConfigError, match="unknown DiffAugment policy 'blur'; valid: color"):
        diff_augment(x, "color,blur")
    with pytest.raises(ConfigError, match="unknown DiffAugment policy"):
        tiny_task(diffaugment_policy="zoom")
    with pytest.raises(ConfigError, match="unknown model.augment=adaptive; valid: none, ada"):
        tiny_task(augment="adaptive")


# ----- losses against hand computations ---------------------------------------------------------
class QuadraticD(nn.Module):
    """D(x) = (v . x)^2 / 2: grad_x D = (v . x) v, so ||grad||^2 = (v . x)^2 ||v||^2."""

    c_dim = 0

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.v = nn.Parameter(torch.randn(shape))

    def forward(self, img: Tensor) -> Tensor:
        return ((img * self.v).sum(dim=(1, 2, 3)) ** 2 / 2).unsqueeze(1)


def test_r1_penalty_matches_a_hand_computation() -> None:
    task = tiny_task(r1_gamma=10.0)
    task.discriminator = QuadraticD((3, 16, 16))
    real = torch.randn(4, 3, 16, 16)
    r1 = task.r1_loss(Batch(image=real))["r1"]
    v = task.discriminator.v.detach()
    dot = (real * v).sum(dim=(1, 2, 3))
    expected = 10.0 / 2 * (dot.square() * v.square().sum()).mean()
    torch.testing.assert_close(r1, expected)
    (grad,) = torch.autograd.grad(r1, task.discriminator.v)  # differentiable w.r.t. D
    assert grad.abs().sum() > 0


class LinearMapping(nn.Module):
    """ws = z broadcast to num_ws copies, times a gain of 1 (a stand-in for the mapping)."""

    def __init__(self, num_ws: int) -> None:
        super().__init__()
        self.num_ws = num_ws
        self.gain = nn.Parameter(torch.ones([]))  # 1: makes ws depend on parameters

    def forward(self, z: Tensor, c: Tensor | None, skip_w_avg_update: bool = False) -> Tensor:
        return z.unsqueeze(1).repeat(1, self.num_ws, 1) * self.gain


class LinearSynthesis(nn.Module):
    """img[n] = sum_k A[k] ws[n, k] (+ 0 * b): the Jacobian w.r.t. ws is A."""

    def __init__(self, num_ws: int, w_dim: int) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.randn(num_ws, w_dim, 3, 4, 4))

    def forward(self, ws: Tensor) -> Tensor:
        return torch.einsum("nkd,kdchw->nchw", ws, self.a)


class ToyGenerator(nn.Module):
    z_dim, c_dim, num_ws = 5, 0, 3

    def __init__(self, c_dim: int = 0) -> None:
        super().__init__()
        self.mapping = LinearMapping(self.num_ws)
        self.synthesis = LinearSynthesis(self.num_ws, self.z_dim)


def test_path_length_penalty_matches_a_hand_computation() -> None:
    """||J_w^T y|| for y ~ N(0, I) / sqrt(HW), J = A; penalty (len - a)^2 x weight, a the
    running mean of the lengths (Sec. 3.2; loss.py:77-92), on batch / 2 samples."""
    task = tiny_task(generator=ToyGenerator, style_mixing_prob=0.0, pl_weight=2.0, pl_decay=0.1)
    a = task.generator.synthesis.a.detach()
    batch = Batch(image=torch.zeros(6, 3, 4, 4))
    torch.manual_seed(7)
    pl = task.path_length_loss(batch)["pl"]
    torch.manual_seed(7)
    torch.randn(3, 5)  # the task's z for batch 6 // pl_batch_shrink 2
    y = torch.randn(3, 3, 4, 4) / 4  # 1 / sqrt(H W)
    grads = torch.einsum("kdchw,nchw->nkd", a, y)  # J^T y per sample and w
    lengths = grads.square().sum(2).mean(1).sqrt()
    mean = 0.1 * lengths.mean()  # lerp(0, mean length, decay)
    torch.testing.assert_close(pl, 2.0 * (lengths - mean).square().mean())
    torch.testing.assert_close(task.pl_mean, mean)
    (grad,) = torch.autograd.grad(pl, task.generator.synthesis.a)
    assert grad.abs().sum() > 0


def test_phases_are_the_official_lazy_schedule() -> None:
    task = tiny_task()
    assert [(p.name, p.every, p.lazy) for p in task.phases()] == [
        ("G", 1, False), ("G_reg", 4, True), ("D", 1, False), ("D_reg", 16, True)
    ]  # fmt: skip
    opt_g, opt_d = task.configure_optimizers()
    assert opt_g.param_groups[0]["lr"] == pytest.approx(0.0025 * 4 / 5)
    assert opt_d.param_groups[0]["betas"][1] == pytest.approx(0.99 ** (16 / 17))
    assert [p.name for p in tiny_task(pl_weight=0.0, r1_gamma=0.0).phases()] == ["G", "D"]


def test_style_mixing_switches_w_after_a_crossover() -> None:
    torch.manual_seed(0)
    task = tiny_task(style_mixing_prob=1.0)
    z = torch.randn(64, 8)
    ws = task.mapping_with_mixing(z, None)
    plain = task.g.mapping(z, None, skip_w_avg_update=True)
    same = (ws == plain).all(dim=(0, 2))  # (num_ws,): layers that kept the first w
    assert same[0] and not same.all()
    k = int(same.int().argmin())
    assert same[:k].all() and not same[k:].any()  # one crossover point for the batch


# ----- EMA, truncation, sampling hooks --------------------------------------------------------
def test_ema_follows_g_with_the_half_life_in_images() -> None:
    assert ema_beta(0.999, 10.0, None, 32, 0) == pytest.approx(0.5 ** (32 / 10_000))  # config F
    task = tiny_task(ema={"half_life_kimg": 0.004, "rampup": None})  # beta = 0.5 ** (4 / 4)
    before = [p.detach().clone() for p in task.generator.parameters()]
    _fit(task, [Batch(image=torch.rand(4, 3, 16, 16) * 2 - 1)])
    for p0, p, p_ema in zip(
        before, task.generator.parameters(), task.generator_ema.parameters(), strict=True
    ):
        torch.testing.assert_close(p_ema, 0.5 * p0 + 0.5 * p.detach())
    after = list(task.generator.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
    torch.testing.assert_close(task.generator_ema.mapping.w_avg, task.generator.mapping.w_avg)


def test_truncation_psi_0_gives_the_mean_w_and_cutoff_limits_it() -> None:
    task = tiny_task()
    task.generator_ema.mapping.w_avg.normal_()
    w_avg = task.g_ema.mapping.w_avg
    z = task.draw_latents([0, 1, 2], None)
    ws = task.ema_ws(z, None, 0.0)
    torch.testing.assert_close(ws, w_avg.expand_as(ws))
    task.truncation_cutoff = 2
    cut = task.ema_ws(z, None, 0.0)
    torch.testing.assert_close(cut[:, :2], w_avg.expand(3, 2, -1))
    assert not torch.allclose(cut[:, 2:], w_avg.expand(3, task.g.num_ws - 2, -1))
    task.truncation_cutoff = None
    images = task.generate(z, None, 0.0)  # const noise: every seed gives the mean image
    torch.testing.assert_close(images[0], images[2])
    assert not torch.allclose(task.generate(z, None, 1.0)[0], images[0])


def test_sampling_hooks_are_deterministic_and_check_classes() -> None:
    task = tiny_task()
    z = task.draw_latents([3, 5], None)
    torch.testing.assert_close(z, task.draw_latents([3, 5], 0.5))
    torch.testing.assert_close(z[1], task.draw_latents([5], None)[0])
    assert z.shape == (2, 8) and not torch.allclose(z[0], z[1])
    torch.testing.assert_close(task.generate(z, None, None), task.generate(z, None, None))
    with pytest.raises(ConfigError, match="classes are for a class-conditional model"):
        task.generate(z, torch.tensor([0, 1]), None)
    with pytest.raises(ConfigError, match="seeds must be in"):
        task.draw_latents([-1], None)
    cond = tiny_task(conditional=True, num_classes=4)
    with pytest.raises(ConfigError, match=r"give classes in \[0, 4\)"):
        cond.generate(z, None, None)
    with pytest.raises(ConfigError, match=r"classes must be in \[0, 4\)"):
        cond.generate(z, torch.tensor([0, 4]), None)
    a = cond.generate(z, torch.tensor([0, 0]), None)
    b = cond.generate(z, torch.tensor([1, 1]), None)
    assert a.shape == (2, 3, 16, 16) and not torch.allclose(a, b)
    with pytest.raises(ConfigError, match="needs a dataset with class_id"):
        tiny_task(conditional=True, num_classes=None)


def test_style_mix_takes_the_chosen_layers_from_the_columns() -> None:
    task = tiny_task()
    rows, cols = task.draw_latents([0, 1], None), task.draw_latents([2, 3, 4], None)
    num_ws = task.g.num_ws
    every = task.style_mix(rows, cols, list(range(num_ws)), None)
    assert every.shape == (6, 3, 16, 16)
    torch.testing.assert_close(every[4], task.generate(cols, None, None)[1])  # row 1, column 1
    coarse = task.style_mix(rows, cols, [0, 1], None)
    assert not torch.allclose(coarse[4], every[4]) and not torch.allclose(coarse[4], every[3])
    with pytest.raises(ConfigError, match=r"mixing layers must be in \[0, 6\)"):
        task.style_mix(rows, cols, [0, num_ws], None)


# ----- configs, checkpoints, learning ---------------------------------------------------------
class CrashAt(pl.Callback):
    """Raises after iteration n (after the checkpoint callback has written it)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: Any, *args: Any) -> None:
        if int(pl_module.iteration) == self.n:
            raise RuntimeError("simulated crash")


def test_conditional_smoke_run_and_ada_p_survive_a_resume(
    make_cfg, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ADA with target -1.5: every adjustment raises p by batch x interval / (kimg x 1000)."""
    import ganzoo.cli.build as build

    run = tmp_path / "run"
    common = [
        "debug=smoke", SYNTH, "model.conditional=true", "logger=csv", "callbacks.samples=null",
        "trainer.enable_progress_bar=false", "model.augment_p=0.5", "model.ada_target=-1.5",
        "model.ada_interval=2", "model.ada_kimg=0.1",
    ]  # fmt: skip
    original = build.build_callbacks
    monkeypatch.setattr(build, "build_callbacks", lambda c: original(c) + [CrashAt(2)])
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(make_cfg(*common, run_dir=run))
    monkeypatch.undo()
    first = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    step = 2 * 2 / 100
    assert int(first["state_dict"]["iteration"]) == 2
    assert float(first["state_dict"]["augment_p"]) == pytest.approx(0.5 + step)
    assert first["state_dict"]["generator.mapping.embed.weight"].shape == (16, 12)
    train(make_cfg(*common, run_dir=run))  # resumes from last.ckpt
    second = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert int(second["state_dict"]["iteration"]) == 4
    assert float(second["state_dict"]["augment_p"]) == pytest.approx(0.5 + 2 * step)


def test_experiment_and_bad_configs(make_cfg) -> None:
    cfg = make_cfg("experiment=stylegan2_ffhq")
    assert (cfg.data.resolution, cfg.model.r1_gamma, cfg.data.dataset.mirror) == (1024, 10.0, True)
    assert cfg.data.batch_size * cfg.trainer.devices == 32
    with pytest.raises(ConfigError, match="needs a dataset with class_id"):
        build_task(make_cfg(SYNTH, "data=ffhq", "model.conditional=true"))
    with pytest.raises(ConfigError, match="unknown model.sample_noise_mode=fixed"):
        build_task(make_cfg(SYNTH, "debug=smoke", "model.sample_noise_mode=fixed"))


def _layout(images: Tensor) -> Tensor:
    """Per-image features: the mean colour of each cell of a 4 x 4 grid, (N, 48)."""
    return F.adaptive_avg_pool2d(images, 4).flatten(1).double()


def frechet(a: Tensor, b: Tensor) -> float:
    """Frechet distance between Gaussian fits of two feature sets (N, D)."""
    ca, cb = torch.cov(a.T), torch.cov(b.T)
    root = torch.linalg.eigvals(ca @ cb).real.clamp(min=0).sqrt().sum()
    return float((a.mean(0) - b.mean(0)).square().sum() + ca.trace() + cb.trace() - 2 * root)


def layout_agreement(a: Tensor, b: Tensor) -> float:
    """Cosine similarity of the mean colour layouts (N, 48) of two image sets, each channel
    centred over the 16 cells: do they agree where it is brighter, bluer or greener? Invariant
    to the overall colour and scale, so a generator cannot score by shrinking its outputs."""
    ma, mb = a.mean(0).view(3, 16), b.mean(0).view(3, 16)
    ma, mb = ma - ma.mean(1, keepdim=True), mb - mb.mean(1, keepdim=True)
    return float(F.cosine_similarity(ma.flatten(), mb.flatten(), dim=0))


def test_stylegan2_learns_the_colour_layout_of_the_scenes(make_cfg, tmp_path: Path) -> None:
    """256 EMA samples against 256 real scenes, before and after training: the Frechet
    distance of their 4 x 4 colour layouts, and the agreement of the mean layouts (sky above,
    ground below: the scenes' structure).

    The model_data preset (32x32, mapping 2, lr 0.0025, 'auto' R1 gamma and EMA ramp-up,
    DiffAugment) at a quarter of its width, batch 8, 100 iterations. An untrained generator's
    colours are spread far too wide and its mean layout is unrelated to the scenes' (agreement
    near 0). The trained one must also beat the best constant image (the real mean image, whose
    distance is the trace of the real covariance): it has learned variation, not only a mean.
    """
    cfg = make_cfg(
        SYNTH, "logger=csv", "trainer.enable_progress_bar=false", "callbacks.samples=null",
        "data.batch_size=8", "data.num_workers=0", "steps=100",
        "callbacks.checkpoint.every_n_iterations=100", "model.generator.channel_base=256",
        "model.generator.channel_max=64", run_dir=tmp_path / "run",
    )  # fmt: skip
    real = _layout(build_datamodule(cfg).fixed_batch(256).image)
    seeds = list(range(256))

    def scores(task: StyleGAN2Task) -> tuple[float, float]:
        fake = _layout(task.generate(task.draw_latents(seeds, None), None, None))
        return frechet(fake, real), layout_agreement(fake, real)

    torch.manual_seed(0)
    before = scores(build_task(cfg))
    train(cfg)
    trained = build_task(cfg)
    state = torch.load(tmp_path / "run/checkpoints/last.ckpt", weights_only=True)
    trained.load_state_dict(state["state_dict"])
    after = scores(trained)
    print(f"colour-layout Frechet distance, agreement: untrained {before}, trained {after}")
    constant = float(torch.cov(real.T).trace())
    assert after[0] < 0.3 * before[0] and after[0] < constant, (before, after, constant)
    assert after[1] > 0.6 and after[1] > before[1] + 0.3, (before, after)
