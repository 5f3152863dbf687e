"""AttnGAN generator tree and per-stage discriminators (Xu et al., CVPR 2018;
taoxugit/AttnGAN code/model.py:14-629, code/GlobalAttention.py:72-121).

Generator (G_NET): conditioning augmentation (Linear(256 -> 4 c_dim) + GLU -> mu, logvar;
c = mu + exp(logvar / 2) eps), then
- stage 1 (INIT_STAGE_G): Linear(c_dim + z_dim -> 16 ngf x 4 x 4 x 2, no bias) + BN1d + GLU,
  4 upBlocks (nearest x2, Conv3 no bias to 2 x out, BN, GLU) -> ngf x 64 x 64;
- stages 2, 3 (NEXT_STAGE_G): word attention (words projected by a 1x1 conv to ngf, softmax over
  the caption's real words per pixel), concat, r_num ResBlocks [Conv3, BN, GLU, Conv3, BN] + skip
  at 2 ngf, upBlock -> ngf at twice the size;
- each stage's image: Conv3 (no bias) + Tanh.
CUB (gf_dim 32, r_num 2): 7,084,592 parameters; COCO uses gf_dim 48, r_num 3.

Discriminators (D_NET64/128/256): 4 stride-2 Conv4 (no bias; BN after all but the first,
LReLU 0.2) to 8 ndf at size/16, at 128 one more downBlock and a Block3x3 back to 8 ndf, at 256
two and two; heads: unconditional Conv4 s4 -> Sigmoid, conditional = concat the sentence
feature tiled 4x4 -> Block3x3 -> Conv4 s4 -> Sigmoid. CUB (df_dim 64): 6,313,730 / 19,424,002 /
71,858,946. Init (miscc/utils.py weights_init): orthogonal convolutions and linear layers,
BN weight N(1, 0.02), biases 0.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import Tensor, nn

from ganzoo.core.errors import ConfigError


class GLU(nn.Module):
    """x[:, :C/2] * sigmoid(x[:, C/2:]) written as the official model.GLU (the same autograd
    graph, so gradients agree bitwise; nn.GLU's fused backward rounds differently)."""

    def forward(self, x: Tensor) -> Tensor:
        nc = x.shape[1] // 2
        return x[:, :nc] * torch.sigmoid(x[:, nc:])


def conv3x3(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, 1, 1, bias=False)


def up_block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="nearest"),
        conv3x3(cin, cout * 2),
        nn.BatchNorm2d(cout * 2),
        GLU(),
    )


class ResBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            conv3x3(channels, channels * 2),
            nn.BatchNorm2d(channels * 2),
            GLU(),
            conv3x3(channels, channels),
            nn.BatchNorm2d(channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.block(x) + x


class CANet(nn.Module):
    """Conditioning augmentation: sentence (N, nef) -> (c, mu, logvar), each (N, c_dim)."""

    def __init__(self, nef: int, c_dim: int) -> None:
        super().__init__()
        self.c_dim = c_dim
        self.fc = nn.Linear(nef, c_dim * 4)
        self.glu = GLU()

    def forward(self, sentence: Tensor, eps: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        x = self.glu(self.fc(sentence))
        mu, logvar = x[:, : self.c_dim], x[:, self.c_dim :]
        if eps is None:
            eps = torch.randn_like(mu)
        return mu + eps * (0.5 * logvar).exp(), mu, logvar


WORD_MASKS = ("per_caption", "official_misaligned")


def check_word_mask(word_mask: str) -> str:
    if word_mask not in WORD_MASKS:
        raise ConfigError(f"word_mask must be one of {', '.join(WORD_MASKS)}; got {word_mask!r}")
    return word_mask


def misaligned_mask(mask: Tensor, pixels: int) -> Tensor:
    """The padding mask (N, HW, T) the official `mask.repeat(queryL, 1)` applies to the
    attention rows viewed as (N HW, T): row n HW + q gets caption (n HW + q) mod N's mask
    (taoxugit/AttnGAN GlobalAttention.py:106-108, upstream issue 93)."""
    n = mask.shape[0]
    rows = torch.arange(n, device=mask.device)[:, None] * pixels
    rows = rows + torch.arange(pixels, device=mask.device)[None, :]
    return mask[rows % n]


class WordAttention(nn.Module):
    """GlobalAttentionGeneral: h (N, idf, H, W), words (N, cdf, T), pad mask (N, T) ->
    (word context per pixel (N, idf, H, W), attention (N, T, H, W)).

    word_mask "per_caption": each image's pixels skip its own caption's padding (the paper's
    Eq. 2); "official_misaligned": the released code's `mask.repeat(queryL, 1)`, which lines up
    other captions' masks with most pixels (see `misaligned_mask`)."""

    def __init__(self, idf: int, cdf: int, word_mask: str = "per_caption") -> None:
        super().__init__()
        self.conv_context = nn.Conv2d(cdf, idf, 1, bias=False)
        self.word_mask = check_word_mask(word_mask)

    def forward(self, h: Tensor, words: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
        n, c, hh, ww = h.shape
        source = self.conv_context(words.unsqueeze(3)).squeeze(3)  # (N, idf, T)
        # contiguous copies where the official makes them: the same bmm kernels and gradients
        attn = torch.bmm(h.reshape(n, c, -1).transpose(1, 2).contiguous(), source)  # (N, HW, T)
        if mask is not None:
            if self.word_mask == "official_misaligned":
                attn = attn.masked_fill(misaligned_mask(mask, hh * ww), float("-inf"))
            else:
                attn = attn.masked_fill(mask[:, None, :], float("-inf"))
        attn = attn.softmax(dim=2).transpose(1, 2).contiguous()  # (N, T, HW)
        context = torch.bmm(source, attn)  # (N, idf, HW)
        return context.reshape(n, c, hh, ww), attn.reshape(n, -1, hh, ww)


class InitStage(nn.Module):
    def __init__(self, ngf16: int, z_dim: int, c_dim: int) -> None:
        super().__init__()
        self.ngf16 = ngf16
        self.fc = nn.Sequential(
            nn.Linear(z_dim + c_dim, ngf16 * 4 * 4 * 2, bias=False),
            nn.BatchNorm1d(ngf16 * 4 * 4 * 2),
            GLU(),
        )
        self.up = nn.Sequential(
            up_block(ngf16, ngf16 // 2),
            up_block(ngf16 // 2, ngf16 // 4),
            up_block(ngf16 // 4, ngf16 // 8),
            up_block(ngf16 // 8, ngf16 // 16),
        )

    def forward(self, z: Tensor, c: Tensor) -> Tensor:
        x = self.fc(torch.cat([c, z], dim=1)).reshape(-1, self.ngf16, 4, 4)
        return self.up(x)


class NextStage(nn.Module):
    def __init__(self, ngf: int, nef: int, r_num: int, word_mask: str = "per_caption") -> None:
        super().__init__()
        self.att = WordAttention(ngf, nef, word_mask)
        self.residual = nn.Sequential(*[ResBlock(ngf * 2) for _ in range(r_num)])
        self.up = up_block(ngf * 2, ngf)

    def forward(self, h: Tensor, words: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
        context, attn = self.att(h, words, mask)
        return self.up(self.residual(torch.cat([h, context], dim=1))), attn


class AttnGANGenerator(nn.Module):
    """G_NET: (z (N, z_dim), sentence (N, nef), words (N, nef, T), pad mask (N, T) bool,
    CA noise or None) ->
    (images of each stage [(N, 3, 64, 64), (N, 3, 128, 128), (N, 3, 256, 256)], attention maps of
    stages 2.. [(N, T, 64, 64), (N, T, 128, 128)], mu, logvar)."""

    def __init__(
        self,
        gf_dim: int = 32,  # GAN.GF_DIM (CUB 32, COCO 48)
        z_dim: int = 100,  # GAN.Z_DIM
        c_dim: int = 100,  # GAN.CONDITION_DIM
        nef: int = 256,  # TEXT.EMBEDDING_DIM
        r_num: int = 2,  # GAN.R_NUM (CUB 2, COCO 3)
        branch_num: int = 3,  # TREE.BRANCH_NUM: stages (64, 128, 256)
        word_mask: str = "per_caption",  # or "official_misaligned" (see WordAttention)
    ) -> None:
        super().__init__()
        check_word_mask(word_mask)
        if branch_num < 1 or gf_dim < 1 or r_num < 0:
            raise ConfigError(
                f"AttnGAN generator needs branch_num >= 1, gf_dim >= 1, r_num >= 0; got "
                f"{branch_num}, {gf_dim}, {r_num}"
            )
        self.z_dim, self.nef, self.branch_num = z_dim, nef, branch_num
        self.ca_net = CANet(nef, c_dim)
        self.init_stage = InitStage(gf_dim * 16, z_dim, c_dim)
        self.next_stages = nn.ModuleList(
            [NextStage(gf_dim, nef, r_num, word_mask) for _ in range(branch_num - 1)]
        )
        self.to_images = nn.ModuleList(
            [nn.Sequential(conv3x3(gf_dim, 3), nn.Tanh()) for _ in range(branch_num)]
        )
        init_weights(self)

    def forward(
        self,
        z: Tensor,
        sentence: Tensor,
        words: Tensor,
        mask: Tensor | None,
        ca_noise: Tensor | None = None,  # (N, c_dim) N(0, I) of the CA sampling; None: drawn
    ) -> tuple[list[Tensor], list[Tensor], Tensor, Tensor]:
        c, mu, logvar = self.ca_net(sentence, ca_noise)
        h = self.init_stage(z, c)
        images = [self.to_images[0](h)]
        maps = []
        for stage, to_image in zip(self.next_stages, self.to_images[1:], strict=True):
            h, attn = stage(h, words, mask)
            images.append(to_image(h))
            maps.append(attn)
        return images, maps, mu, logvar


def down_block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2)
    )


def block3x3(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(conv3x3(cin, cout), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2))


class Logits(nn.Module):
    """D_GET_LOGITS: features (N, 8 ndf, 4, 4) [+ sentence (N, nef)] -> probabilities (N,)."""

    def __init__(self, ndf: int, nef: int, conditional: bool) -> None:
        super().__init__()
        self.nef = nef
        self.joint = block3x3(ndf * 8 + nef, ndf * 8) if conditional else None
        self.out = nn.Sequential(nn.Conv2d(ndf * 8, 1, 4, 4), nn.Sigmoid())

    def forward(self, h: Tensor, sentence: Tensor | None = None) -> Tensor:
        if self.joint is not None:
            if sentence is None:
                raise ConfigError("the conditional AttnGAN logits need a sentence feature")
            tiled = sentence.reshape(-1, self.nef, 1, 1).repeat(1, 1, h.shape[2], h.shape[3])
            h = self.joint(torch.cat([h, tiled], dim=1))
        return self.out(h).reshape(-1)


class StageDiscriminator(nn.Module):
    """D_NET64 / D_NET128 / D_NET256 (extra = 0, 1, 2 doublings beyond 64):
    images (N, 3, S, S) -> features (N, 8 ndf, 4, 4); heads `uncond`, `cond`."""

    def __init__(self, df_dim: int = 64, nef: int = 256, extra: int = 0) -> None:
        super().__init__()
        ndf = df_dim
        layers: list[nn.Module] = [
            nn.Conv2d(3, ndf, 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2),
            down_block(ndf, ndf * 2),
            down_block(ndf * 2, ndf * 4),
            down_block(ndf * 4, ndf * 8),
        ]
        for i in range(extra):  # s32, s64 downBlocks
            layers.append(down_block(ndf * 8 * 2**i, ndf * 16 * 2**i))
        for i in reversed(range(extra)):  # back to 8 ndf with Block3x3s
            layers.append(block3x3(ndf * 16 * 2**i, ndf * 8 * 2**i))
        self.encode = nn.Sequential(*layers)
        self.uncond = Logits(ndf, nef, conditional=False)
        self.cond = Logits(ndf, nef, conditional=True)
        init_weights(self)

    def forward(self, images: Tensor) -> Tensor:
        return self.encode(images)


class AttnGANDiscriminator(nn.Module):
    """The per-stage discriminators (64, 128, 256 for 3 stages) as one module:
    (images of each stage, sentence) -> [(uncond (N,), cond (N,)) per stage]."""

    def __init__(self, df_dim: int = 64, nef: int = 256, branch_num: int = 3) -> None:
        super().__init__()
        self.stages = nn.ModuleList(
            [StageDiscriminator(df_dim, nef, extra=i) for i in range(branch_num)]
        )

    def stage_list(self) -> list[StageDiscriminator]:
        """The per-stage discriminators, smallest first."""
        return [cast(StageDiscriminator, d) for d in self.stages]

    def forward(self, images: list[Tensor], sentence: Tensor) -> list[tuple[Tensor, Tensor]]:
        out = []
        for d, x in zip(self.stage_list(), images, strict=True):
            h = d(x)
            out.append((d.uncond(h), d.cond(h, sentence)))
        return out


def init_weights(module: nn.Module) -> None:
    """weights_init: orthogonal (gain 1) conv / linear weights, linear biases 0, BN N(1, 0.02)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            if m.weight.device.type != "meta":
                nn.init.orthogonal_(m.weight, 1.0)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
