"""BigGAN training (Brock et al., ICLR 2019; ajbrock/BigGAN-PyTorch train_fns.py, utils.py).

Per G update, `num_d_steps` discriminator steps then one generator step, as the official
GAN_training_function; here each iteration is one D step on a fresh real batch and the G phase
runs every `num_d_steps` iterations after it (paper: 2, official script: 1). Fakes use fresh
z ~ N(0, I) and classes drawn uniformly (the official y_.sample_()), not the real batch's
classes; D judges fakes and reals in one forward (the official default, split_D off).

- Hinge loss: D = mean(relu(1 - D(x, y))) + mean(relu(1 + D(G(z, y'), y'))), G = -mean(D(G)).
- Orthogonal regularisation of G (`ortho_reg`, paper 1e-4, released models 0): the official
  gradient form added after the (accumulated) backward, before the step, on every G weight
  but the shared class embedding (ganzoo.nn.orthogonal).
- Gradient accumulation: GANTask's `accumulate` (the loss of each micro-batch / accumulate).
- EMA of G as the official utils.ema (decay 0.9999): after each G step, every state-dict entry of
  G_ema (weights, BatchNorm running statistics, spectral-norm u and sv) <- G_ema * decay +
  G * (1 - decay), so G_ema samples in eval mode with averaged statistics (`ema.buffers:
  average`; `copy` copies the buffers from G instead, as StyleGAN2-ADA). `ema.start_iteration`
  counts G updates, 1-based, as the official state_dict['itr'] (--ema_start 20000 is 20,000 G
  updates, also with 2 D steps per G step): before it G_ema is a plain copy of G.
- Cross-replica (sync) BatchNorm in G when trained on several GPU processes (`sync_batchnorm`);
  G_ema keeps per-process BatchNorm (it is sampled on rank 0 alone).
- Sampling: G_ema in eval mode with BN running statistics (the official --G_eval_mode) or, with
  `standing_stats_accumulations` > 0, the paper's standing statistics; latents from a
  truncated normal when `truncation` is set (the paper's truncation trick, Sec. 3.1).
  `draw_latents` and `generate` are the hooks of `python -m ganzoo.sample`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from pytorch_lightning.plugins.layer_sync import TorchSyncBatchNorm
from pytorch_lightning.utilities import rank_zero_warn
from torch import Tensor, nn

from ganzoo.core.errors import ConfigError
from ganzoo.data.batch import Batch
from ganzoo.losses.adversarial import d_loss, g_loss
from ganzoo.nn.conditional_bn import accumulate_standing_stats
from ganzoo.nn.ema import EmaBuffers, update_ema
from ganzoo.nn.orthogonal import add_orthogonal_gradient
from ganzoo.tasks.base import GANTask, Phase


def truncated_normal(
    n: int,  # number of latents
    dim: int,  # latent size
    threshold: float | None,  # resample entries with |z| > threshold; None = plain N(0, I)
    generator: torch.Generator | None = None,  # CPU generator for reproducible latents
) -> Tensor:
    """z (n, dim) from N(0, I) truncated to [-threshold, threshold] (on the CPU).

    The paper's truncation trick (Sec. 3.1): values outside the range are resampled until they
    fall inside it. (The official PyTorch sampler instead shrinks the variance, --z_var.)
    """
    z = torch.randn(n, dim, generator=generator, device="cpu")
    if threshold is None:
        return z
    if threshold <= 0:
        raise ConfigError(f"truncation must be > 0 or null; got {threshold}")
    outside = z.abs() > threshold
    while bool(outside.any()):
        z[outside] = torch.randn(int(outside.sum()), generator=generator, device="cpu")
        outside = z.abs() > threshold
    return z


def to_sync_batchnorm(module: nn.Module) -> nn.Module:
    """`module` with every BatchNorm replaced by SyncBatchNorm (same parameters and buffers)."""
    return nn.SyncBatchNorm.convert_sync_batchnorm(module)


class BigGanTask(GANTask):
    """Class-conditional BigGAN on any dataset with image-level classes (class_id)."""

    needs = ("image", "class_id")

    def __init__(
        self,
        generator: nn.Module,  # ganzoo.models.biggan.BigGANGenerator
        discriminator: nn.Module,  # ganzoo.models.biggan.BigGANDiscriminator
        optim: dict[str, Any],  # conf/optim/biggan_*: OptimSpec fields + num_d_steps, ortho_reg
        ema: dict[str, Any],  # EmaSpec fields (BigGAN: decay 0.9999, start_iteration 20000 G
        #                        updates) + buffers: average (official) | copy
        total_iterations: int,  # run length
        num_classes: int,  # classes to draw fakes from (ImageNet 1000)
        accumulate: int,  # micro-batches per optimiser step (official bs256x8: 8)
        sync_batchnorm: bool,  # cross-replica BN in G under multi-process training (paper)
        truncation: float | None,  # truncated-normal threshold for samples (None = N(0, I))
        standing_stats_accumulations: int,  # forward passes of standing statistics (0 = off)
        standing_stats_batch_size: int,  # batch of each of those passes
        standing_stats_seed: int,  # seeds their latents and classes
        gan_mode: str = "hinge",  # adversarial loss (BigGAN: hinge)
        perceptual: Callable[[], nn.Module] | None = None,  # unused: ganzoo.info passes it
    ) -> None:
        optim = dict(optim)
        num_d_steps = int(optim.pop("num_d_steps"))  # BigGAN schedule keys live in conf/optim
        ortho_reg = float(optim.pop("ortho_reg"))
        if num_d_steps < 1:
            raise ConfigError(f"optim.num_d_steps must be >= 1; got {num_d_steps}")
        ema = dict(ema)
        ema_buffers = str(ema.pop("buffers"))
        if ema_buffers not in ("average", "copy"):
            raise ConfigError(f"model.ema.buffers={ema_buffers}; valid: average, copy")
        self.ema_buffers: EmaBuffers = "average" if ema_buffers == "average" else "copy"
        super().__init__(generator, discriminator, optim, ema, total_iterations, accumulate)
        self.num_classes = num_classes
        self.num_d_steps = num_d_steps
        self.ortho_reg = ortho_reg
        self.sync_batchnorm = sync_batchnorm
        self.truncation = truncation
        self.standing_stats_accumulations = standing_stats_accumulations
        self._standing_at: int | None = None  # iteration whose G_ema has standing statistics
        self.standing_stats_batch_size = standing_stats_batch_size
        self.standing_stats_seed = standing_stats_seed
        self.gan_mode = gan_mode

    def phases(self) -> Sequence[Phase]:
        n = self.num_d_steps
        return (
            Phase("D", "D", "discriminator_loss"),
            Phase("G", "G", "generator_loss", every=n, offset=n - 1, updates_ema=True),
        )

    @property
    def dim_z(self) -> int:
        return int(self.generator.dim_z)  # type: ignore[arg-type]

    # ----- losses -------------------------------------------------------------------
    def _fake(self, n: int, device: torch.device) -> tuple[Tensor, Tensor]:
        """G(z, y) for n fresh latents and uniformly drawn classes: (images, classes)."""
        z = torch.randn(n, self.dim_z, device=device)
        y = torch.randint(0, self.num_classes, (n,), device=device)
        return self.generator(z, y), y

    def discriminator_loss(self, batch: Batch) -> dict[str, Tensor]:
        assert batch.class_id is not None
        with torch.no_grad():
            fake, y_fake = self._fake(batch.size, batch.image.device)
        logits = self.discriminator(
            torch.cat([fake, batch.image]), torch.cat([y_fake, batch.class_id])
        )
        d_fake, d_real = logits.split([fake.shape[0], batch.size])
        terms = d_loss(self.gan_mode, d_real, d_fake, "mean")
        return {"real": terms["real"], "fake": terms["fake"]}

    def generator_loss(self, batch: Batch) -> dict[str, Tensor]:
        fake, y = self._fake(batch.size, batch.image.device)
        return {"gan": g_loss(self.gan_mode, self.discriminator(fake, y), "mean")}

    def g_updates(self) -> int:
        """G updates so far, this one included, during a G phase (the official 1-based
        state_dict['itr'] that utils.ema.update receives)."""
        return int(self.iteration) // self.num_d_steps + 1

    def _update_ema(self, batch_size: int) -> None:
        """utils.ema.update(itr): a plain copy while itr < ema.start_iteration (G updates),
        then decay; every state-dict entry averaged with `ema.buffers: average`."""
        spec = self.ema_spec
        beta = 0.0 if self.g_updates() < spec.start_iteration else spec.decay
        update_ema(self.generator_ema, self.generator, beta, self.ema_buffers)

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """GANTask's clipping (when configured), then orthogonal regularisation on G's complete
        gradient (after accumulation, averaging over processes and unscaling), every weight but
        the shared embedding (train_fns.py: utils.ortho with a blacklist, before G.optim.step)."""
        super().on_before_optimizer_step(optimizer)
        if self.ortho_reg > 0 and optimizer is self.trainer.optimizers[0]:  # the G optimiser
            add_orthogonal_gradient(self.ortho_parameters(), self.ortho_reg)

    def ortho_parameters(self) -> list[nn.Parameter]:
        """G's parameters the orthogonal regulariser sees (all but the shared embedding)."""
        shared = {id(p) for p in self.generator.shared.parameters()}  # type: ignore[union-attr]
        return [p for p in self.generator.parameters() if id(p) not in shared]

    # ----- multi-process ------------------------------------------------------------
    def setup(self, stage: str) -> None:
        """Before the strategy's setup: G's BatchNorms become SyncBatchNorm on several processes
        (any DDP strategy; trainer=ddp's own trainer.sync_batchnorm does the same).

        Only G: the EMA copy is sampled on rank 0 alone (a synced forward would wait for the
        other ranks) and keeps plain BatchNorm; its buffers have the same names and shapes.
        torch's SyncBatchNorm runs on GPUs only: multi-process CPU runs keep per-process BN.
        """
        if not (self.sync_batchnorm and self.trainer.world_size > 1):
            return
        if self.trainer.strategy.root_device.type == "cpu":
            rank_zero_warn("model.sync_batchnorm: SyncBatchNorm needs GPUs; G keeps per-process BN")
            return
        self.generator = to_sync_batchnorm(self.generator)

    def on_fit_start(self) -> None:
        """trainer.sync_batchnorm (trainer=ddp) converts every BatchNorm of the task, G_ema's too;
        G_ema is sampled by rank 0 alone (standing statistics run it in training mode, where a
        SyncBatchNorm would wait for the other ranks), so its BatchNorms go back to per-process
        ones (same buffers, same state-dict keys)."""
        if any(isinstance(m, nn.SyncBatchNorm) for m in self.generator_ema.modules()):
            self.generator_ema = TorchSyncBatchNorm().revert(self.generator_ema)

    # ----- sampling -----------------------------------------------------------------
    def latents(self, n: int, generator: torch.Generator | None) -> Tensor:
        """Sampling-time latents (n, dim_z): truncated when `truncation` is set."""
        return truncated_normal(n, self.dim_z, self.truncation, generator)

    def sample_latents(self, n: int, generator: torch.Generator | None) -> Tensor | None:
        return self.latents(n, generator).to(self.iteration.device)

    def generator_inputs(self, batch: Batch, latents: Tensor | None) -> tuple[Tensor, ...]:
        assert batch.class_id is not None
        if latents is None:
            latents = self.latents(batch.size, None).to(batch.class_id.device)
        return latents[: batch.size], batch.class_id

    def discriminator_inputs(self, batch: Batch, images: Tensor) -> tuple[Tensor, ...]:
        assert batch.class_id is not None
        return images, batch.class_id

    @torch.no_grad()
    def standing_statistics(self, generator: nn.Module) -> None:
        """The paper's standing statistics on `generator` (left in eval mode), from latents drawn
        as for sampling and uniform classes, seeded by `standing_stats_seed`."""
        g = torch.Generator().manual_seed(self.standing_stats_seed)
        n = self.standing_stats_batch_size
        device = self.iteration.device

        def inputs() -> tuple[Tensor, Tensor]:
            z = self.latents(n, g).to(device)
            y = torch.randint(0, self.num_classes, (n,), generator=g).to(device)
            return z, y

        accumulate_standing_stats(generator, inputs, self.standing_stats_accumulations)

    @torch.no_grad()
    def sample_ema(self, batch: Batch, latents: Tensor | None) -> Tensor:
        """G_ema's images in eval mode, after standing statistics when they are on. The
        statistics are a function of G_ema's weights and their seed alone, so they are computed
        once per iteration (a sample grid, every batch of an evaluation, every studio click)."""
        if self.standing_stats_accumulations > 0 and self._standing_at != int(self.iteration):
            self.standing_statistics(self.generator_ema)
            self._standing_at = int(self.iteration)
        return super().sample_ema(batch, latents)

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        self._standing_at = None  # new weights: standing statistics to recompute
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    # ----- hooks of `python -m ganzoo.sample` (action=generate | interpolate) ----------
    def draw_latents(self, seeds: Sequence[int], truncation: float | None) -> Tensor:
        """z (len(seeds), dim_z) on the task's device; row i depends on seeds[i] alone.

        truncation > 0: the paper's truncation trick (Sec. 3.1), z from N(0, I) with every
        entry resampled until |z| <= truncation (smaller: higher fidelity, less variety);
        <= 0: no truncation, plain N(0, I); None: the run's own `model.truncation`.
        """
        if not seeds:
            raise ConfigError("seeds must name at least one seed")
        if truncation is None:
            truncation = self.truncation
        threshold = truncation if truncation is not None and truncation > 0 else None
        rows = [
            truncated_normal(1, self.dim_z, threshold, torch.Generator().manual_seed(int(seed)))
            for seed in seeds
        ]
        return torch.cat(rows).to(self.device)  # (len(seeds), dim_z)

    @torch.no_grad()
    def generate(
        self,
        latents: Tensor,  # (N, dim_z), e.g. from draw_latents or interpolated between them
        class_ids: Tensor | None,  # (N,) class ids (or one id for all); required: BigGAN is
        #                            class-conditional
        truncation: float | None,  # unused here: BigGAN truncates the latents themselves
        #                            (draw_latents); kept for the signature every task shares
    ) -> Tensor:
        """G_ema's images (N, 3, R, R) in [-1, 1], after standing statistics when configured
        (model.standing_stats_accumulations > 0; seeded, so every call gives the same)."""
        if latents.ndim != 2 or latents.shape[1] != self.dim_z:
            raise ConfigError(f"latents must be (N, {self.dim_z}); got {tuple(latents.shape)}")
        if class_ids is None:
            raise ConfigError(
                f"model=biggan is class-conditional: give classes (ids 0..{self.num_classes - 1})"
            )
        n = latents.shape[0]
        class_ids = class_ids.to(device=self.device, dtype=torch.long).reshape(-1)
        if class_ids.numel() == 1:
            class_ids = class_ids.expand(n)
        if class_ids.numel() != n:
            raise ConfigError(f"{class_ids.numel()} classes for {n} latents; give 1 or {n}")
        bad = class_ids[(class_ids < 0) | (class_ids >= self.num_classes)]
        if bad.numel():
            raise ConfigError(
                f"class {int(bad[0])} is out of range: valid ids 0..{self.num_classes - 1}"
            )
        size = int(self.generator.resolution)  # type: ignore[arg-type]
        batch = Batch(image=torch.zeros(n, 3, size, size, device=self.device), class_id=class_ids)
        return self.sample_ema(batch, latents.to(self.device))
