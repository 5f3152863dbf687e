"""Weight initialisations of the official label-to-image codes, applied in place.

- `init_weights`: SPADE, NVlabs/SPADE models/networks/base_network.py (BaseNetwork.init_weights),
  with the paper's Glorot init (Appendix A): init_type 'xavier', init_variance 0.02.
- `pix2pixhd_init`: pix2pixHD, NVIDIA/pix2pixHD models/networks.py (weights_init): N(0, 0.02).

Spectral norm. The SPADE code initialises `m.weight.data`, which for the hook-based
torch.nn.utils.spectral_norm is a plain attribute sharing storage with the parameter
`weight_orig`; so on CPU the init reaches `weight_orig`. SPADE's create_network moves the nets to
the GPU *before* init_weights, which breaks that sharing: as the official code ran (on GPUs, so
for every published number) the spectral-norm conv weights keep PyTorch's default init
(kaiming_uniform(a=sqrt(5)), about 30x larger than xavier(0.02)); their biases are zeroed.
`init_weights(..., sn_weights=False)` is that as-run behaviour (SPADE's default here);
`sn_weights=True` the as-written CPU behaviour. Spectral norm divides by the top singular value,
so the forward pass is alike either way, but Adam's first steps are not: its step size is about
lr per entry, which is large relative to xavier(0.02)-sized weights (issue 14 item 1).
Hook-based spectral norm keeps the u, v drawn at registration (as the official code);
torch.nn.utils.parametrizations.spectral_norm re-estimates them for the new weight.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn.modules.conv import _ConvNd
from torch.nn.utils import parametrize

from ganzoo.nn.spectral_norm import has_spectral_norm


def _raw_weight(m: _ConvNd | nn.Linear) -> Tensor:
    """The trainable weight of a conv / linear layer, under spectral norm if it has one."""
    if parametrize.is_parametrized(m, "weight"):
        parametrizations = m.parametrizations
        assert isinstance(parametrizations, nn.ModuleDict)
        original = parametrizations["weight"].original  # parametrizations.spectral_norm
        assert isinstance(original, Tensor)
        return original
    weight_orig = getattr(m, "weight_orig", None)  # hook-based torch.nn.utils.spectral_norm
    if isinstance(weight_orig, nn.Parameter):
        return weight_orig
    return m.weight


@torch.no_grad()
def _refresh_power_iteration(m: nn.Module, iterations: int = 15) -> None:
    """Re-estimate parametrized spectral norm's u, v after the weight changed.

    In training mode every read of `m.weight` runs one power iteration and updates u, v in
    place; 15 is what parametrizations.spectral_norm runs when it is registered.
    """
    if not parametrize.is_parametrized(m, "weight"):
        return
    was_training = m.training
    m.train()
    for _ in range(iterations):
        m.weight  # noqa: B018 -- the read itself runs the power iteration
    m.train(was_training)


def _init_batchnorm2d(m: nn.Module, std: float) -> bool:
    """Affine BatchNorm2d: weight N(1, std), bias 0. False if m is no BatchNorm2d.

    SPADE and pix2pixHD match class names containing 'BatchNorm2d' (SPADE's own
    SynchronizedBatchNorm2d among them; here torch's SyncBatchNorm).
    """
    if not isinstance(m, nn.BatchNorm2d | nn.SyncBatchNorm):
        return False
    if m.weight is not None:
        nn.init.normal_(m.weight, 1.0, std)
    if m.bias is not None:
        nn.init.zeros_(m.bias)
    return True


@torch.no_grad()
def init_weights(
    module: nn.Module,  # network to initialise in place (all submodules)
    init_type: Literal["xavier", "normal"],  # SPADE --init_type (default 'xavier')
    gain: float,  # SPADE --init_variance (0.02): xavier gain, or the std of 'normal'
    sn_weights: bool = True,  # init spectral-norm weights too (CPU as written); False: as on GPU
) -> None:
    """SPADE's BaseNetwork.init_weights.

    Conv*/ConvTranspose*/Linear: weight xavier_normal_(gain) or N(0, gain), bias 0.
    Affine BatchNorm2d: weight N(1, gain), bias 0. Other modules are left as built
    (the SPADE norm's affine-free BatchNorm and InstanceNorm have no parameters).
    With sn_weights False the weights of spectral-norm layers keep their init (their bias is
    still zeroed), as the official code ran on GPUs (module docstring).
    """
    if init_type not in ("xavier", "normal"):
        raise ValueError(f"init_type must be one of 'xavier', 'normal'; got {init_type!r}")
    for m in module.modules():
        if _init_batchnorm2d(m, gain):
            continue
        if isinstance(m, _ConvNd | nn.Linear):
            if m.bias is not None:
                nn.init.zeros_(m.bias)
            if not sn_weights and has_spectral_norm(m):
                continue
            weight = _raw_weight(m)
            if init_type == "xavier":
                nn.init.xavier_normal_(weight, gain=gain)
            else:
                nn.init.normal_(weight, 0.0, gain)
            _refresh_power_iteration(m)


@torch.no_grad()
def pix2pixhd_init(
    module: nn.Module,  # network to initialise in place (all submodules)
    std: float,  # standard deviation (pix2pixHD 0.02)
) -> None:
    """pix2pixHD's weights_init: Conv*/ConvTranspose* weight N(0, std), bias unchanged
    (PyTorch default); affine BatchNorm2d weight N(1, std), bias 0. Linear layers untouched."""
    for m in module.modules():
        if _init_batchnorm2d(m, std):
            continue
        if isinstance(m, _ConvNd):
            nn.init.normal_(_raw_weight(m), 0.0, std)
            _refresh_power_iteration(m)
