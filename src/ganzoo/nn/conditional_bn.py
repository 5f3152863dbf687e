"""Conditional batch normalization and BigGAN's "standing statistics".

`ConditionalBatchNorm2d` is BigGAN's class-conditional BatchNorm (Brock et al. 2019, Sec. 3 and
Appendix B; ajbrock/BigGAN-PyTorch layers.py class ccbn with G_shared): a parameter-free
BatchNorm of x, then a per-channel gain and bias that are bias-free linear maps of a
conditioning vector (in BigGAN the shared class embedding concatenated with a chunk of z):
out = BN(x) * (1 + gain(c)) + bias(c).

The normalization is an `nn.BatchNorm2d(affine=False)` child, so that
`nn.SyncBatchNorm.convert_sync_batchnorm` (cross-replica BN, paper Sec. 3) reaches it and
`accumulate_standing_stats` finds it.

`accumulate_standing_stats` is the paper's "standing statistics" (BatchNorm statistics averaged
over many forward passes of G instead of the running averages kept during training; BigGAN-PyTorch
utils.py accumulate_standing_stats with --mybn --accumulate_stats): reset every BatchNorm's running
statistics, run the network in training mode on several batches without gradients, each
BatchNorm keeping the cumulative average of the batch statistics (torch's momentum=None), then
return to eval mode, where those averages normalize.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from ganzoo.nn.biggan_sn import SNLinear


class ConditionalBatchNorm2d(nn.Module):
    """BN(x) * (1 + gain(c)) + bias(c): x (N, C, H, W), c (N, cond_dim) -> (N, C, H, W)."""

    def __init__(
        self,
        num_features: int,  # C, channels of x
        cond_dim: int,  # length of the conditioning vector (BigGAN: 128 shared + 20 z = 148)
        eps: float,  # BatchNorm epsilon (BigGAN --BN_eps 1e-5)
        momentum: float,  # running-statistics momentum (BigGAN 0.1)
        sn_eps: float | None,  # BigGAN's spectral norm (ganzoo.nn.biggan_sn.SNLinear) on the
        #                        gain / bias maps with this epsilon (SN_eps 1e-6); None = plain
        sn_itrs: int = 1,  # power iterations per forward (--num_G_SV_itrs)
    ) -> None:
        super().__init__()
        self.num_features = num_features
        self.cond_dim = cond_dim
        self.gain: nn.Linear
        self.bias: nn.Linear
        for name in ("gain", "bias"):
            if sn_eps is None:
                layer = nn.Linear(cond_dim, num_features, bias=False)
            else:
                layer = SNLinear(cond_dim, num_features, bias=False, num_itrs=sn_itrs, eps=sn_eps)
            setattr(self, name, layer)
        self.bn = nn.BatchNorm2d(num_features, eps=eps, momentum=momentum, affine=False)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        assert cond.shape == (x.shape[0], self.cond_dim), (
            f"cond must be (N, {self.cond_dim}); got {tuple(cond.shape)}"
        )
        gain = (1 + self.gain(cond)).view(x.shape[0], self.num_features, 1, 1)  # (N, C, 1, 1)
        bias = self.bias(cond).view(x.shape[0], self.num_features, 1, 1)  # (N, C, 1, 1)
        return self.bn(x) * gain + bias


@torch.no_grad()
def accumulate_standing_stats(
    net: nn.Module,  # a network with BatchNorm layers (BigGAN: the EMA generator)
    inputs: Callable[[], tuple[Tensor, ...]],  # draws the positional inputs of one pass
    num_accumulations: int,  # forward passes to average over (BigGAN default 16)
) -> None:
    """Replace every BatchNorm's running statistics by their average over forward passes.

    The network is left in eval mode (so the standing statistics are used) and every
    BatchNorm's momentum is restored. Other training-mode state changes as in a training
    forward (spectral norm's power iteration advances), as in the official code.
    The running variance is torch's unbiased batch variance (the official myBN averages the
    biased one; the two differ by a factor n / (n - 1) of the per-channel count n = N H W).
    """
    if num_accumulations < 1:
        raise ValueError(f"num_accumulations must be >= 1; got {num_accumulations}")
    norms = [m for m in net.modules() if isinstance(m, _BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()  # mean 0, var 1, num_batches_tracked 0
        m.momentum = None  # cumulative moving average: the plain mean over the passes
    net.train()
    try:
        for _ in range(num_accumulations):
            net(*inputs())
    finally:
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
        net.eval()
