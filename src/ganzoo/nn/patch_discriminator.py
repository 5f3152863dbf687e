"""Multi-scale PatchGAN discriminator of pix2pixHD (Wang et al., CVPR 2018, Sec. 3.2) and SPADE.

One implementation serves both official codes: NVIDIA/pix2pixHD models/networks.py
(NLayerDiscriminator, MultiscaleDiscriminator) and NVlabs/SPADE models/networks/discriminator.py.
A single scale is a stack of 4x4 convs (padding 2 = ceil((4 - 1) / 2), LeakyReLU 0.2):

    layer 0            Conv(in -> ndf, stride 2) + LReLU                  (no norm, no SN)
    layer 1..L-1       Conv(stride 2; the last of them stride 1) [+ SN] [+ IN] + LReLU
    layer L            Conv(-> 1, stride 1): the patch logits               (no norm, no SN)

with channels ndf * 2^i capped at 512. `n_layers` = L = the convs before the output conv,
counted as SPADE counts them. The two papers' options map to it as

    SPADE      --n_layers_D k  ->  n_layers = k      (default 4: strides 2, 2, 2, 1, then 1)
    pix2pixHD  --n_layers_D k  ->  n_layers = k + 1  (default 3 -> 4: the same five convs)

pix2pixHD builds k - 1 stride-2 normalized convs plus one extra stride-1 conv; SPADE builds
k - 1 normalized convs, the last at stride 1. Both give five convs at their defaults.

The differences are arguments: SPADE (norm_D 'spectralinstance') puts spectral norm and
InstanceNorm (affine False) on the middle convs and deletes their bias (normalization.py
get_nonspade_norm_layer; spectral norm in the torch-hook order with its official state names
`weight_orig`, `weight_u`, `weight_v`, ganzoo.nn.spectral_norm); pix2pixHD uses InstanceNorm
without spectral norm and keeps the bias.
The scales see the input downsampled by avg_pool2d(3, stride 2, padding 1,
count_include_pad=False); scale 0 sees the full resolution (as SPADE's discriminator_0;
pix2pixHD runs its last-registered scale there, which matters only when porting its weights).
"""

from __future__ import annotations

from typing import Literal

import torch.nn.functional as F
from torch import Tensor, nn

from ganzoo.nn.spectral_norm import SNImpl, apply_spectral_norm


def _middle_layer(
    in_ch: int,
    out_ch: int,
    stride: int,
    norm: Literal["instance", "none"],
    use_spectral_norm: bool,
    use_bias_with_norm: bool,
    sn_impl: SNImpl,
) -> nn.Sequential:
    """Conv4 [+ SN] [+ InstanceNorm] + LReLU(0.2), as get_nonspade_norm_layer / pix2pixHD do."""
    use_bias = norm == "none" or use_bias_with_norm
    conv = nn.Conv2d(in_ch, out_ch, kernel_size=4, stride=stride, padding=2, bias=use_bias)
    modules: list[nn.Module] = [apply_spectral_norm(conv, sn_impl) if use_spectral_norm else conv]
    if norm == "instance":
        modules.append(nn.InstanceNorm2d(out_ch, affine=False))
    modules.append(nn.LeakyReLU(0.2))
    return nn.Sequential(*modules)


class PatchDiscriminator(nn.Module):
    """One scale: NLayerDiscriminator of SPADE / pix2pixHD (with getIntermFeat)."""

    def __init__(
        self,
        in_channels: int,  # D input channels: semantic_nc + 3 (SPADE ADE20K 154; pix2pixHD 39)
        ndf: int = 64,  # channels of the first conv (both papers 64); doubled per layer, cap 512
        n_layers: int = 4,  # convs before the output conv: SPADE n_layers_D (4); pix2pixHD +1
        norm: Literal["instance", "none"] = "instance",  # norm of the middle convs (both: IN)
        use_spectral_norm: bool = True,  # SN on the middle convs (SPADE True; pix2pixHD False)
        use_bias_with_norm: bool = False,  # keep normed convs' bias (SPADE False; pix2pixHD True)
        sn_impl: SNImpl = "hook",  # 'hook': the official torch-hook order (nn/spectral_norm.py)
    ) -> None:
        super().__init__()
        if norm not in ("instance", "none"):
            raise ValueError(f"norm must be one of 'instance', 'none'; got {norm!r}")
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1; got {n_layers}")
        channels = [min(ndf * 2**i, 512) for i in range(n_layers)]
        layers: list[nn.Module] = [
            nn.Sequential(
                nn.Conv2d(in_channels, channels[0], kernel_size=4, stride=2, padding=2),
                nn.LeakyReLU(0.2),
            )
        ]
        for i in range(1, n_layers):
            stride = 1 if i == n_layers - 1 else 2
            layers.append(
                _middle_layer(
                    channels[i - 1],
                    channels[i],
                    stride,
                    norm,
                    use_spectral_norm,
                    use_bias_with_norm,
                    sn_impl,
                )
            )
        layers.append(nn.Conv2d(channels[-1], 1, kernel_size=4, stride=1, padding=2))
        self.layers = nn.ModuleList(layers)
        self.in_channels = in_channels
        self.out_channels = channels + [1]  # channels of each returned feature map

    def forward(self, x: Tensor) -> list[Tensor]:
        """x: (N, in_channels, H, W) -> the n_layers + 1 layer outputs, in order.

        Output i has out_channels[i] channels; the spatial size goes H -> H/2 + 1 per
        stride-2 conv and H -> H + 1 per stride-1 conv. The last is the (N, 1, h, w) patch logits.
        """
        assert x.ndim == 4 and x.shape[1] == self.in_channels, (
            f"expected (N, {self.in_channels}, H, W), got {tuple(x.shape)}"
        )
        features = []
        for layer in self.layers:
            x = layer(x)
            features.append(x)
        return features


class MultiscaleDiscriminator(nn.Module):
    """num_scales PatchDiscriminators on a pyramid of the input (pix2pixHD Sec. 3.2).

    SPADE paper config: num_scales 2, n_layers 4, norm 'instance', use_spectral_norm True,
    use_bias_with_norm False (5,836,930 parameters at in_channels 154).
    pix2pixHD: num_scales 2 (512p) or 3 (1024p, paper), n_layers 4 (its n_layers_D 3),
    norm 'instance', use_spectral_norm False, use_bias_with_norm True (5,603,202 / 8,404,803
    at in_channels 39).
    """

    def __init__(
        self,
        in_channels: int,  # D input channels: semantic_nc + 3 (SPADE ADE20K 154; pix2pixHD 39)
        ndf: int = 64,  # channels of the first conv of each scale (both papers 64)
        n_layers: int = 4,  # convs before the output conv: SPADE n_layers_D (4); pix2pixHD +1
        num_scales: int = 2,  # num_D (SPADE 2; pix2pixHD 2 at 512p, 3 at 1024p / paper)
        norm: Literal["instance", "none"] = "instance",  # norm of the middle convs (both: IN)
        use_spectral_norm: bool = True,  # SN on the middle convs (SPADE True; pix2pixHD False)
        use_bias_with_norm: bool = False,  # keep normed convs' bias (SPADE False; pix2pixHD True)
        sn_impl: SNImpl = "hook",  # 'hook': the official torch-hook order (nn/spectral_norm.py)
    ) -> None:
        super().__init__()
        if num_scales < 1:
            raise ValueError(f"num_scales must be >= 1; got {num_scales}")
        self.scales = nn.ModuleList(
            PatchDiscriminator(
                in_channels, ndf, n_layers, norm, use_spectral_norm, use_bias_with_norm, sn_impl
            )
            for _ in range(num_scales)
        )

    def forward(self, x: Tensor) -> list[list[Tensor]]:
        """x: (N, in_channels, H, W) -> per scale (full resolution first), every layer's output.

        result[s][-1] is the (N, 1, h_s, w_s) patch logits of scale s; result[s][:-1] are the
        intermediate features used by the feature-matching loss.
        """
        result = []
        for i, scale in enumerate(self.scales):
            if i > 0:
                # Halve the resolution for the next scale: (N, C, H, W) -> (N, C, ceil(H/2), ...).
                x = F.avg_pool2d(x, kernel_size=3, stride=2, padding=1, count_include_pad=False)
            result.append(scale(x))
        return result
