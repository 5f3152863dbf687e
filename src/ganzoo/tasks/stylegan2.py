"""StyleGAN2 training (stylegan2-ada-pytorch training/loss.py StyleGAN2Loss, training_loop.py).

Phases per iteration, in the official order (training_loop.py:197-208):

    G       non-saturating logistic loss softplus(-D(G(z)))                       every 1
    G_reg   path-length penalty x pl_weight (lazy: x pl_interval)                 every 4
    D       softplus(D(G(z))) + softplus(-D(x)); then the EMA of G                 every 1
    D_reg   R1 = gamma / 2 * ||grad_x D(x)||^2 on reals (lazy: x r1_interval)      every 16

The lazy-regularisation scaling of the loss and of Adam's lr and betas is GANTask's
(`Phase.lazy`); as in loss.py, the regularisers add `image * 0` / `logits * 0` so that every
parameter gets a (zero) gradient and Adam steps it. Generated images use style mixing
(probability 0.9: a second w after a random crossover layer, loss.py:38-48). Every image D
sees goes through the augmentation: ADA's pipeline with probability p (a checkpointed buffer,
adjusted every ada_interval iterations from r_t = E[sign(D(real))], training_loop.py:311-315)
or DiffAugment. Samples use the truncation trick (psi, cutoff) and, by default, the constant
noise inputs (generate.py). Class-conditional: the labels of generated images are drawn i.i.d.
from the dataset's label frequencies (`class_counts`, see `on_fit_start`), as the official
draws labels of random dataset images.
`draw_latents`, `generate` and `style_mix` are the hooks of `python -m ganzoo.sample`
(action=generate | mix | interpolate; see ganzoo.sample).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal, cast, get_args

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganzoo.core.errors import ConfigError
from ganzoo.data.batch import Batch
from ganzoo.losses.adversarial import d_loss, g_loss
from ganzoo.models.stylegan2 import Generator
from ganzoo.nn.augment import ada_adjust, diff_augment
from ganzoo.tasks.base import GANTask, Phase

Augment = Literal["none", "ada", "diffaugment"]
NoiseMode = Literal["random", "const", "none"]


class StyleGAN2Task(GANTask):
    """StyleGAN2 (config F by default) with optional class conditioning, ADA or DiffAugment."""

    pl_mean: Tensor
    augment_p: Tensor
    ada_sign_sum: Tensor
    ada_sign_count: Tensor
    class_counts: Tensor

    def __init__(
        self,
        generator: Callable[..., nn.Module],  # ganzoo.models.stylegan2.Generator, given c_dim
        discriminator: Callable[..., nn.Module],  # ganzoo.models.stylegan2.Discriminator, c_dim
        optim: dict[str, Any],  # conf/optim/stylegan2.yaml (Adam 0.002, betas 0 / 0.99)
        ema: dict[str, Any],  # EMA with a half-life in kimg (config F: 10) and optional ramp-up
        total_iterations: int,  # run length
        conditional: bool,  # class-conditional G and D on one-hot class_id (config F: false)
        num_classes: int | None,  # data.num_classes: the label size c_dim when conditional
        r1_gamma: float,  # R1 weight gamma (config F: 10)
        r1_interval: int,  # lazy R1 every N minibatches (16)
        pl_weight: float,  # path-length weight (2; 0 = off)
        pl_interval: int,  # lazy path-length every N minibatches (4)
        pl_batch_shrink: int,  # path-length batch = batch // shrink (2)
        pl_decay: float,  # decay of the running mean path length (0.01)
        style_mixing_prob: float,  # probability of mixing two ws (0.9)
        augment: Augment,  # none | ada | diffaugment (config F: none, i.e. --aug=noaug)
        augment_pipe: Callable[[], nn.Module],  # builds ADA's AugmentPipe (called with ada)
        augment_p: float,  # initial ADA probability (0)
        ada_target: float | None,  # r_t target (0.6); None = p stays fixed (--aug=fixed)
        ada_interval: int,  # adjust p every N iterations (4)
        ada_kimg: float,  # kimg for p to move by 1 (500)
        diffaugment_policy: str,  # DiffAugment policy ('color,translation,cutout')
        truncation_psi: float,  # sampling: w = w_avg + psi (w - w_avg) (1 = off)
        truncation_cutoff: int | None,  # sampling: truncate only the first ws (None = all)
        sample_noise_mode: NoiseMode,  # samples' noise inputs: const (generate.py) | random | none
        perceptual: Callable[[], Any] | None = None,  # unused: ganzoo.info passes it to every task
    ) -> None:
        if augment not in get_args(Augment):
            valid = ", ".join(get_args(Augment))
            raise ConfigError(f"unknown model.augment={augment}; valid: {valid}")
        if sample_noise_mode not in get_args(NoiseMode):
            valid = ", ".join(get_args(NoiseMode))
            raise ConfigError(
                f"unknown model.sample_noise_mode={sample_noise_mode}; valid: {valid}"
            )
        if conditional and not num_classes:
            raise ConfigError(
                "model.conditional=true needs a dataset with class_id (data.num_classes is not set)"
            )
        c_dim = int(num_classes) if conditional and num_classes else 0
        super().__init__(
            generator(c_dim=c_dim), discriminator(c_dim=c_dim), optim, ema, total_iterations
        )
        self.c_dim = c_dim
        self.z_dim = self.g.z_dim
        self.r1_gamma, self.r1_interval = r1_gamma, r1_interval
        self.pl_weight, self.pl_interval = pl_weight, pl_interval
        self.pl_batch_shrink, self.pl_decay = pl_batch_shrink, pl_decay
        self.style_mixing_prob = style_mixing_prob
        self.augment = augment
        self.augment_pipe = augment_pipe() if augment == "ada" else None
        self.ada_target, self.ada_interval, self.ada_kimg = ada_target, ada_interval, ada_kimg
        self.diffaugment_policy = diffaugment_policy
        diff_augment(torch.zeros(1, 3, 8, 8), diffaugment_policy)  # an unknown policy fails now
        self.truncation_psi, self.truncation_cutoff = truncation_psi, truncation_cutoff
        self.sample_noise_mode: NoiseMode = sample_noise_mode
        # training state that a resume needs (saved in checkpoints with the weights):
        self.register_buffer("pl_mean", torch.zeros([]))  # running mean path length
        self.register_buffer("augment_p", torch.tensor(float(augment_p)))  # ADA probability p
        self.register_buffer("ada_sign_sum", torch.zeros([]))  # sum of sign(D(real)) ...
        self.register_buffer("ada_sign_count", torch.zeros([]))  # ... over this many logits
        if c_dim > 0:  # how often each class occurs in the data: fake labels follow it
            self.register_buffer("class_counts", torch.zeros(c_dim, dtype=torch.long))
        self.observe_labels = True  # count the real batches' labels (no dataset list known)

    @property
    def g(self) -> Generator:
        """The trained generator, typed."""
        return cast(Generator, self.generator)

    @property
    def g_ema(self) -> Generator:
        """The EMA generator, typed."""
        return cast(Generator, self.generator_ema)

    def required_fields(self) -> tuple[str, ...]:
        return ("image", "class_id") if self.c_dim > 0 else ("image",)

    def phases(self) -> Sequence[Phase]:
        phases = [Phase("G", "G", "generator_loss")]
        if self.pl_weight > 0:
            phases.append(
                Phase("G_reg", "G", "path_length_loss", every=self.pl_interval, lazy=True)
            )
        # the EMA follows G once both G phases of the iteration ran (training_loop.py:296-305)
        phases.append(Phase("D", "D", "discriminator_loss", updates_ema=True))
        if self.r1_gamma > 0:
            phases.append(Phase("D_reg", "D", "r1_loss", every=self.r1_interval, lazy=True))
        return phases

    # ----- networks with mixing and augmentation ---------------------------------------
    def labels(self, batch: Batch) -> Tensor | None:
        """One-hot class labels (N, c_dim) of the real images, or None when unconditional."""
        if self.c_dim == 0:
            return None
        assert batch.class_id is not None
        return F.one_hot(batch.class_id, self.c_dim).float()

    def fake_labels(self, batch: Batch) -> Tensor | None:
        """One-hot labels (N, c_dim) for generated images, drawn i.i.d. from the dataset's
        labels (the official draws the labels of random dataset images, training_loop.py:265),
        not paired with the reals; None when unconditional."""
        if self.c_dim == 0:
            return None
        if self.observe_labels and int(self.class_counts.sum()) == 0:  # a loss outside fit
            assert batch.class_id is not None
            self.class_counts += torch.bincount(batch.class_id, minlength=self.c_dim)
        return F.one_hot(self.draw_fake_class(batch.size), self.c_dim).float()

    def draw_fake_class(self, n: int) -> Tensor:
        """n class ids drawn i.i.d. with the frequencies of `class_counts`."""
        counts = self.class_counts.float()
        if float(counts.sum()) == 0:
            raise ConfigError("no class labels known yet: set_class_distribution() before training")
        return torch.multinomial(counts, n, replacement=True)

    def set_class_distribution(self, counts: Tensor) -> None:
        """The dataset's label histogram (c_dim,): fake labels follow it from now on."""
        assert counts.shape == (self.c_dim,), (tuple(counts.shape), self.c_dim)
        self.class_counts.copy_(counts.to(self.class_counts))
        self.observe_labels = False

    def on_fit_start(self) -> None:
        """Fake labels follow the dataset's labels: a dataset that lists them (`targets`:
        image folders, ImageNet) gives the exact histogram; otherwise (the procedural scenes)
        the task counts the labels of the real batches it trains on, a histogram that is
        saved in checkpoints and converges to the dataset's (the stream samples it
        uniformly). Sampling never needs it: labels are then given."""
        super().on_fit_start()
        if self.c_dim == 0:
            return
        datamodule = getattr(self.trainer, "datamodule", None)
        targets = getattr(getattr(datamodule, "train_set", None), "targets", None)
        if targets is not None:
            ids = torch.as_tensor(np.asarray(targets), dtype=torch.long)
            self.set_class_distribution(torch.bincount(ids, minlength=self.c_dim)[: self.c_dim])

    def draw_z(self, n: int) -> Tensor:
        return torch.randn(n, self.z_dim, device=self.iteration.device)

    def mapping_with_mixing(self, z: Tensor, c: Tensor | None) -> Tensor:
        """ws (N, num_ws, w_dim); with probability style_mixing_prob the layers from a random
        crossover in [1, num_ws) take the w of a second z (loss.py:38-48)."""
        mapping = self.g.mapping
        ws = mapping(z, c)
        if self.style_mixing_prob > 0:
            num_ws = ws.shape[1]
            cutoff = torch.randint(1, num_ws, (), device=ws.device)
            mix = torch.rand([], device=ws.device) < self.style_mixing_prob
            cutoff = torch.where(mix, cutoff, torch.full_like(cutoff, num_ws))
            ws2 = mapping(torch.randn_like(z), c, skip_w_avg_update=True)
            layer = torch.arange(num_ws, device=ws.device).view(1, -1, 1)
            ws = torch.where(layer < cutoff, ws, ws2)
        return ws

    def run_generator(self, z: Tensor, c: Tensor | None) -> tuple[Tensor, Tensor]:
        """Images (N, 3, R, R) and their ws (N, num_ws, w_dim) from the trained G."""
        ws = self.mapping_with_mixing(z, c)
        return self.g.synthesis(ws), ws

    def augment_images(self, images: Tensor) -> Tensor:
        """What D sees: ADA with probability p, DiffAugment, or the images themselves."""
        if self.augment_pipe is not None:
            return self.augment_pipe(images, self.augment_p)
        if self.augment == "diffaugment":
            return diff_augment(images, self.diffaugment_policy)
        return images

    def run_discriminator(self, images: Tensor, c: Tensor | None) -> Tensor:
        """Logits (N, 1) of the augmented images."""
        x = self.augment_images(images)
        return self.discriminator(x) if c is None else self.discriminator(x, c)

    def record_real_signs(self, real_logits: Tensor) -> None:
        """Accumulate sign(D(real)) for ADA's r_t (the official Loss/signs/real statistic)."""
        self.ada_sign_sum += real_logits.detach().sign().sum().float()
        self.ada_sign_count += real_logits.numel()

    # ----- losses ----------------------------------------------------------------------
    def generator_loss(self, batch: Batch) -> dict[str, Tensor]:
        c = self.fake_labels(batch)
        fake, _ = self.run_generator(self.draw_z(batch.size), c)
        return {"gan": g_loss("nonsaturating", self.run_discriminator(fake, c), "mean")}

    def path_length_loss(self, batch: Batch) -> dict[str, Tensor]:
        """pl_weight * (|J_w^T y| - a)^2, y ~ N(0, I) / sqrt(H W), a the running mean
        length (Sec. 3.2; loss.py:77-92), on batch // pl_batch_shrink samples."""
        n = max(batch.size // self.pl_batch_shrink, 1)
        c = self.fake_labels(batch)
        with self.full_precision():
            fake, ws = self.run_generator(self.draw_z(n), None if c is None else c[:n])
            fake = fake.float()
            noise = torch.randn_like(fake) / math.sqrt(fake.shape[2] * fake.shape[3])
            (grads,) = torch.autograd.grad((fake * noise).sum(), ws, create_graph=True)
            lengths = grads.float().square().sum(2).mean(1).sqrt()  # (n,)
        pl_mean = self.pl_mean.lerp(lengths.mean(), self.pl_decay)
        self.pl_mean.copy_(pl_mean.detach())
        penalty = (lengths - pl_mean).square() * self.pl_weight  # (n,)
        # + image * 0 (loss.py:95): every G parameter gets a gradient, zero where the penalty
        # has none (the ToRGB biases), so Adam steps and decays them as the official
        return {"pl": (fake[:, 0, 0, 0] * 0 + penalty).mean()}

    def discriminator_loss(self, batch: Batch) -> dict[str, Tensor]:
        c_fake = self.fake_labels(batch)
        with torch.no_grad():
            fake, _ = self.run_generator(self.draw_z(batch.size), c_fake)
        fake_logits = self.run_discriminator(fake, c_fake)
        real_logits = self.run_discriminator(batch.image, self.labels(batch))
        self.record_real_signs(real_logits)
        terms = d_loss("nonsaturating", real_logits, fake_logits, "mean")
        return {"fake": terms["fake"], "real": terms["real"]}

    def r1_loss(self, batch: Batch) -> dict[str, Tensor]:
        """gamma / 2 * mean_i ||grad_x D(x_i)||^2 on reals (Mescheder et al. 2018; loss.py:120-126).
        The gradient is taken w.r.t. the images before augmentation, as the official."""
        real = batch.image.detach().float().requires_grad_(True)
        with self.full_precision():
            logits = self.run_discriminator(real, self.labels(batch)).float()
            self.record_real_signs(logits)
            (grads,) = torch.autograd.grad(logits.sum(), real, create_graph=True)
            penalty = grads.square().sum(dim=[1, 2, 3]) * (self.r1_gamma / 2)  # (N,)
        # + logits * 0 (loss.py:129, broadcast (N, 1) + (N,) as there): D's output bias, which
        # R1 does not reach, gets a zero gradient, so Adam steps it as the official
        return {"r1": (logits * 0 + penalty).mean()}

    # ----- the loop: ADA and gradient hygiene --------------------------------------------
    def training_step(self, batch: Batch, batch_idx: int) -> None:
        if self.c_dim > 0 and self.observe_labels:
            assert batch.class_id is not None
            self.class_counts += torch.bincount(batch.class_id, minlength=self.c_dim)
        super().training_step(batch, batch_idx)
        if self.augment != "ada":
            return
        if self.ada_target is not None and int(self.iteration) % self.ada_interval == 0:
            rt = self.ada_step(batch.size * self.trainer.world_size)
            if rt is not None:
                self.log("augment/rt", rt, on_step=True, batch_size=batch.size)
        self.log("augment/p", float(self.augment_p), on_step=True, batch_size=batch.size)

    def ada_step(self, images_per_iteration: int) -> float | None:
        """Adjust p from the signs gathered since the last call; returns r_t (None if none)."""
        assert self.ada_target is not None
        stats = torch.stack([self.ada_sign_sum, self.ada_sign_count])
        if self._trainer is not None:  # sum over processes (training_stats does in the official)
            stats = self.trainer.strategy.reduce(stats, reduce_op="sum")
        self.ada_sign_sum.zero_()
        self.ada_sign_count.zero_()
        if float(stats[1]) == 0:
            return None
        rt = float(stats[0] / stats[1])
        images = images_per_iteration * self.ada_interval
        self.augment_p.fill_(
            ada_adjust(float(self.augment_p), rt, self.ada_target, images, self.ada_kimg)
        )
        return rt

    def on_before_optimizer_step(self, optimizer: Any) -> None:
        """NaN/inf gradients -> 0 / +-1e5 before each step (training_loop.py:289-291), then
        GANTask's clipping (off in StyleGAN2's optim config)."""
        for group in optimizer.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    torch.nan_to_num(p.grad, nan=0.0, posinf=1e5, neginf=-1e5, out=p.grad)
        super().on_before_optimizer_step(optimizer)

    # ----- sampling and description ----------------------------------------------------
    def generator_inputs(self, batch: Batch, latents: Tensor | None) -> tuple[Tensor, ...]:
        z = self.draw_z(batch.size) if latents is None else latents[: batch.size]
        c = self.labels(batch)
        return (z,) if c is None else (z, c)

    def discriminator_inputs(self, batch: Batch, images: Tensor) -> tuple[Tensor, ...]:
        c = self.labels(batch)
        return (images,) if c is None else (images, c)

    def sample_latents(self, n: int, generator: torch.Generator | None) -> Tensor | None:
        return torch.randn(n, self.z_dim, generator=generator).to(self.iteration.device)

    def sample(self, generator: nn.Module, batch: Batch, latents: Tensor | None) -> Tensor:
        """Images with truncation (psi, cutoff) and the configured noise mode."""
        z, *c = self.generator_inputs(batch, latents)
        return generator(
            z,
            c[0] if c else None,
            truncation_psi=self.truncation_psi,
            truncation_cutoff=self.truncation_cutoff,
            noise_mode=self.sample_noise_mode,
        )

    def grid_columns(self, batch: Batch, fake: Tensor) -> list[tuple[str, Tensor]]:
        return [("EMA generator", fake), ("real", batch.image)]

    def export_module(self) -> nn.Module:
        """What `ganzoo.export` writes: G_ema with the run's truncation and constant noise."""
        return _ExportedGenerator(self.generator_ema, self.truncation_psi, self.truncation_cutoff)

    # ----- the latent-model hooks of ganzoo.sample -------------------------------------
    def draw_latents(self, seeds: list[int], truncation: float | None) -> Tensor:
        """z (len(seeds), z_dim), z of seed s = np.random.RandomState(s).randn(z_dim) as in the
        official generate.py, so a seed names the same z there and here. Truncation acts on w
        (in `generate`), so it is not used here."""
        for s in seeds:
            if not 0 <= s < 2**32:
                raise ConfigError(f"seeds must be in [0, 2**32); got {s}")
        z = np.stack([np.random.RandomState(s).randn(self.z_dim) for s in seeds])
        return torch.from_numpy(z).float().to(self.iteration.device)

    def class_labels(self, class_ids: Tensor | None) -> Tensor | None:
        """One-hot labels (N, c_dim) of class ids (N,); None for an unconditional model."""
        if self.c_dim == 0:
            if class_ids is not None:
                raise ConfigError("classes are for a class-conditional model (model.conditional)")
            return None
        if class_ids is None:
            raise ConfigError(f"this model is class-conditional: give classes in [0, {self.c_dim})")
        if bool(((class_ids < 0) | (class_ids >= self.c_dim)).any()):
            raise ConfigError(f"classes must be in [0, {self.c_dim}); got {class_ids.tolist()}")
        return F.one_hot(class_ids.to(self.iteration.device), self.c_dim).float()

    def ema_ws(self, latents: Tensor, c: Tensor | None, truncation: float | None) -> Tensor:
        """ws (N, num_ws, w_dim) of the EMA mapping network, truncated (psi, cutoff)."""
        psi = self.truncation_psi if truncation is None else float(truncation)
        mapping = self.g_ema.mapping
        with _eval_mode(mapping):  # w_avg stays as trained
            return mapping(latents, c, truncation_psi=psi, truncation_cutoff=self.truncation_cutoff)

    @torch.no_grad()
    def generate(
        self, latents: Tensor, class_ids: Tensor | None, truncation: float | None
    ) -> Tensor:
        """Images (N, 3, R, R) of the EMA generator for z (N, z_dim) and class ids (N,):
        psi = truncation (None = model.truncation_psi), cutoff = truncation_cutoff, noise
        inputs sample_noise_mode (generate.py: const)."""
        with _eval_mode(self.generator_ema):
            ws = self.ema_ws(latents, self.class_labels(class_ids), truncation)
            return self.g_ema.synthesis(ws, noise_mode=self.sample_noise_mode)

    @torch.no_grad()
    def style_mix(
        self,
        row_latents: Tensor,  # (R, z_dim): the sources of all other layers
        col_latents: Tensor,  # (C, z_dim): the sources of `layers`
        layers: list[int],  # indices of the ws taken from the column (style_mixing.py: 0-6)
        truncation: float | None,  # psi (None = model.truncation_psi)
        class_id: int | None = None,  # the class of every image (conditional models)
    ) -> Tensor:
        """(R * C, 3, H, W), image r * C + c = row r's ws with `layers` from column c's
        (StyleGAN Sec. 3.1, Fig. 3; the official style_mixing.py)."""
        num_ws = self.g_ema.num_ws
        if not layers or any(not 0 <= i < num_ws for i in layers):
            raise ConfigError(f"mixing layers must be in [0, {num_ws}); got {list(layers)}")
        rows, cols = len(row_latents), len(col_latents)
        ids = None if class_id is None else torch.full([rows + cols], int(class_id))
        with _eval_mode(self.generator_ema):
            ws = self.ema_ws(
                torch.cat([row_latents, col_latents]), self.class_labels(ids), truncation
            )
            w_rows, w_cols = ws[:rows], ws[rows:]
            mixed = w_rows.unsqueeze(1).repeat(1, cols, 1, 1)  # (R, C, num_ws, w_dim)
            mixed[:, :, layers] = w_cols.unsqueeze(0)[:, :, layers]
            return self.g_ema.synthesis(mixed.flatten(0, 1), noise_mode=self.sample_noise_mode)


@contextmanager
def _eval_mode(module: nn.Module) -> Iterator[None]:
    """`module` in eval mode (no w_avg update, fused modconv), its mode restored after."""
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)


class _ExportedGenerator(nn.Module):
    """(z[, c]) -> images, deterministic: constant noise buffers, truncation fixed, and the
    unfused modulated convolution (the same function; its shapes do not depend on the batch
    size, so one traced / ONNX graph serves any batch)."""

    def __init__(self, generator: nn.Module, psi: float, cutoff: int | None) -> None:
        super().__init__()
        self.generator = generator
        self.psi, self.cutoff = psi, cutoff

    def forward(self, z: Tensor, *c: Tensor) -> Tensor:
        g: Any = self.generator
        ws = g.mapping(z, c[0] if c else None, self.psi, self.cutoff)
        return g.synthesis(ws, noise_mode="const", fused_modconv=False)
