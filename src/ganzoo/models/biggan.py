"""BigGAN networks (Brock, Donahue, Simonyan, "Large Scale GAN Training for High Fidelity Natural
Image Synthesis", ICLR 2019), faithful to ajbrock/BigGAN-PyTorch BigGAN.py and layers.py.

- `BigGANGenerator` (Sec. 3 and Appendix B): z split hierarchically into one
  chunk per block plus one for the input; a shared class embedding; residual GBlocks with
  class-conditional BatchNorm fed [embedding, z chunk]; self-attention at 64x64.
- `BigGANDiscriminator` (Appendix B): residual DBlocks with average-pool downsampling,
  self-attention at 64x64, global sum pooling and a projection (Miyato & Koyama 2018) of the
  class embedding onto the features.

Channel widths per resolution are the official arch dicts (`G_ARCH`, `D_ARCH`). Spectral norm
is BigGAN's own (ganzoo.nn.biggan_sn: its power-iteration order, a random u at the start, the
power iteration also run (without storing) in eval mode, buffers `u0` / `sv0`), with
num_svs 1 and `sn_itrs` (1) iterations per forward and the official epsilon, on every conv,
linear and embedding of G and D except G's shared embedding (BigGAN.py: "applying SN to G's
embedding seems to randomly cripple G"). Layers are built in the official order, so that the
same seed gives the official initial weights. Parameter counts equal the official ones (SN adds
buffers only), and the state-dict keys of the convs, linears and embeddings are the official
ones; the BatchNorm statistics are kept by torch BatchNorm modules (`bn1.bn.running_mean` for
the official `bn1.stored_mean`; ganzoo.official.biggan maps them).
Weights are initialised orthogonally (--G_init / --D_init ortho); biases keep PyTorch's
default init, as in the official code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.conv import _ConvNd

from ganzoo.nn.attention import SelfAttention
from ganzoo.nn.biggan_sn import SNConv2d, SNEmbedding, SNLinear
from ganzoo.nn.conditional_bn import ConditionalBatchNorm2d


@dataclass(frozen=True)
class Arch:
    """One network's blocks: channel multipliers of ch, and where each block ends."""

    in_mult: tuple[int, ...]  # input channels of each block / ch (D's first block: 3 RGB)
    out_mult: tuple[int, ...]  # output channels of each block / ch
    resolution: tuple[int, ...]  # the official key for attention placement after each block
    resample: tuple[bool, ...]  # upsample (G) / downsample (D) in each block


# BigGAN.py G_arch: every block upsamples x2 from the 4x4 bottom.
G_ARCH: dict[int, Arch] = {
    32: Arch((4, 4, 4), (4, 4, 4), (8, 16, 32), (True,) * 3),
    64: Arch((16, 16, 8, 4), (16, 8, 4, 2), (8, 16, 32, 64), (True,) * 4),
    128: Arch((16, 16, 8, 4, 2), (16, 8, 4, 2, 1), (8, 16, 32, 64, 128), (True,) * 5),
    256: Arch((16, 16, 8, 8, 4, 2), (16, 8, 8, 4, 2, 1), (8, 16, 32, 64, 128, 256), (True,) * 6),
    512: Arch(
        (16, 16, 8, 8, 4, 2, 1), (16, 8, 8, 4, 2, 1, 1), (8, 16, 32, 64, 128, 256, 512), (True,) * 7
    ),
}
# BigGAN.py D_arch (in_mult 0 marks the RGB input). The 32 arch's resolutions are all 16 in the
# official dict although its last two blocks run at 8x8; kept, as they decide attention placement.
D_ARCH: dict[int, Arch] = {
    32: Arch((0, 4, 4, 4), (4, 4, 4, 4), (16, 16, 16, 16), (True, True, False, False)),
    64: Arch((0, 1, 2, 4, 8), (1, 2, 4, 8, 16), (32, 16, 8, 4, 4), (True,) * 4 + (False,)),
    128: Arch(
        (0, 1, 2, 4, 8, 16), (1, 2, 4, 8, 16, 16), (64, 32, 16, 8, 4, 4), (True,) * 5 + (False,)
    ),
    256: Arch(
        (0, 1, 2, 4, 8, 8, 16),
        (1, 2, 4, 8, 8, 16, 16),
        (128, 64, 32, 16, 8, 4, 4),
        (True,) * 6 + (False,),
    ),
}


def _arch(table: dict[int, Arch], resolution: int, attention: Sequence[int], who: str) -> Arch:
    """The arch of `resolution`, checking that each attention resolution is one of its blocks."""
    if resolution not in table:
        valid = ", ".join(str(r) for r in table)
        raise ValueError(
            f"{who}: no official architecture at resolution {resolution}; valid: {valid}"
        )
    arch = table[resolution]
    for r in attention:
        if r not in arch.resolution:
            valid = ", ".join(str(v) for v in sorted(set(arch.resolution)))
            raise ValueError(
                f"{who}: attention at {r} is not a block resolution of the {resolution} arch; "
                f"valid: {valid}"
            )
    return arch


def _conv(in_ch: int, out_ch: int, kernel_size: int, sn_eps: float, sn_itrs: int) -> nn.Conv2d:
    """layers.SNConv2d: 3x3 (padding 1) or 1x1 (padding 0), with bias."""
    return SNConv2d(in_ch, out_ch, kernel_size, kernel_size // 2, num_itrs=sn_itrs, eps=sn_eps)


class GBlock(nn.Module):
    """layers.py GBlock: ccBN -> ReLU -> up x2 -> conv3 -> ccBN -> ReLU -> conv3, plus the
    shortcut conv1x1(up x2 (x)). x (N, in, h, w), cond (N, cond_dim) -> (N, out, 2h, 2w)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        cond_dim: int,  # shared embedding + z chunk (BigGAN 128 + 20)
        bn_eps: float,  # BatchNorm epsilon (1e-5)
        sn_eps: float,  # spectral-norm epsilon (1e-6)
        upsample: bool,  # nearest x2 (every official G block)
        sn_itrs: int = 1,  # power iterations per forward (--num_G_SV_itrs)
    ) -> None:
        super().__init__()
        self.upsample = upsample
        # the official construction order (convs, then BNs): the same seed, the same init
        self.conv1 = _conv(in_channels, out_channels, 3, sn_eps, sn_itrs)
        self.conv2 = _conv(out_channels, out_channels, 3, sn_eps, sn_itrs)
        self.learnable_sc = in_channels != out_channels or upsample
        if self.learnable_sc:
            self.conv_sc = _conv(in_channels, out_channels, 1, sn_eps, sn_itrs)
        self.bn1 = ConditionalBatchNorm2d(in_channels, cond_dim, bn_eps, 0.1, sn_eps, sn_itrs)
        self.bn2 = ConditionalBatchNorm2d(out_channels, cond_dim, bn_eps, 0.1, sn_eps, sn_itrs)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        h = F.relu(self.bn1(x, cond))
        if self.upsample:
            h = F.interpolate(h, scale_factor=2, mode="nearest")
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        h = self.conv2(F.relu(self.bn2(self.conv1(h), cond)))
        if self.learnable_sc:
            x = self.conv_sc(x)
        return h + x


class BigGANGenerator(nn.Module):
    """G(z, y): z (N, dim_z), class ids y (N,) -> images (N, 3, R, R) in [-1, 1].

    With `hier`, z is cut into len(blocks) + 1 chunks of dim_z // (len(blocks) + 1): the first
    goes through a linear layer to (16 ch, 4, 4) (the arch's first width), chunk i + 1 is
    concatenated with the shared class embedding and conditions every BatchNorm of block i.
    Like the official code, dim_z is rounded down to a multiple of the number of chunks.
    The official forward takes the embedded class, G.shared(y); this one takes the ids y.
    """

    def __init__(
        self,
        resolution: int = 128,  # output size; one of G_ARCH (32, 64, 128, 256, 512)
        num_classes: int = 1000,  # classes of the shared embedding (ImageNet 1000)
        ch: int = 96,  # channel multiplier G_ch (paper 96 at 128 and 256)
        dim_z: int = 120,  # latent size (128: 120 = 6 x 20; 256 in the released G: 140 = 7 x 20)
        shared_dim: int = 128,  # shared class embedding size (paper 128)
        hier: bool = True,  # hierarchical latent: a z chunk per block (paper: yes)
        attention: Sequence[int] = (64,),  # resolutions with a self-attention block after them
        bn_eps: float = 1e-5,  # conditional BatchNorm epsilon (--BN_eps)
        sn_eps: float = 1e-6,  # spectral-norm epsilon (--SN_eps; launch script 1e-6)
        bottom_width: int = 4,  # spatial size after the first linear layer
        init_orthogonal: bool = True,  # --G_init ortho (False: PyTorch's default init)
        sn_itrs: int = 1,  # spectral-norm power iterations per forward (--num_G_SV_itrs)
    ) -> None:
        super().__init__()
        arch = _arch(G_ARCH, resolution, attention, "BigGANGenerator")
        self.resolution = resolution
        self.num_classes = num_classes
        self.bottom_width = bottom_width
        self.hier = hier
        self.num_slots = len(arch.out_mult) + 1 if hier else 1
        self.z_chunk_size = dim_z // self.num_slots if hier else 0
        self.dim_z = self.z_chunk_size * self.num_slots if hier else dim_z
        self.first_channels = arch.in_mult[0] * ch
        cond_dim = shared_dim + self.z_chunk_size
        self.shared = nn.Embedding(num_classes, shared_dim)  # no spectral norm (official)
        self.linear = SNLinear(
            self.dim_z // self.num_slots,
            self.first_channels * bottom_width**2,
            num_itrs=sn_itrs,
            eps=sn_eps,
        )
        self.blocks = nn.ModuleList()
        for i, (mi, mo) in enumerate(zip(arch.in_mult, arch.out_mult, strict=True)):
            stage = nn.ModuleList(
                [GBlock(mi * ch, mo * ch, cond_dim, bn_eps, sn_eps, arch.resample[i], sn_itrs)]
            )
            if arch.resolution[i] in attention:
                stage.append(SelfAttention(mo * ch, sn_eps, sn_itrs))
            self.blocks.append(stage)
        self.output_layer = nn.Sequential(
            # layers.bn: gain 1, bias 0, and its own default eps 1e-5 (BN_eps is not passed)
            nn.BatchNorm2d(arch.out_mult[-1] * ch, eps=1e-5, momentum=0.1),
            nn.ReLU(),
            _conv(arch.out_mult[-1] * ch, 3, 3, sn_eps, sn_itrs),
        )
        if init_orthogonal:
            init_orthogonal_(self)

    def z_chunks(self, z: Tensor) -> tuple[Tensor, list[Tensor]]:
        """(first chunk (N, dim_z / num_slots), one chunk per block (N, z_chunk_size) or [])."""
        if not self.hier:
            return z, []
        first, *rest = torch.split(z, self.z_chunk_size, dim=1)
        return first, rest

    def forward(self, z: Tensor, y: Tensor) -> Tensor:
        assert z.shape[1:] == (self.dim_z,), f"z must be (N, {self.dim_z}); got {tuple(z.shape)}"
        embedding = self.shared(y)  # (N, shared_dim)
        first, rest = self.z_chunks(z)
        if self.hier:
            conds = [torch.cat([embedding, chunk], dim=1) for chunk in rest]  # (N, cond_dim)
        else:
            conds = [embedding] * len(self.blocks)
        h = self.linear(first)  # (N, first_channels * bottom^2)
        h = h.view(h.shape[0], self.first_channels, self.bottom_width, self.bottom_width)
        for stage, cond in zip(self.blocks, conds, strict=True):
            assert isinstance(stage, nn.ModuleList)  # [GBlock, optional SelfAttention]
            h = stage[0](h, cond)  # GBlock: (N, out, 2h, 2w)
            for attention in stage[1:]:
                h = attention(h)
        return torch.tanh(self.output_layer(h))  # (N, 3, R, R)


class DBlock(nn.Module):
    """layers.py DBlock (wide): [ReLU] -> conv3 -> ReLU -> conv3 -> [avgpool 2], plus a 1x1
    shortcut (conv then pool after a pre-activation, pool then conv in the first block)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        sn_eps: float,  # spectral-norm epsilon
        preactivation: bool,  # ReLU on the input (all blocks but the first)
        downsample: bool,  # average pool 2x2
        sn_itrs: int = 1,  # power iterations per forward (--num_D_SV_itrs)
    ) -> None:
        super().__init__()
        self.preactivation = preactivation
        self.downsample = downsample
        self.conv1 = _conv(in_channels, out_channels, 3, sn_eps, sn_itrs)  # wide: hidden = out
        self.conv2 = _conv(out_channels, out_channels, 3, sn_eps, sn_itrs)
        self.learnable_sc = in_channels != out_channels or downsample
        if self.learnable_sc:
            self.conv_sc = _conv(in_channels, out_channels, 1, sn_eps, sn_itrs)

    def shortcut(self, x: Tensor) -> Tensor:
        if self.preactivation:
            if self.learnable_sc:
                x = self.conv_sc(x)
            return F.avg_pool2d(x, 2) if self.downsample else x
        if self.downsample:
            x = F.avg_pool2d(x, 2)
        return self.conv_sc(x) if self.learnable_sc else x

    def forward(self, x: Tensor) -> Tensor:
        h = F.relu(x) if self.preactivation else x  # out of place: x feeds the shortcut
        h = self.conv2(F.relu(self.conv1(h)))
        if self.downsample:
            h = F.avg_pool2d(h, 2)
        return h + self.shortcut(x)


class BigGANDiscriminator(nn.Module):
    """D(x, y): images (N, 3, R, R), class ids y (N,) -> logits (N, 1).

    out = linear(h) + <embed(y), h> with h = sum over H, W of ReLU(features) (N, 16 ch).
    """

    def __init__(
        self,
        resolution: int = 128,  # input size; one of D_ARCH (32, 64, 128, 256)
        num_classes: int = 1000,  # classes of the projection embedding
        ch: int = 96,  # channel multiplier D_ch (paper 96)
        attention: Sequence[int] = (64,),  # block resolutions followed by self-attention
        sn_eps: float = 1e-6,  # spectral-norm epsilon
        init_orthogonal: bool = True,  # --D_init ortho
        sn_itrs: int = 1,  # spectral-norm power iterations per forward (--num_D_SV_itrs)
    ) -> None:
        super().__init__()
        arch = _arch(D_ARCH, resolution, attention, "BigGANDiscriminator")
        self.resolution = resolution
        self.num_classes = num_classes
        self.blocks = nn.ModuleList()
        for i, (mi, mo) in enumerate(zip(arch.in_mult, arch.out_mult, strict=True)):
            in_ch = 3 if i == 0 else mi * ch
            block = DBlock(in_ch, mo * ch, sn_eps, i > 0, arch.resample[i], sn_itrs)
            stage = nn.ModuleList([block])
            if arch.resolution[i] in attention:
                stage.append(SelfAttention(mo * ch, sn_eps, sn_itrs))
            self.blocks.append(stage)
        features = arch.out_mult[-1] * ch
        self.linear = SNLinear(features, 1, num_itrs=sn_itrs, eps=sn_eps)
        self.embed = SNEmbedding(num_classes, features, num_itrs=sn_itrs, eps=sn_eps)  # projection
        if init_orthogonal:
            init_orthogonal_(self)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        assert x.shape[1:] == (3, self.resolution, self.resolution), (
            f"x must be (N, 3, {self.resolution}, {self.resolution}); got {tuple(x.shape)}"
        )
        h = x
        for stage in self.blocks:
            assert isinstance(stage, nn.ModuleList)  # [DBlock, optional SelfAttention]
            for layer in stage:
                h = layer(h)
        h = torch.sum(F.relu(h), dim=(2, 3))  # global sum pooling: (N, features)
        out = self.linear(h)  # (N, 1)
        return out + torch.sum(self.embed(y) * h, dim=1, keepdim=True)  # + projection


@torch.no_grad()
def init_orthogonal_(net: nn.Module) -> None:
    """BigGAN.py init_weights('ortho'): orthogonal weights for every conv, linear and embedding,
    in module order; biases untouched. Spectral norm's u keeps its random start, as in the
    official code. No-op on the meta device."""
    for m in net.modules():
        if not isinstance(m, _ConvNd | nn.Linear | nn.Embedding):
            continue
        weight = m.weight
        assert isinstance(weight, Tensor)
        if not weight.is_meta:
            nn.init.orthogonal_(weight)
