"""Self-attention (non-local) block of SA-GAN as BigGAN uses it (Zhang et al. 2019; Brock et
al. 2019, Sec. 3 and Appendix B).

Follows ajbrock/BigGAN-PyTorch layers.py (class Attention), which notes that the released SA-GAN
code, not the paper's description, is the reference: 1x1 convs theta and phi to C/8 channels
and g to C/2, all without bias; phi and g max-pooled 2x2, so each of the h*w queries attends
over h*w/4 keys; softmax over the keys; a 1x1 conv o back to C channels; out = x + gamma * o
with a learnable scalar gamma that starts at 0 (the block starts as the identity).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganzoo.nn.biggan_sn import SNConv2d


def _conv1x1(in_channels: int, out_channels: int, sn_eps: float | None, sn_itrs: int) -> nn.Conv2d:
    if sn_eps is None:
        return nn.Conv2d(in_channels, out_channels, kernel_size=1, padding=0, bias=False)
    return SNConv2d(in_channels, out_channels, 1, 0, bias=False, num_itrs=sn_itrs, eps=sn_eps)


class SelfAttention(nn.Module):
    """Non-local block: x (N, C, H, W) -> x + gamma * attention(x), same shape."""

    def __init__(
        self,
        channels: int,  # C; C/8 for queries and keys and C/2 for values (BigGAN 96 ch: 384 at 64px)
        sn_eps: float | None,  # BigGAN's spectral norm (ganzoo.nn.biggan_sn) on the four convs
        #                        with this epsilon (BigGAN 1e-6); None = plain convs
        sn_itrs: int = 1,  # power iterations per forward (--num_G_SV_itrs / --num_D_SV_itrs)
    ) -> None:
        super().__init__()
        if channels % 8:
            raise ValueError(f"SelfAttention needs channels divisible by 8; got {channels}")
        self.channels = channels
        self.theta = _conv1x1(channels, channels // 8, sn_eps, sn_itrs)  # queries
        self.phi = _conv1x1(channels, channels // 8, sn_eps, sn_itrs)  # keys
        self.g = _conv1x1(channels, channels // 2, sn_eps, sn_itrs)  # values
        self.o = _conv1x1(channels // 2, channels, sn_eps, sn_itrs)  # back to C
        self.gamma = nn.Parameter(torch.tensor(0.0))  # learnable gain, 0 at the start

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        assert c == self.channels, f"expected (N, {self.channels}, H, W), got {tuple(x.shape)}"
        assert h % 2 == 0 and w % 2 == 0, "SelfAttention pools keys 2x2: H and W must be even"
        theta = self.theta(x).reshape(n, c // 8, h * w)  # (N, C/8, HW)
        phi = F.max_pool2d(self.phi(x), 2).reshape(n, c // 8, h * w // 4)  # (N, C/8, HW/4)
        g = F.max_pool2d(self.g(x), 2).reshape(n, c // 2, h * w // 4)  # (N, C/2, HW/4)
        beta = F.softmax(torch.bmm(theta.transpose(1, 2), phi), dim=-1)  # (N, HW, HW/4)
        attended = torch.bmm(g, beta.transpose(1, 2)).view(n, c // 2, h, w)  # (N, C/2, H, W)
        return x + self.gamma * self.o(attended)
