"""SPADE networks (ganzoo.models.spade) and the shared layers they use (ganzoo.nn)."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from ganzoo.models.spade import ConvEncoder, SPADEGenerator, SPADEResnetBlock
from ganzoo.nn.init import init_weights, pix2pixhd_init
from ganzoo.nn.patch_discriminator import MultiscaleDiscriminator, PatchDiscriminator
from ganzoo.nn.spade_norm import SPADE
from ganzoo.nn.spectral_norm import has_spectral_norm, spectral_norm

# Trainable parameters of the official networks (shared/reference/params.json).
SPADE_ADE20K = {"G": 96_492_483, "D": 5_836_930, "G_vae": 111_942_595, "E": 10_463_424}
PIX2PIXHD_D = {2: 5_603_202, 3: 8_404_803}  # input 39 ch, ndf 64, n_layers_D 3, num_D 2 / 3


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters() if p.requires_grad)


def spade_d(in_channels: int, ndf: int = 64, n_layers: int = 4) -> MultiscaleDiscriminator:
    """SPADE's discriminator (norm_D 'spectralinstance', num_D 2)."""
    return MultiscaleDiscriminator(
        in_channels,
        ndf,
        n_layers,
        2,
        "instance",
        use_spectral_norm=True,
        use_bias_with_norm=False,
    )


def pix2pixhd_d(num_scales: int, ndf: int = 64, n_layers_d: int = 3) -> MultiscaleDiscriminator:
    """pix2pixHD's discriminator: its n_layers_D k is n_layers k + 1 here."""
    return MultiscaleDiscriminator(
        39,
        ndf,
        n_layers_d + 1,
        num_scales,
        "instance",
        use_spectral_norm=False,
        use_bias_with_norm=True,
    )


# ----- parameter counts of the paper configurations ---------------------------------------
def test_spade_ade20k_counts_match_official() -> None:
    with torch.device("meta"):  # no memory, no init cost
        g = SPADEGenerator(151)
        g_vae = SPADEGenerator(151, use_vae=True)
        e = ConvEncoder(ndf=64, latent_dim=256)
        d = spade_d(151 + 3)
    assert n_params(g) == SPADE_ADE20K["G"]
    assert n_params(d) == SPADE_ADE20K["D"]
    assert n_params(g_vae) == SPADE_ADE20K["G_vae"]
    assert n_params(e) == SPADE_ADE20K["E"]


@pytest.mark.parametrize("num_scales", [2, 3])
def test_pix2pixhd_discriminator_counts_match_official(num_scales: int) -> None:
    with torch.device("meta"):
        d = pix2pixhd_d(num_scales)
    assert n_params(d) == PIX2PIXHD_D[num_scales]


# ----- generator --------------------------------------------------------------------------
def one_hot(n: int, c: int, h: int, w: int) -> torch.Tensor:
    labels = torch.randint(0, c, (n, h, w))
    return nn.functional.one_hot(labels, c).permute(0, 3, 1, 2).float()


@pytest.mark.parametrize(("h", "w", "aspect_ratio"), [(32, 32, 1.0), (32, 64, 2.0)])
@pytest.mark.parametrize("use_vae", [False, True])
def test_tiny_generator_runs(h: int, w: int, aspect_ratio: float, use_vae: bool) -> None:
    torch.manual_seed(0)
    g = SPADEGenerator(
        5,
        ngf=8,
        z_dim=16,
        crop_size=w,
        aspect_ratio=aspect_ratio,
        use_vae=use_vae,
        spade_hidden=16,
    )
    init_weights(g, "xavier", 0.02)
    seg = one_hot(2, 5, h, w)
    out = g(seg, torch.randn(2, 16)) if use_vae else g(seg)
    assert out.shape == (2, 3, h, w)
    assert out.abs().max() <= 1.0
    out.mean().backward()
    assert all(p.grad is not None for p in g.parameters())


@pytest.mark.parametrize(("mode", "factor"), [("normal", 32), ("more", 64), ("most", 128)])
def test_upsampling_modes(mode: str, factor: int) -> None:
    g = SPADEGenerator(3, ngf=4, crop_size=factor, num_upsampling_layers=mode, spade_hidden=4)
    assert (g.sh, g.sw) == (1, 1) and g.output_size == (factor, factor)
    assert hasattr(g, "up_4") == (mode == "most")
    if mode == "most":
        assert g.up_4.fout == 2 and g.conv_img.in_channels == 2  # ngf // 2
    assert g(one_hot(2, 3, factor, factor)).shape == (2, 3, factor, factor)


def test_generator_rejects_wrong_inputs() -> None:
    g = SPADEGenerator(3, ngf=4, crop_size=32, spade_hidden=4)
    with pytest.raises(ValueError, match="use_vae=False"):
        g(one_hot(1, 3, 32, 32), torch.randn(1, 256))
    with pytest.raises(AssertionError, match="segmap must be"):
        g(one_hot(1, 3, 64, 64))
    with pytest.raises(ValueError, match="'normal', 'more', 'most'"):
        SPADEGenerator(3, num_upsampling_layers="many")  # type: ignore[arg-type]


def test_vae_generator_samples_z_when_none() -> None:
    g = SPADEGenerator(3, ngf=4, z_dim=8, crop_size=32, use_vae=True, spade_hidden=4).eval()
    seg = one_hot(2, 3, 32, 32)
    torch.manual_seed(1)
    a = g(seg)
    torch.manual_seed(1)
    b = g(seg, torch.randn(2, 8))
    assert torch.equal(a, b)


def test_spectral_norm_only_on_resblock_convs() -> None:
    g = SPADEGenerator(3, ngf=4, crop_size=32, spade_hidden=4)
    normed = {n for n, m in g.named_modules() if has_spectral_norm(m)}
    assert normed and all(n.rsplit(".", 1)[-1] in ("conv_0", "conv_1", "conv_s") for n in normed)
    assert {"head_0.conv_0", "up_0.conv_s"} <= normed  # up_0 changes width: learned shortcut
    assert not hasattr(g.head_0, "conv_s")
    plain = SPADEGenerator(3, ngf=4, crop_size=32, spade_hidden=4, use_spectral_norm=False)
    assert not any(has_spectral_norm(m) for m in plain.modules())


def test_resblock_shortcut_and_widths() -> None:
    blk = SPADEResnetBlock(16, 8, 3, 4, "batch", use_spectral_norm=True)
    assert blk.learned_shortcut and blk.conv_0.out_channels == 8  # fmiddle = min(fin, fout)
    assert blk.conv_s.bias is None
    out = blk(torch.randn(2, 16, 5, 7), one_hot(2, 3, 20, 28))
    assert out.shape == (2, 8, 5, 7)


# ----- SPADE normalization ----------------------------------------------------------------
@pytest.mark.parametrize("param_free_norm", ["batch", "instance"])
def test_spade_with_zero_modulation_is_the_plain_norm(param_free_norm: str) -> None:
    spade = SPADE(6, 4, hidden=8, param_free_norm=param_free_norm)  # type: ignore[arg-type]
    for conv in (spade.mlp_gamma, spade.mlp_beta):
        nn.init.zeros_(conv.weight)
        nn.init.zeros_(conv.bias)
    x = torch.randn(3, 6, 8, 8) * 3 + 1
    norm_cls = nn.BatchNorm2d if param_free_norm == "batch" else nn.InstanceNorm2d
    reference = norm_cls(6, affine=False)
    torch.testing.assert_close(spade(x, one_hot(3, 4, 16, 16)), reference(x))
    assert sum(p.numel() for p in spade.param_free_norm.parameters()) == 0


def test_spade_modulates_with_resized_map() -> None:
    spade = SPADE(2, 3, hidden=4).eval()
    out = spade(torch.randn(1, 2, 4, 6), one_hot(1, 3, 32, 48))
    assert out.shape == (1, 2, 4, 6)


# ----- discriminator ----------------------------------------------------------------------
def test_discriminator_layers_and_channels() -> None:
    d = spade_d(7, ndf=8, n_layers=4)
    outs = d(torch.randn(2, 7, 32, 32))
    assert len(outs) == 2
    for scale in outs:
        assert len(scale) == 5  # n_layers + the logits
        assert [f.shape[1] for f in scale] == [8, 16, 32, 64, 1]
    # k4 p2: stride 2 maps H -> H / 2 + 1, stride 1 maps H -> H + 1; scale 1 sees 16 x 16.
    assert [f.shape[-1] for f in outs[0]] == [17, 9, 5, 6, 7]
    assert [f.shape[-1] for f in outs[1]] == [9, 5, 3, 4, 5]
    capped = PatchDiscriminator(3, 256, 4, "instance", True, False)
    assert capped.out_channels == [256, 512, 512, 512, 1]


def test_discriminator_norm_spectral_norm_and_bias_placement() -> None:
    sp = spade_d(7, ndf=8).scales[0].layers
    first, last, middle = sp[0][0], sp[-1], [sp[i][0] for i in (1, 2, 3)]
    assert not has_spectral_norm(first) and first.bias is not None
    assert not has_spectral_norm(last) and last.bias is not None
    assert all(has_spectral_norm(c) and c.bias is None for c in middle)
    assert [c.stride for c in middle] == [(2, 2), (2, 2), (1, 1)]
    assert all(isinstance(sp[i][1], nn.InstanceNorm2d) for i in (1, 2, 3))
    hd = pix2pixhd_d(3, ndf=8).scales[0].layers
    assert len(hd) == 5 and not any(has_spectral_norm(m) for m in hd.modules())
    assert all(hd[i][0].bias is not None for i in range(1, 4))
    assert [hd[i][0].stride for i in range(4)] == [(2, 2), (2, 2), (2, 2), (1, 1)]
    assert len(pix2pixhd_d(3, ndf=8)(torch.randn(1, 39, 64, 64))) == 3


# ----- initialisation ---------------------------------------------------------------------
def test_xavier_gain_002_std_and_zero_bias() -> None:
    torch.manual_seed(0)
    spectral_normed = nn.utils.parametrizations.spectral_norm(nn.Conv2d(64, 128, 3))
    net = nn.Sequential(nn.Conv2d(64, 128, 3), spectral_normed, nn.Linear(300, 200))
    init_weights(net, "xavier", 0.02)
    conv_std = 0.02 * math.sqrt(2.0 / (64 * 9 + 128 * 9))
    raw = spectral_normed.parametrizations.weight.original
    linear_std = 0.02 * math.sqrt(2.0 / (300 + 200))
    for weight, std in ((net[0].weight, conv_std), (raw, conv_std), (net[2].weight, linear_std)):
        assert weight.std().item() == pytest.approx(std, rel=0.05)
    assert all(m.bias.abs().max() == 0 for m in net)
    # u, v were re-estimated for the new weight: the eval-mode weight has spectral norm ~1.
    spectral_normed.eval()
    sigma = torch.linalg.matrix_norm(spectral_normed.weight.flatten(1), ord=2)
    assert sigma.item() == pytest.approx(1.0, rel=0.05)


def test_init_as_run_on_gpu_keeps_spectral_norm_weights() -> None:
    torch.manual_seed(0)
    sn = spectral_norm(nn.Conv2d(64, 128, 3))
    default = sn.weight_orig.clone()
    u = sn.weight_u.clone()
    net = nn.Sequential(nn.Conv2d(64, 128, 3), sn)
    init_weights(net, "xavier", 0.02, sn_weights=False)
    assert torch.equal(sn.weight_orig, default) and torch.equal(sn.weight_u, u)
    assert sn.bias.abs().max() == 0  # the bias is still zeroed
    conv_std = 0.02 * math.sqrt(2.0 / (64 * 9 + 128 * 9))
    assert net[0].weight.std().item() == pytest.approx(conv_std, rel=0.05)
    init_weights(net, "xavier", 0.02, sn_weights=True)  # as written: reaches weight_orig
    assert sn.weight_orig.std().item() == pytest.approx(conv_std, rel=0.05)
    assert torch.equal(sn.weight_u, u)  # hook SN: u, v as drawn (the official code)


def test_pix2pixhd_init_keeps_conv_bias() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(64, 64, 3), nn.BatchNorm2d(64), nn.ConvTranspose2d(64, 32, 3))
    biases = [net[0].bias.clone(), net[2].bias.clone()]
    pix2pixhd_init(net, 0.02)
    assert net[0].weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert net[2].weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert torch.equal(net[0].bias, biases[0]) and torch.equal(net[2].bias, biases[1])
    assert net[1].weight.mean().item() == pytest.approx(1.0, abs=0.02)
    assert net[1].bias.abs().max() == 0


def test_init_rejects_unknown_type() -> None:
    with pytest.raises(ValueError, match="'xavier', 'normal'"):
        init_weights(nn.Linear(2, 2), "kaiming", 0.02)  # type: ignore[arg-type]


# ----- VAE --------------------------------------------------------------------------------
def test_encoder_shapes_and_generator_takes_its_z() -> None:
    e = ConvEncoder(ndf=4, latent_dim=8)
    image = torch.rand(2, 3, 32, 64) * 2 - 1  # resized to 256 x 256 inside
    mu, logvar = e(image)
    assert mu.shape == logvar.shape == (2, 8)
    assert len(e.layers) == 6 and all(has_spectral_norm(l[0]) for l in e.layers)
    g = SPADEGenerator(
        3, ngf=4, z_dim=8, crop_size=64, aspect_ratio=2.0, use_vae=True, spade_hidden=4
    )
    z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
    fake = g(one_hot(2, 3, 32, 64), z)
    assert fake.shape == (2, 3, 32, 64)
    fake.mean().backward()
    assert e.fc_mu.weight.grad is not None


# ----- copies and checkpoints -------------------------------------------------------------
def test_deepcopy_and_state_dict_round_trip() -> None:
    torch.manual_seed(0)
    g = SPADEGenerator(3, ngf=4, crop_size=32, spade_hidden=4)
    init_weights(g, "xavier", 0.02)
    seg = one_hot(2, 3, 32, 32)
    g(seg)  # a training step's power iteration and BN statistics
    ema = copy.deepcopy(g).eval()
    fresh = SPADEGenerator(3, ngf=4, crop_size=32, spade_hidden=4)
    fresh.load_state_dict(g.state_dict())
    g.eval()
    fresh.eval()
    with torch.no_grad():
        reference = g(seg)
        torch.testing.assert_close(ema(seg), reference, rtol=0, atol=0)
        torch.testing.assert_close(fresh(seg), reference, rtol=0, atol=0)
    assert any(k.endswith("conv_0.weight_orig") for k in g.state_dict())
    assert any(k.endswith("conv_0.weight_u") for k in g.state_dict())
