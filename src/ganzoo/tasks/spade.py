"""SPADE training (NVlabs/SPADE models/pix2pix_model.py, trainers/pix2pix_trainer.py).

Per iteration, as the official trainer: a generator step (hinge GAN + feature
matching x lambda_feat / num_D + VGG x lambda_vgg [+ KL x lambda_kld]), then a
discriminator step on a freshly generated, detached fake (D loss = D_fake + D_real).
Fake and real go through D in one forward, concatenated along the batch.

Initialisation (issue 14 item 1): the official create_network moves each net to the GPU before
init_weights, so its xavier(0.02) init never reaches the weights of the spectral-norm convs
(they keep PyTorch's default init; ganzoo.nn.init). That is how every published SPADE number was
trained, and the default here (init_sn_weights false); init_sn_weights true is the code as
written (and as it runs on CPU).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ganzoo.core.image import colorize_labels
from ganzoo.data.batch import Batch
from ganzoo.losses.adversarial import d_loss, g_loss
from ganzoo.losses.feature_matching import feature_matching
from ganzoo.losses.kl import kl_divergence
from ganzoo.nn.init import init_weights
from ganzoo.nn.semantic import instance_edges, one_hot_labels
from ganzoo.tasks.base import GANTask, Phase


class SpadeTask(GANTask):
    """SPADE / GauGAN on any dataset with label maps (and optionally instance maps)."""

    needs = ("image", "label_map")  # at least (checked before build)

    def __init__(
        self,
        generator: nn.Module,  # ganzoo.models.spade.SPADEGenerator
        discriminator: nn.Module,  # MultiscaleDiscriminator (num_D 2, n_layers 4, SN + IN)
        optim: dict[str, Any],  # conf/optim (spade_paper | spade_code | spade_no_ttur)
        ema: dict[str, Any],  # EMA generator settings
        total_iterations: int,  # run length, for the lr decay
        label_nc: int,  # semantic classes (ADE20K 150)
        contain_dontcare_label: bool,  # one more label channel (ADE20K "other", COCO unlabeled)
        use_instance_edges: bool,  # concatenate the instance boundary map
        use_vae: bool,  # encode the real image to z (multimodal synthesis)
        encoder: Callable[[], nn.Module],  # builds the ConvEncoder (called only with use_vae)
        perceptual: Callable[[], nn.Module],  # builds the VGG loss (called only if lambda_vgg > 0)
        gan_mode: str = "hinge",  # SPADE default
        lambda_feat: float = 10.0,  # feature matching weight
        lambda_vgg: float = 10.0,  # VGG perceptual weight
        lambda_kld: float = 0.05,  # KL weight
        init_type: str = "xavier",  # SPADE --init_type
        init_gain: float = 0.02,  # SPADE --init_variance
        init_sn_weights: bool = False,  # init reaches SN weights (as written / CPU); False: GPU
    ) -> None:
        enc = encoder() if use_vae else None
        for net in (generator, discriminator, enc):
            if net is not None:
                init_weights(net, init_type, init_gain, init_sn_weights)  # type: ignore[arg-type]
        super().__init__(generator, discriminator, optim, ema, total_iterations)
        self.encoder = enc
        self.vgg = perceptual() if lambda_vgg > 0 else None
        self.file_modules.add("vgg")
        self.label_channels = label_nc + int(contain_dontcare_label)
        self.use_instance_edges = use_instance_edges
        self.use_vae = use_vae
        self.gan_mode = gan_mode
        self.lambda_feat = lambda_feat
        self.lambda_vgg = lambda_vgg
        self.lambda_kld = lambda_kld

    def required_fields(self) -> tuple[str, ...]:
        return ("image", "label_map") + (("instance_map",) if self.use_instance_edges else ())

    def phases(self) -> Sequence[Phase]:
        return (
            Phase("G", "G", "generator_loss", updates_ema=True),
            Phase("D", "D", "discriminator_loss"),
        )

    def generator_modules(self) -> list[nn.Module]:
        return [self.generator] + ([self.encoder] if self.encoder is not None else [])

    # ----- inputs -------------------------------------------------------------------
    def semantics(self, batch: Batch) -> Tensor:
        """One-hot labels (+ instance edges): (N, semantic_nc, H, W)."""
        assert batch.label_map is not None
        sem = one_hot_labels(batch.label_map, self.label_channels)
        if self.use_instance_edges:
            assert batch.instance_map is not None
            sem = torch.cat([sem, instance_edges(batch.instance_map)], dim=1)
        return sem

    def generate(self, sem: Tensor, real: Tensor) -> tuple[Tensor, Tensor | None]:
        """G(sem, z) with z from the encoder when use_vae; returns (fake, KL or None)."""
        if self.encoder is None:
            return self.generator(sem), None
        mu, logvar = self.encoder(real)
        z = mu + self.draw_noise(mu) * torch.exp(0.5 * logvar)  # reparameterisation
        return self.generator(sem, z), kl_divergence(mu, logvar)

    def draw_noise(self, mu: Tensor) -> Tensor:
        """The reparameterisation's N(0, I) draw, shaped as mu (the parity tests replay the
        official code's draws through it)."""
        return torch.randn_like(mu)

    def discriminate(self, sem: Tensor, fake: Tensor, real: Tensor) -> tuple[list, list]:
        """D on [sem, fake] and [sem, real] in one forward; per-scale feature lists of each."""
        x = torch.cat([torch.cat([sem, fake], 1), torch.cat([sem, real], 1)], dim=0)
        outputs = self.discriminator(x)
        n = fake.shape[0]
        pred_fake = [[f[:n] for f in scale] for scale in outputs]
        pred_real = [[f[n:] for f in scale] for scale in outputs]
        return pred_fake, pred_real

    # ----- losses -------------------------------------------------------------------
    def generator_loss(self, batch: Batch) -> dict[str, Tensor]:
        sem = self.semantics(batch)
        fake, kld = self.generate(sem, batch.image)
        pred_fake, pred_real = self.discriminate(sem, fake, batch.image)
        terms = {"gan": g_loss(self.gan_mode, [s[-1] for s in pred_fake], "mean")}
        if self.lambda_feat > 0:
            fm = feature_matching(pred_fake, pred_real, 1.0 / len(pred_fake))
            terms["feat"] = fm * self.lambda_feat
        if self.vgg is not None:
            terms["vgg"] = self.vgg(fake, batch.image) * self.lambda_vgg
        if kld is not None:
            terms["kld"] = kld * self.lambda_kld
        return terms

    def discriminator_loss(self, batch: Batch) -> dict[str, Tensor]:
        sem = self.semantics(batch)
        with torch.no_grad():
            fake, _ = self.generate(sem, batch.image)
        pred_fake, pred_real = self.discriminate(sem, fake.detach(), batch.image)
        terms = d_loss(
            self.gan_mode, [s[-1] for s in pred_real], [s[-1] for s in pred_fake], "mean"
        )
        return {"fake": terms["fake"], "real": terms["real"]}

    # ----- sampling and description --------------------------------------------------
    def networks(self) -> dict[str, nn.Module]:
        nets = super().networks()
        if self.encoder is not None:
            nets["E"] = self.encoder
        return nets

    def generator_inputs(self, batch: Batch, latents: Tensor | None) -> tuple[Tensor, ...]:
        sem = self.semantics(batch)
        if not self.use_vae:
            return (sem,)
        if latents is None:
            latents = torch.randn(sem.shape[0], self.z_dim, device=sem.device)
        return sem, latents[: sem.shape[0]]

    def discriminator_inputs(self, batch: Batch, images: Tensor) -> tuple[Tensor, ...]:
        return (torch.cat([self.semantics(batch), images], dim=1),)

    @property
    def z_dim(self) -> int:
        return int(self.generator.z_dim)  # type: ignore[arg-type]

    def sample_latents(self, n: int, generator: torch.Generator | None) -> Tensor | None:
        if not self.use_vae:
            return None
        return torch.randn(n, self.z_dim, generator=generator, device=self.iteration.device)

    def grid_columns(self, batch: Batch, fake: Tensor) -> list[tuple[str, Tensor]]:
        assert batch.label_map is not None
        labels = colorize_labels(batch.label_map, self.label_channels)
        return [("label map", labels), ("EMA generator", fake), ("real", batch.image)]
