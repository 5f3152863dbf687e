"""AttnGAN training (taoxugit/AttnGAN code/trainer.py, code/miscc/losses.py).

The DAMSM encoders come from a model=damsm run (`damsm_ckpt`, loaded at the start of training)
and stay frozen in eval mode: the text encoder gives word features (N, 256, T) and the sentence
feature, the image encoder scores the last stage's images. Per iteration (trainer.py:269-299):

    D, each stage i with real images resized to its size (64, 128, 256), s = sentence feature:
        (BCE(D_i(x), 1) + BCE(D_i(x, s), 1)) / 2
        + (BCE(D_i(G_i), 0) + BCE(D_i(G_i, s), 0) + BCE(D_i(x_{j}, s_{j+1}), 0)) / 3
      ("wrong": real image j with caption j + 1); the stages' losses summed (each D has its own
      Adam in the official code; one Adam over all three is the same update).
    G, after D, with the same z and CA noise:
        sum_i [BCE(D_i(G_i), 1) + BCE(D_i(G_i, s), 1)]
        + lambda (w_loss0 + w_loss1 + s_loss0 + s_loss1) of the DAMSM on the last stage
        + KL(mu, logvar) (mean)
    EMA of G: 0.999 per step (the saved, sampled weights).

As the official loop (trainer.py:262-300): each training batch is first sorted by caption
length, longest first (`sort_by_length`; prepare_data), so the "wrong" pairs are neighbours by
length; G runs once per iteration, in train mode, and its images serve both phases (the D phase
reads them detached, the G phase back-propagates through them), so G's BatchNorm running
statistics move once per iteration; the real images of the smaller stages are PIL bilinear
resizes of the uint8 image (`real_resize: pil`, datasets.py get_imgs: transforms.Scale), or an
antialiased tensor resize (`antialias`).

lambda: 5 (CUB), 50 (COCO). Adam 2e-4, betas (0.5, 0.999) for G and D.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from ganzoo.core.errors import ConfigError
from ganzoo.data.batch import Batch
from ganzoo.losses.damsm import ca_kl, sentence_loss, word_loss
from ganzoo.models.attngan import AttnGANDiscriminator, AttnGANGenerator
from ganzoo.models.damsm import DAMSM
from ganzoo.tasks.base import GANTask, Phase
from ganzoo.tasks.damsm import load_damsm_state


def bce(p: Tensor, target: float) -> Tensor:
    """nn.BCELoss on probabilities, in float32 with autocast off."""
    with torch.autocast(device_type=p.device.type, enabled=False):
        p = p.float()
        return F.binary_cross_entropy(p, torch.full_like(p, target))


class AttnGANTask(GANTask):
    """Text-to-image with the attentional generator tree and per-stage discriminators."""

    needs = ("image", "caption_tokens", "caption_lengths")

    def __init__(
        self,
        generator: AttnGANGenerator,
        discriminator: AttnGANDiscriminator,
        damsm: DAMSM,  # the encoders of the model=damsm run (same settings and vocabulary)
        optim: dict[str, Any],  # conf/optim/attngan.yaml: Adam 2e-4, betas (0.5, 0.999)
        ema: dict[str, Any],  # EMA generator: decay 0.999 (trainer.py:298-299)
        total_iterations: int,
        resolution: int,  # data.resolution: the last stage's size (64 x 2^(branch_num - 1))
        damsm_ckpt: str | None = None,  # checkpoint of a model=damsm run (required to train)
        allow_untrained_damsm: bool = False,  # train with random encoders (tests, smoke runs)
        lambda_damsm: float = 5.0,  # TRAIN.SMOOTH.LAMBDA: 5 CUB, 50 COCO
        gamma1: float = 4.0,
        gamma2: float = 5.0,
        gamma3: float = 10.0,
        mask_same_class: bool = True,  # DAMSM loss: pairs of the same class_id are not negatives
        sort_by_length: bool = True,  # sort each training batch by caption length (official)
        real_resize: str = "pil",  # smaller stages' real images: "pil" (official) | "antialias"
        perceptual: Callable[[], Any] | None = None,  # unused: ganzoo.info passes it to every task
    ) -> None:
        super().__init__(generator, discriminator, optim, ema, total_iterations)
        final = 64 * 2 ** (generator.branch_num - 1)
        if resolution != final:
            raise ConfigError(
                f"model=attngan with branch_num {generator.branch_num} makes {final}x{final} "
                f"images; data.resolution is {resolution}"
            )
        if len(discriminator.stages) != generator.branch_num:
            raise ConfigError(
                f"AttnGAN has {generator.branch_num} generator stages and "
                f"{len(discriminator.stages)} discriminators"
            )
        if damsm.text_encoder.embedding_dim != generator.nef:
            raise ConfigError(
                f"DAMSM embedding_dim {damsm.text_encoder.embedding_dim} != generator nef "
                f"{generator.nef}"
            )
        self.damsm = damsm
        self.damsm.requires_grad_(False)
        self.damsm_ckpt = damsm_ckpt
        self.allow_untrained_damsm = allow_untrained_damsm
        self.lambda_damsm = lambda_damsm
        self.gammas = (gamma1, gamma2, gamma3)
        self.mask_same_class = mask_same_class
        if real_resize not in ("pil", "antialias"):
            raise ConfigError(f"real_resize must be pil or antialias; got {real_resize!r}")
        self.sort_by_length = sort_by_length
        self.real_resize = real_resize
        self._step_fakes: tuple[Batch, list[Tensor], Tensor, Tensor] | None = None
        self.sizes = [64 * 2**i for i in range(generator.branch_num)]
        self._noise: tuple[tuple[int, int], Tensor] | None = None

    @property
    def g(self) -> AttnGANGenerator:
        assert isinstance(self.generator, AttnGANGenerator)
        return self.generator

    @property
    def d(self) -> AttnGANDiscriminator:
        assert isinstance(self.discriminator, AttnGANDiscriminator)
        return self.discriminator

    def phases(self) -> Sequence[Phase]:
        return (
            Phase("D", "D", "discriminator_loss"),
            Phase("G", "G", "generator_loss", updates_ema=True),
        )

    def networks(self) -> dict[str, nn.Module]:
        nets: dict[str, nn.Module] = {"G": self.generator, "D": self.discriminator}
        for size, d in zip(self.sizes, self.d.stages, strict=True):
            nets[f"D{size}"] = d
        return nets

    def setup(self, stage: str) -> None:
        if stage != "fit":
            return
        if self.damsm_ckpt is not None:
            load_damsm_state(str(self.damsm_ckpt), self.damsm)
        elif not self.allow_untrained_damsm:
            raise ConfigError(
                "model=attngan needs model.damsm_ckpt=PATH (checkpoints/last.ckpt of a "
                "model=damsm run on the same data), or model.allow_untrained_damsm=true"
            )
        self.damsm.requires_grad_(False)

    def train(self, mode: bool = True) -> AttnGANTask:
        super().train(mode)
        self.damsm.eval()  # frozen encoders: no dropout, BN running statistics
        return self

    # ----- inputs ----------------------------------------------------------------------
    @torch.no_grad()
    def encode_text(self, tokens: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(words (N, 256, T'), sentence (N, 256), padding mask (N, T')) of the frozen encoder."""
        self.damsm.eval()  # Lightning may set submodules' modes one by one: keep these frozen
        words, sentence = self.damsm.text_encoder(tokens, lengths)
        mask = tokens[:, : words.shape[2]] == 0
        mask[:, 0] = False  # an empty caption reads as one padding word (the encoder's length 1)
        return words.detach(), sentence.detach(), mask

    def noise(self, batch: Batch) -> Tensor:
        """z and the CA noise (N, z_dim + c_dim), drawn once per iteration (shared by D and G)."""
        key = (int(self.iteration), batch.image.data_ptr())
        if self._noise is None or self._noise[0] != key:
            n = batch.size
            dim = self.g.z_dim + self.g.ca_net.c_dim
            self._noise = (key, torch.randn(n, dim, device=batch.image.device))
        return self._noise[1]

    def sample_latents(self, n: int, generator: torch.Generator | None) -> Tensor:
        return torch.randn(n, self.g.z_dim + self.g.ca_net.c_dim, generator=generator)

    def generator_inputs(self, batch: Batch, latents: Tensor | None) -> tuple[Tensor, ...]:
        assert batch.caption_tokens is not None and batch.caption_lengths is not None
        words, sentence, mask = self.encode_text(batch.caption_tokens, batch.caption_lengths)
        if latents is None:
            latents = self.sample_latents(batch.size, None).to(batch.image.device)
        z, eps = latents[:, : self.g.z_dim], latents[:, self.g.z_dim :]
        return z, sentence, words, mask, eps

    def discriminator_inputs(self, batch: Batch, images: Tensor) -> tuple[Tensor, ...]:
        raise NotImplementedError("AttnGAN's discriminators take a list of stage images")

    def real_stages(self, image: Tensor) -> list[Tensor]:
        """The real image at each stage's size (the dataset's per-stage resize)."""
        if self.real_resize == "pil":
            return [image if s == image.shape[-1] else pil_resize(image, s) for s in self.sizes]
        return [
            image
            if s == image.shape[-1]
            else F.interpolate(image, size=(s, s), mode="bilinear", antialias=True)
            for s in self.sizes
        ]

    def class_ids(self, batch: Batch) -> Tensor | None:
        return batch.class_id if self.mask_same_class else None

    # ----- the iteration ---------------------------------------------------------------
    def training_step(self, batch: Batch, batch_idx: int) -> None:
        """Sort the batch by caption length, run G once (train mode, with its graph) before
        the phases toggle any parameters off, then the D and G phases on those images."""
        if self.sort_by_length:
            batch = sort_by_caption_length(batch)
        self._step_fakes = (batch, *self._generate(batch))
        try:
            super().training_step(batch, batch_idx)
        finally:
            self._step_fakes = None

    def _generate(self, batch: Batch) -> tuple[list[Tensor], Tensor, Tensor]:
        z, sentence, words, mask, eps = self.generator_inputs(batch, self.noise(batch))
        fakes, _, mu, logvar = self.generator(z, sentence, words, mask, eps)
        return fakes, mu, logvar

    def fakes(self, batch: Batch) -> tuple[list[Tensor], Tensor, Tensor]:
        """(stage images, mu, logvar) of this iteration's one G run (a fresh run when the loss
        is called outside training_step)."""
        if self._step_fakes is not None and self._step_fakes[0] is batch:
            return self._step_fakes[1:]
        return self._generate(batch)

    @torch.no_grad()
    def _update_ema(self, batch_size: int) -> None:
        """trainer.py:298-299: avg_p.mul_(0.999).add_(0.001, p) on G's parameters, in that
        rounding (a lerp rounds differently); buffers are G's (the saved netG file's are).
        A half-life or ramp-up schedule goes through the shared EMA instead."""
        spec = self.ema_spec
        if spec.half_life_kimg is not None or spec.rampup is not None:
            super()._update_ema(batch_size)
            return
        beta = spec.decay if int(self.iteration) >= spec.start_iteration else 0.0
        ema, g = self.generator_ema, self.generator
        for p_ema, p in zip(ema.parameters(), g.parameters(), strict=True):
            p_ema.mul_(beta).add_(p.detach(), alpha=1.0 - beta)
        for b_ema, b in zip(ema.buffers(), g.buffers(), strict=True):
            b_ema.copy_(b)

    # ----- losses ----------------------------------------------------------------------
    def discriminator_loss(self, batch: Batch) -> dict[str, Tensor]:
        fakes, _, _ = self.fakes(batch)
        _, sentence, _ = self.encode_text(batch.caption_tokens, batch.caption_lengths)  # type: ignore[arg-type]
        terms: dict[str, Tensor] = {}
        for i, (d, real, fake) in enumerate(
            zip(self.d.stage_list(), self.real_stages(batch.image), fakes, strict=True)
        ):
            # in the official order (losses.py discriminator_loss): the same autograd graph
            h_real, h_fake = d(real), d(fake.detach())
            cond_real = bce(d.cond(h_real, sentence), 1.0)
            cond_fake = bce(d.cond(h_fake, sentence), 0.0)
            fake_term = None
            if batch.size > 1:  # "wrong": real image j with caption j + 1
                fake_term = bce(d.cond(h_real[:-1], sentence[1:]), 0.0)
            real_logits, fake_logits = d.uncond(h_real), d.uncond(h_fake)
            real_term, fake_uncond = bce(real_logits, 1.0), bce(fake_logits, 0.0)
            fakes_sum = fake_uncond + cond_fake
            if fake_term is not None:
                fakes_sum = fakes_sum + fake_term
            terms[f"D{self.sizes[i]}"] = (real_term + cond_real) / 2.0 + fakes_sum / 3.0
        return terms

    def generator_loss(self, batch: Batch) -> dict[str, Tensor]:
        fakes, mu, logvar = self.fakes(batch)
        words, sentence, _ = self.encode_text(batch.caption_tokens, batch.caption_lengths)  # type: ignore[arg-type]
        terms: dict[str, Tensor] = {}
        for i, (d, fake) in enumerate(zip(self.d.stage_list(), fakes, strict=True)):
            h = d(fake)
            cond = bce(d.cond(h, sentence), 1.0)
            terms[f"G{self.sizes[i]}"] = bce(d.uncond(h), 1.0) + cond
        regions, code = self.damsm.image_encoder(fakes[-1])
        g1, g2, g3 = self.gammas
        ids = self.class_ids(batch)
        assert batch.caption_lengths is not None
        lengths = batch.caption_lengths.clamp(min=1)  # an empty caption: one padding word
        w0, w1, _ = word_loss(regions, words, lengths, ids, g1, g2, g3)
        s0, s1 = sentence_loss(code, sentence, ids, g3)
        terms["damsm_w"] = self.lambda_damsm * (w0 + w1)
        terms["damsm_s"] = self.lambda_damsm * (s0 + s1)
        terms["kl"] = ca_kl(mu, logvar)
        return terms

    # ----- sampling ----------------------------------------------------------------------
    def sample(self, generator: nn.Module, batch: Batch, latents: Tensor | None) -> Tensor:
        return generator(*self.generator_inputs(batch, latents))[0][-1]

    def grid_columns(self, batch: Batch, fake: Tensor) -> list[tuple[str, Tensor]]:
        return [("generated", fake), ("real", batch.image)]

    @torch.no_grad()
    def caption_images(
        self, tokens: Tensor, lengths: Tensor, latents: Tensor
    ) -> tuple[list[Tensor], list[Tensor]]:
        """The EMA generator's images of each stage and attention maps (N, T, h, w) of stages
        2.. for captions tokens (N, T) with lengths (N,)."""
        net = self.generator_ema
        was = net.training
        net.eval()
        try:
            batch = Batch(
                image=latents.new_zeros(len(tokens), 3, 1, 1),
                caption_tokens=tokens,
                caption_lengths=lengths,
            )
            images, maps, _, _ = net(*self.generator_inputs(batch, latents))
        finally:
            net.train(was)
        return images, maps

    evaluation_views = ("text_image_codes",)

    def evaluation_view(self, view: str, batch: Batch, images: Tensor) -> Any:
        """The "text_image_codes" view: (DAMSM global features of the generated `images` (N, 256),
        sentence features of the captions they were made from (N, 256)), metrics=rprecision."""
        if view != "text_image_codes":
            return super().evaluation_view(view, batch, images)
        assert batch.caption_tokens is not None and batch.caption_lengths is not None
        self.damsm.eval()
        _, code = self.damsm.image_encoder(images)
        _, sentence, _ = self.encode_text(batch.caption_tokens, batch.caption_lengths)
        return code, sentence

    def io_shapes(self, batch: Batch) -> dict[str, dict[str, Any]]:
        was = self.generator.training
        self.generator.eval()
        self.discriminator.eval()
        try:
            with torch.no_grad():
                g_in = self.generator_inputs(
                    batch, self.sample_latents(batch.size, None).to(batch.image.device)
                )
                images, maps, _, _ = self.generator(*g_in)
                d_out = self.discriminator(images, g_in[1])
        finally:
            self.generator.train(was)
            self.discriminator.train(was)
        return {
            "G": {
                "inputs": [list(t.shape) for t in g_in],
                "output": [list(x.shape) for x in images],
                "attention": [list(m.shape) for m in maps],
            },
            "D": {
                "inputs": [list(x.shape) for x in images],
                "output": [[list(u.shape), list(c.shape)] for u, c in d_out],
            },
        }

    # ----- export ------------------------------------------------------------------------
    def export_module(self) -> nn.Module:
        """What `ganzoo.export` writes: the EMA generator's last-stage image from precomputed
        text features (the DAMSM text encoder stays outside; inputs in _ExportedGenerator)."""
        return _ExportedGenerator(self.generator_ema)


class _ExportedGenerator(nn.Module):
    """(z (N, z_dim), sentence (N, nef), words (N, nef, T), mask (N, T) bool, True on padding,
    ca_noise (N, c_dim)) -> the last stage's images (N, 3, H, W) in [-1, 1], deterministic.

    sentence / words / mask are what `AttnGANTask.generator_inputs` gives for 0-padded captions
    of the data's caption length T (the longest caption fills T); ca_noise is N(0, I)."""

    def __init__(self, generator: nn.Module) -> None:  # an AttnGANGenerator
        super().__init__()
        self.generator = generator

    def forward(
        self, z: Tensor, sentence: Tensor, words: Tensor, mask: Tensor, ca_noise: Tensor
    ) -> Tensor:
        return self.generator(z, sentence, words, mask, ca_noise)[0][-1]


def sort_by_caption_length(batch: Batch) -> Batch:
    """The batch reordered by caption length, longest first (datasets.py prepare_data:
    torch.sort(lengths, 0, True); stable here, so ties keep their order on every device)."""
    assert batch.caption_lengths is not None
    order = torch.sort(batch.caption_lengths, stable=True, dim=0, descending=True)[1]
    return batch[order]


def pil_resize(image: Tensor, size: int) -> Tensor:
    """images (N, 3, H, W) in [-1, 1] on the uint8 grid -> (N, 3, size, size): each image as
    uint8, PIL bilinear resize (torchvision Scale / Resize on a PIL image), then ToTensor and
    Normalize(0.5, 0.5) as the official dataset (datasets.py:73-80, 99-101)."""
    u8 = ((image.detach().float() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
    arrays = u8.permute(0, 2, 3, 1).cpu().numpy()
    bilinear = Image.Resampling.BILINEAR
    out = np.stack([np.asarray(Image.fromarray(a).resize((size, size), bilinear)) for a in arrays])
    x = torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()  # NCHW memory, as ToTensor
    x = x.float().div(255).sub(0.5).div(0.5)
    return x.to(image.device, image.dtype)
