"""BigGAN's own spectral normalisation (Brock et al. 2019; ajbrock/BigGAN-PyTorch layers.py SN,
SNConv2d, SNLinear, SNEmbedding), as BigGAN's G and D, their self-attention and the conditional
BatchNorm's gain and bias maps use it.

It differs from torch.nn.utils.parametrizations.spectral_norm in ways that change training:

- the power iteration starts from u: v = normalize(u W), then u = normalize(v W^T), and
  sigma = v W^T u^T (torch keeps v and u and updates u first);
- the first u is a random N(0, I) row drawn when the layer is built, with no power iterations
  at registration (torch runs 15) and none after the weights are (re)initialised;
- in eval mode the power iteration still runs, from the stored u, without storing its result;
- several singular values (`num_svs`), each vector Gram-Schmidt-orthogonalised against the
  previous ones, and `num_itrs` iterations per forward (BigGAN: 1 and 1);
- the buffers have the official names: `u0`, `u1`, ... (1, out) and `sv0`, ... (1,), the last
  singular values (logging only), so official state dicts load key for key.

The weight stays a plain parameter named `weight` (the official key); the forward divides it by
the first singular value. Parameter counts are those of nn.Conv2d / nn.Linear / nn.Embedding.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _proj(x: Tensor, y: Tensor) -> Tensor:
    """Projection of the row x onto the row y (both (1, n))."""
    return torch.mm(y, x.t()) * y / torch.mm(y, y.t())


def _gram_schmidt(x: Tensor, ys: list[Tensor]) -> Tensor:
    for y in ys:
        x = x - _proj(x, y)
    return x


def power_iteration(
    w: Tensor,  # (out, in) weight matrix
    u_buffers: list[Tensor],  # the stored u rows (1, out), one per singular value
    update: bool,  # write the new u rows into u_buffers (training mode)
    eps: float,  # F.normalize epsilon
) -> list[Tensor]:
    """One BigGAN power-iteration step per singular value; returns the singular values, each
    differentiable with respect to w (the vectors are constants)."""
    us: list[Tensor] = []
    vs: list[Tensor] = []
    svs: list[Tensor] = []
    for i, u in enumerate(u_buffers):
        with torch.no_grad():
            v = F.normalize(_gram_schmidt(torch.matmul(u, w), vs), eps=eps)  # (1, in)
            vs.append(v)
            u = F.normalize(_gram_schmidt(torch.matmul(v, w.t()), us), eps=eps)  # (1, out)
            us.append(u)
            if update:
                u_buffers[i][:] = u
        svs.append(torch.squeeze(torch.matmul(torch.matmul(v, w.t()), u.t())))
    return svs


class BigGANSpectralNorm:
    """Mixin for a layer with a `weight` (out, ...): u/sv buffers and the normalised weight."""

    weight: Tensor
    training: bool
    register_buffer: Any

    def _init_sn(self, num_svs: int, num_itrs: int, num_outputs: int, eps: float) -> None:
        if num_svs < 1 or num_itrs < 1:
            raise ValueError(f"num_svs and num_itrs must be >= 1; got {num_svs}, {num_itrs}")
        self.num_svs = num_svs
        self.num_itrs = num_itrs
        self.sn_eps = eps
        for i in range(num_svs):
            self.register_buffer(f"u{i}", torch.randn(1, num_outputs))  # random start
            self.register_buffer(f"sv{i}", torch.ones(1))  # last singular value (logging)

    @property
    def u(self) -> list[Tensor]:
        return [getattr(self, f"u{i}") for i in range(self.num_svs)]

    @property
    def sv(self) -> list[Tensor]:
        return [getattr(self, f"sv{i}") for i in range(self.num_svs)]

    def normalized_weight(self) -> Tensor:
        """weight / sigma_0 after num_itrs power iterations (u stored in training mode)."""
        w = self.weight.reshape(self.weight.shape[0], -1)  # (a copy under channels_last)
        svs: list[Tensor] = []
        for _ in range(self.num_itrs):
            svs = power_iteration(w, self.u, self.training, self.sn_eps)
        if self.training:
            with torch.no_grad():
                for i, sv in enumerate(svs):
                    self.sv[i][:] = sv
        return self.weight / svs[0]


class SNConv2d(nn.Conv2d, BigGANSpectralNorm):
    """nn.Conv2d with BigGAN's spectral norm (keys weight, bias, u0, sv0)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        padding: int = 0,
        bias: bool = True,
        num_svs: int = 1,  # singular values estimated (official 1)
        num_itrs: int = 1,  # power iterations per forward (official 1)
        eps: float = 1e-12,  # normalisation epsilon (BigGAN --SN_eps; launch script 1e-6)
    ) -> None:
        nn.Conv2d.__init__(self, in_channels, out_channels, kernel_size, padding=padding, bias=bias)
        self._init_sn(num_svs, num_itrs, out_channels, eps)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(
            x, self.normalized_weight(), self.bias, self.stride, self.padding, self.dilation,
            self.groups,
        )  # fmt: skip


class SNLinear(nn.Linear, BigGANSpectralNorm):
    """nn.Linear with BigGAN's spectral norm (keys weight, bias, u0, sv0)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        num_svs: int = 1,
        num_itrs: int = 1,
        eps: float = 1e-12,
    ) -> None:
        nn.Linear.__init__(self, in_features, out_features, bias)
        self._init_sn(num_svs, num_itrs, out_features, eps)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.normalized_weight(), self.bias)


class SNEmbedding(nn.Embedding, BigGANSpectralNorm):
    """nn.Embedding with BigGAN's spectral norm over its (num_embeddings, dim) table; u has
    num_embeddings entries, as the official SNEmbedding (keys weight, u0, sv0)."""

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        num_svs: int = 1,
        num_itrs: int = 1,
        eps: float = 1e-12,
    ) -> None:
        nn.Embedding.__init__(self, num_embeddings, embedding_dim)
        self._init_sn(num_svs, num_itrs, num_embeddings, eps)

    def forward(self, x: Tensor) -> Tensor:
        return F.embedding(x, self.normalized_weight())
