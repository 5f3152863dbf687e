"""Losses against hand computations: adversarial kinds, feature matching, KL, VGG perceptual."""

from __future__ import annotations

import math

import pytest
import torch
import torchvision

from ganzoo.core.errors import ConfigError, WeightsError
from ganzoo.losses.adversarial import ADVERSARIAL_LOSSES, d_loss, g_loss
from ganzoo.losses.feature_matching import feature_matching, pix2pixhd_weight
from ganzoo.losses.kl import kl_divergence
from ganzoo.losses.perceptual import VGG19Features, VGGLoss

REAL = [0.5, -2.0, 1.5, 1.0]
FAKE = [-1.5, 0.2, -0.5, 2.0]


def _softplus(v: float) -> float:
    return math.log1p(math.exp(v))


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


# Expected (D real term, D fake term, G) per kind, element by element in plain Python.
EXPECTED = {
    "hinge": (
        _mean([max(0.0, 1 - r) for r in REAL]),
        _mean([max(0.0, 1 + f) for f in FAKE]),
        -_mean(FAKE),
    ),
    "lsgan": (
        _mean([(r - 1) ** 2 for r in REAL]),
        _mean([f**2 for f in FAKE]),
        _mean([(f - 1) ** 2 for f in FAKE]),
    ),
    "nonsaturating": (
        _mean([_softplus(-r) for r in REAL]),
        _mean([_softplus(f) for f in FAKE]),
        _mean([_softplus(-f) for f in FAKE]),
    ),
    "vanilla": (  # -log sigmoid(r), -log(1 - sigmoid(f)), -log sigmoid(f)
        _mean([-math.log(1 / (1 + math.exp(-r))) for r in REAL]),
        _mean([-math.log(1 - 1 / (1 + math.exp(-f))) for f in FAKE]),
        _mean([-math.log(1 / (1 + math.exp(-f))) for f in FAKE]),
    ),
    "wgan": (-_mean(REAL), _mean(FAKE), -_mean(FAKE)),
}


def _logits(values: list[float]) -> torch.Tensor:
    return torch.tensor(values).view(2, 1, 1, 2)  # (N, 1, h, w) patch logits


def test_every_registered_kind_has_a_hand_computation() -> None:
    assert set(ADVERSARIAL_LOSSES) == set(EXPECTED)


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_adversarial_single_scale_matches_hand_computation(kind: str) -> None:
    real_term, fake_term, g_term = EXPECTED[kind]
    terms = d_loss(kind, _logits(REAL), _logits(FAKE), "mean")
    assert terms["real"].item() == pytest.approx(real_term, rel=1e-6)
    assert terms["fake"].item() == pytest.approx(fake_term, rel=1e-6)
    assert g_loss(kind, _logits(FAKE), "mean").item() == pytest.approx(g_term, rel=1e-6)


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_multiscale_mean_is_spade_and_sum_is_pix2pixhd(kind: str) -> None:
    scale0 = _logits(FAKE)
    scale1 = torch.tensor([0.3, -0.7]).view(2, 1, 1, 1)  # a coarser scale: other shape
    a = g_loss(kind, scale0, "mean")
    b = g_loss(kind, scale1, "mean")
    assert g_loss(kind, [scale0, scale1], "sum").item() == pytest.approx((a + b).item())
    assert g_loss(kind, [scale0, scale1], "mean").item() == pytest.approx(((a + b) / 2).item())
    real0, real1 = _logits(REAL), torch.tensor([1.2, 0.4]).view(2, 1, 1, 1)
    summed = d_loss(kind, [real0, real1], [scale0, scale1], "sum")
    averaged = d_loss(kind, [real0, real1], [scale0, scale1], "mean")
    single = [d_loss(kind, r, f, "mean") for r, f in ((real0, scale0), (real1, scale1))]
    for side in ("real", "fake"):
        total = single[0][side] + single[1][side]
        assert summed[side].item() == pytest.approx(total.item())
        assert averaged[side].item() == pytest.approx(total.item() / 2)


def test_vanilla_and_nonsaturating_agree() -> None:
    real, fake = torch.randn(4, 1, 3, 3), torch.randn(4, 1, 3, 3)
    a, b = d_loss("vanilla", real, fake, "mean"), d_loss("nonsaturating", real, fake, "mean")
    torch.testing.assert_close(a["real"], b["real"])
    torch.testing.assert_close(a["fake"], b["fake"])
    torch.testing.assert_close(
        g_loss("vanilla", fake, "mean"), g_loss("nonsaturating", fake, "mean")
    )


def test_unknown_kind_lists_valid_names() -> None:
    with pytest.raises(ConfigError) as info:
        g_loss("hinj", _logits(FAKE), "mean")
    for name in ADVERSARIAL_LOSSES:
        assert name in str(info.value)
    with pytest.raises(ConfigError, match="mean, sum"):
        g_loss("hinge", _logits(FAKE), "avg")  # type: ignore[arg-type]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_losses_are_float32_for_half_logits(dtype: torch.dtype) -> None:
    fake = _logits(FAKE).to(dtype).requires_grad_()
    loss = g_loss("hinge", fake, "mean")
    assert loss.dtype == torch.float32
    loss.backward()
    assert fake.grad is not None and fake.grad.dtype == dtype
    assert d_loss("lsgan", _logits(REAL).to(dtype), fake, "sum")["fake"].dtype == torch.float32


# ----- feature matching --------------------------------------------------------------------
def _features(values: list[list[float]], grad: bool = False) -> list[list[torch.Tensor]]:
    """Per scale, constant feature maps of the given values (the last is the prediction)."""
    return [[torch.full((2, 3, 4, 4), v, requires_grad=grad) for v in scale] for scale in values]


def test_feature_matching_spade_and_pix2pixhd_weights() -> None:
    # two scales, three intermediate layers + the prediction (n_layers_D 2 would give 4 outputs)
    fake = _features([[1.0, 2.0, -1.0, 100.0], [0.5, 0.0, 3.0, -100.0]], grad=True)
    real = _features([[0.0, 2.5, 1.0, -50.0], [0.5, -1.0, 1.0, 50.0]], grad=True)
    l1_sum = (1.0 + 0.5 + 2.0) + (0.0 + 1.0 + 2.0)  # predictions (+-100, +-50) excluded
    num_d, n_layers_d = 2, 2
    spade = feature_matching(fake, real, 1.0 / num_d)
    assert spade.item() == pytest.approx(l1_sum / num_d)
    weight = pix2pixhd_weight(num_d, n_layers_d)
    assert weight == pytest.approx(0.5 * 4 / 3)
    assert feature_matching(fake, real, weight).item() == pytest.approx(l1_sum * 0.5 * 4 / 3)
    spade.backward()
    assert fake[0][0].grad is not None
    assert all(r.grad is None for scale in real for r in scale)  # real side detached


def test_feature_matching_rejects_mismatched_structure() -> None:
    with pytest.raises(ValueError, match="scale 0"):
        feature_matching(_features([[1.0, 2.0]]), _features([[1.0, 2.0, 3.0]]), 1.0)


# ----- KL ----------------------------------------------------------------------------------
def test_kl_matches_hand_computation_and_is_a_sum() -> None:
    mu = torch.tensor([[1.0, -2.0], [0.0, 0.0]])
    logvar = torch.tensor([[0.0, math.log(2.0)], [0.0, 0.0]])
    # -0.5 * [(1 + 0 - 1 - 1) + (1 + ln 2 - 4 - 2) + 0 + 0] = 3 - ln(2) / 2
    assert kl_divergence(mu, logvar).item() == pytest.approx(3 - math.log(2.0) / 2)
    assert kl_divergence(torch.zeros(3, 8), torch.zeros(3, 8)).item() == 0.0


# ----- VGG perceptual ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def torchvision_vgg19() -> torchvision.models.VGG:
    torch.manual_seed(0)
    return torchvision.models.vgg19(weights=None).eval()  # random weights, nothing downloaded


def test_vgg19_features_match_torchvision(torchvision_vgg19: torchvision.models.VGG) -> None:
    features = VGG19Features.from_state_dict(torchvision_vgg19.state_dict())  # + classifier keys
    x = torch.randn(2, 3, 32, 32)
    expected, h = [], x
    with torch.no_grad():
        for i, layer in enumerate(torchvision_vgg19.features[:30]):
            h = layer(h)
            if i in (1, 6, 11, 20, 29):  # relu1_1 .. relu5_1
                expected.append(h.clone())
        outputs = features(x)
    assert [o.shape[1] for o in outputs] == [64, 128, 256, 512, 512]
    for out, ref in zip(outputs, expected, strict=True):
        torch.testing.assert_close(out, ref)


def test_vgg19_features_reject_other_state_dicts() -> None:
    with pytest.raises(WeightsError, match="unexpected keys"):
        VGG19Features.from_state_dict({"conv.weight": torch.zeros(1)})
    with pytest.raises(WeightsError, match="missing"):
        VGG19Features.from_state_dict({"features.0.weight": torch.zeros(64, 3, 3, 3)})


def test_vgg_loss_zero_positive_and_gradients() -> None:
    torch.manual_seed(0)
    loss_fn = VGGLoss(VGG19Features())
    loss_fn.train()  # a parent's .train() must not unfreeze it
    assert not loss_fn.vgg.training
    y = torch.rand(2, 3, 32, 32) * 2 - 1
    assert loss_fn(y.clone(), y).item() == 0.0
    x = (torch.rand(2, 3, 32, 32) * 2 - 1).requires_grad_()
    loss = loss_fn(x, y)
    assert loss.item() > 0 and loss.dtype == torch.float32
    loss.backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(not p.requires_grad and p.grad is None for p in loss_fn.parameters())
    assert loss_fn.layer_weights == (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)
