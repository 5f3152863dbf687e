"""SPADE / GauGAN networks (Park et al., "Semantic Image Synthesis with Spatially-Adaptive
Normalization", CVPR 2019), faithful to NVlabs/SPADE models/networks/{generator, architecture,
encoder}.py.

- `SPADEGenerator` (Sec. 3, Fig. 4; Appendix A, Fig. 10): ResNet blocks with SPADE,
  upsampled nearest x2 between them, from a downsampled label map or, with the VAE, from z.
- `SPADEResnetBlock` (Fig. 10 left): SPADE -> LReLU -> Conv3, twice, plus a shortcut.
- `ConvEncoder` (Sec. 4 "Multi-modal synthesis", Fig. 14): the VAE image encoder, -> (mu, logvar).

The discriminator is ganzoo.nn.patch_discriminator.MultiscaleDiscriminator, shared with
pix2pixHD. SPADE's (Appendix A, Fig. 12; norm_D 'spectralinstance') is

    MultiscaleDiscriminator(in_channels=semantic_nc + 3, ndf=64, n_layers=4, num_scales=2,
                            norm="instance", use_spectral_norm=True, use_bias_with_norm=False)

Spectral norm is ganzoo.nn.spectral_norm: the power iteration of the hook-based
torch.nn.utils.spectral_norm the official code uses (v then u, one iteration per training-mode
forward, u and v drawn at registration), with its state names `conv_0.weight_orig`,
`conv_0.weight_u`, `conv_0.weight_v`, so official state_dicts map 1:1. It survives
copy.deepcopy (EMA copies) and state_dict round trips. `sn_impl: parametrizations` builds
torch.nn.utils.parametrizations.spectral_norm instead (u before v, 15 iterations at
registration; keys `conv_0.parametrizations.weight.original`): checkpoints of ganzoo runs made
before the hook order load with it.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganzoo.nn.spade_norm import SPADE
from ganzoo.nn.spectral_norm import SNImpl, apply_spectral_norm


def _spectral(conv: nn.Conv2d, enabled: bool, impl: SNImpl) -> nn.Conv2d:
    """conv with spectral norm on its weight when enabled (registered in place, same object)."""
    if enabled:
        apply_spectral_norm(conv, impl)
    return conv


class SPADEResnetBlock(nn.Module):
    """SPADE ResBlk (Appendix A, Fig. 10; official architecture.py SPADEResnetBlock).

    dx = conv_1(lrelu(norm_1(conv_0(lrelu(norm_0(x, seg))), seg))), fmiddle = min(fin, fout);
    out = shortcut + dx, where the shortcut is x itself, or conv_s(norm_s(x, seg)) (1x1, no bias)
    when fin != fout. Spectral norm (if on) only on conv_0, conv_1, conv_s.
    """

    def __init__(
        self,
        fin: int,  # input channels
        fout: int,  # output channels
        semantic_nc: int,  # label-map channels fed to each SPADE (ADE20K 151)
        spade_hidden: int,  # SPADE embedding channels (paper 128)
        param_free_norm: Literal["batch", "instance"],  # SPADE's normalization (paper: sync BN)
        use_spectral_norm: bool,  # SN on the block's convs ('spectral' in norm_G; paper True)
        sn_impl: SNImpl = "hook",  # 'hook' (official order) | 'parametrizations'
    ) -> None:
        super().__init__()
        self.learned_shortcut = fin != fout
        fmiddle = min(fin, fout)
        self.conv_0 = _spectral(nn.Conv2d(fin, fmiddle, 3, padding=1), use_spectral_norm, sn_impl)
        self.conv_1 = _spectral(nn.Conv2d(fmiddle, fout, 3, padding=1), use_spectral_norm, sn_impl)
        self.norm_0 = SPADE(fin, semantic_nc, spade_hidden, 3, param_free_norm)
        self.norm_1 = SPADE(fmiddle, semantic_nc, spade_hidden, 3, param_free_norm)
        if self.learned_shortcut:
            self.conv_s = _spectral(
                nn.Conv2d(fin, fout, 1, bias=False), use_spectral_norm, sn_impl
            )
            self.norm_s = SPADE(fin, semantic_nc, spade_hidden, 3, param_free_norm)
        self.fin = fin
        self.fout = fout

    def forward(self, x: Tensor, seg: Tensor) -> Tensor:
        """x: (N, fin, h, w); seg: (N, semantic_nc, H, W) -> (N, fout, h, w)."""
        assert x.ndim == 4 and x.shape[1] == self.fin, f"expected (N, {self.fin}, h, w)"
        if self.learned_shortcut:
            x_s = self.conv_s(self.norm_s(x, seg))
        else:
            x_s = x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, seg), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, seg), 0.2))
        return x_s + dx


class SPADEGenerator(nn.Module):
    """SPADE generator (Sec. 3 "SPADE generator", Appendix A, Fig. 11).

    Start at (sh, sw) = (round(sw / aspect_ratio), crop_size // 2^k) with 16 ngf channels, from
    Conv3 of the nearest-downsampled label map, or (use_vae) from Linear(z). Then head_0,
    G_middle_0, G_middle_1 (16 ngf), up_0..up_3 (8, 4, 2, 1 x ngf), [up_4 (ngf / 2) for
    'most'], with a nearest x2 upsampling before every block but head_0 and G_middle_1 ('more'
    and 'most' add one before G_middle_1 too), then LReLU(0.2), Conv3 -> 3, tanh. k = 5 / 6 / 7
    for 'normal' / 'more' / 'most', so the output is (sh 2^k, sw 2^k).
    """

    def __init__(
        self,
        semantic_nc: int,  # label_nc + dontcare + instance edge channel (ADE20K 150+1+0 = 151)
        ngf: int = 64,  # generator width; 16 ngf channels at the start (paper 64)
        z_dim: int = 256,  # latent size with use_vae (paper 256)
        crop_size: int = 256,  # output width (ADE20K 256; Cityscapes 512)
        aspect_ratio: float = 1.0,  # output width / height (ADE20K 1.0; Cityscapes 2.0)
        num_upsampling_layers: Literal["normal", "more", "most"] = "normal",  # Cityscapes 'more'
        use_vae: bool = False,  # start from z (multi-modal synthesis, Sec. 4) instead of the map
        spade_hidden: int = 128,  # SPADE embedding channels (paper 128)
        param_free_norm: Literal["batch", "instance"] = "batch",  # SPADE norm (paper: sync BN)
        use_spectral_norm: bool = True,  # SN on the ResBlk convs (norm_G 'spectral...'; paper)
        sn_impl: SNImpl = "hook",  # 'hook' (official order) | 'parametrizations' (module doc)
    ) -> None:
        super().__init__()
        # x2 upsamplings from (sh, sw) to the output (official compute_latent_vector_size).
        num_upsamplings = {"normal": 5, "more": 6, "most": 7}
        if num_upsampling_layers not in num_upsamplings:
            raise ValueError(
                "num_upsampling_layers must be one of 'normal', 'more', 'most'; "
                f"got {num_upsampling_layers!r}"
            )
        self.num_upsamplings = num_upsamplings[num_upsampling_layers]
        self.sw = crop_size // 2**self.num_upsamplings
        self.sh = round(self.sw / aspect_ratio)
        if self.sw < 1 or self.sh < 1:
            raise ValueError(
                f"crop_size {crop_size} with aspect_ratio {aspect_ratio} is too small for "
                f"{2**self.num_upsamplings}x upsampling ('{num_upsampling_layers}')"
            )
        self.semantic_nc = semantic_nc
        self.ngf = ngf
        self.z_dim = z_dim
        self.use_vae = use_vae
        self.num_upsampling_layers = num_upsampling_layers
        if use_vae:
            self.fc: nn.Module = nn.Linear(z_dim, 16 * ngf * self.sh * self.sw)
        else:
            self.fc = nn.Conv2d(semantic_nc, 16 * ngf, kernel_size=3, padding=1)

        def block(fin: int, fout: int) -> SPADEResnetBlock:
            return SPADEResnetBlock(
                fin, fout, semantic_nc, spade_hidden, param_free_norm, use_spectral_norm, sn_impl
            )

        self.head_0 = block(16 * ngf, 16 * ngf)
        self.G_middle_0 = block(16 * ngf, 16 * ngf)
        self.G_middle_1 = block(16 * ngf, 16 * ngf)
        self.up_0 = block(16 * ngf, 8 * ngf)
        self.up_1 = block(8 * ngf, 4 * ngf)
        self.up_2 = block(4 * ngf, 2 * ngf)
        self.up_3 = block(2 * ngf, ngf)
        final_nc = ngf
        if num_upsampling_layers == "most":
            self.up_4 = block(ngf, ngf // 2)
            final_nc = ngf // 2
        self.conv_img = nn.Conv2d(final_nc, 3, kernel_size=3, padding=1)

    @property
    def output_size(self) -> tuple[int, int]:
        """(H, W) of the generated image, which the label map must have too."""
        scale = 2**self.num_upsamplings
        return self.sh * scale, self.sw * scale

    def initial_features(self, segmap: Tensor, z: Tensor | None) -> Tensor:
        """The (N, 16 ngf, sh, sw) input of head_0, from z (use_vae) or the label map."""
        n = segmap.shape[0]
        if not self.use_vae:
            if z is not None:
                raise ValueError("z was given but the generator was built with use_vae=False")
            # Nearest downsampling of the map to the start size: (N, semantic_nc, sh, sw).
            return self.fc(F.interpolate(segmap, size=(self.sh, self.sw), mode="nearest"))
        if z is None:
            z = torch.randn(n, self.z_dim, device=segmap.device, dtype=segmap.dtype)
        assert z.shape == (n, self.z_dim), f"z must be ({n}, {self.z_dim}), got {tuple(z.shape)}"
        # (N, 16 ngf * sh * sw) -> (N, 16 ngf, sh, sw), channel-major as in the official view.
        return self.fc(z).view(n, 16 * self.ngf, self.sh, self.sw)

    def forward(self, segmap: Tensor, z: Tensor | None = None) -> Tensor:
        """segmap: (N, semantic_nc, H, W) float one-hot, (H, W) = output_size;
        z: (N, z_dim) or None (use_vae only; None samples N(0, I)) -> (N, 3, H, W) in [-1, 1]."""
        n = segmap.shape[0]
        h, w = self.output_size
        assert segmap.ndim == 4 and segmap.shape[1:] == (self.semantic_nc, h, w), (
            f"segmap must be (N, {self.semantic_nc}, {h}, {w}) for crop_size/aspect_ratio/"
            f"num_upsampling_layers; got {tuple(segmap.shape)}"
        )
        x = self.initial_features(segmap, z)
        assert x.shape == (n, 16 * self.ngf, self.sh, self.sw)
        x = self.head_0(x, segmap)
        x = self.G_middle_0(_up(x), segmap)
        if self.num_upsampling_layers in ("more", "most"):
            x = _up(x)
        x = self.G_middle_1(x, segmap)
        for block in (self.up_0, self.up_1, self.up_2, self.up_3):
            x = block(_up(x), segmap)
        if self.num_upsampling_layers == "most":
            x = self.up_4(_up(x), segmap)
        x = torch.tanh(self.conv_img(F.leaky_relu(x, 0.2)))
        assert x.shape == (n, 3, h, w)
        return x


def _up(x: Tensor) -> Tensor:
    """Nearest x2 upsampling, as nn.Upsample(scale_factor=2): (N, C, h, w) -> (N, C, 2h, 2w)."""
    return F.interpolate(x, scale_factor=2, mode="nearest")


class ConvEncoder(nn.Module):
    """VAE image encoder (Sec. 4, Appendix A, Fig. 14; official encoder.py ConvEncoder).

    The image is resized to 256x256 (bilinear), then six Conv3 stride 2 (ndf, 2, 4, 8, 8, 8 x ndf)
    with spectral norm + InstanceNorm (norm_E 'spectralinstance', conv bias removed), each
    followed by LReLU(0.2), down to 4x4; fc_mu and fc_var map the flattened 8 ndf * 4 * 4
    features to latent_dim. The official code takes ndf from --ngf (64) and builds layer6 only
    for crop_size >= 256 (smaller crops break its fc); here all six are always built.
    """

    def __init__(
        self,
        ndf: int = 64,  # width of the first conv (official: = the generator's ngf, 64)
        latent_dim: int = 256,  # size of mu / logvar; the official code hard-codes 256 (= z_dim)
        sn_impl: SNImpl = "hook",  # 'hook' (official order) | 'parametrizations'
    ) -> None:
        super().__init__()
        widths = [3, ndf, 2 * ndf, 4 * ndf, 8 * ndf, 8 * ndf, 8 * ndf]
        self.layers = nn.ModuleList(
            nn.Sequential(
                apply_spectral_norm(
                    nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False), sn_impl
                ),
                nn.InstanceNorm2d(c_out, affine=False),
                nn.LeakyReLU(0.2),
            )
            for c_in, c_out in zip(widths[:-1], widths[1:], strict=True)
        )
        self.fc_mu = nn.Linear(8 * ndf * 4 * 4, latent_dim)
        self.fc_var = nn.Linear(8 * ndf * 4 * 4, latent_dim)
        self.ndf = ndf
        self.latent_dim = latent_dim

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor]:
        """image: (N, 3, H, W) in [-1, 1] -> (mu, logvar), each (N, latent_dim)."""
        assert image.ndim == 4 and image.shape[1] == 3, f"expected (N, 3, H, W), got {image.shape}"
        n = image.shape[0]
        x = image
        if x.shape[2:] != (256, 256):
            x = F.interpolate(x, size=(256, 256), mode="bilinear", align_corners=False)
        for layer in self.layers:
            x = layer(x)
        assert x.shape == (n, 8 * self.ndf, 4, 4)
        x = x.reshape(n, 8 * self.ndf * 4 * 4)  # (N, 8 ndf, 4, 4) -> (N, 8 ndf * 16), C-major
        return self.fc_mu(x), self.fc_var(x)
