"""GANTask: the one training loop every model's task inherits.

A subclass says which Batch fields it needs, which networks the generator's
optimiser owns, and its training phases: each phase names the network it updates,
the method returning its loss terms, and how often it runs. The base class runs
the phases with manual optimisation (separate G and D optimisers, TTUR), n_critic,
lazy regularisation (the loss scaled by the interval here, and Adam's lr and betas
adjusted in `configure_optimizers` — the only two places that know about it),
gradient clipping after unscaling, one GradScaler per optimiser under 16-mixed,
`full_precision()` for penalty terms, gradient averaging of the stepped network under
trainer=ddp (ganzoo.tasks.distributed), an EMA copy of G for samples and evaluation,
per-term logging, and the state a resume needs (iteration, RNG states, config).
Optional gradient accumulation (`accumulate`): each phase splits the batch into that many
equal micro-batches, back-propagates each micro-batch's loss / accumulate, then clips and steps
once (BigGAN-PyTorch train_fns.py: the paper's batch of 2048 as 256 x 8 accumulations).
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import pytorch_lightning as pl
import torch
from torch import Tensor, nn

from ganzoo.core.config import dataclass_from_dict
from ganzoo.core.errors import ConfigError
from ganzoo.data.batch import Batch
from ganzoo.nn.compiled import eager
from ganzoo.nn.ema import ema_beta, make_ema_copy, update_ema
from ganzoo.tasks.distributed import average_gradients, distributed_world


@dataclass(frozen=True)
class OptimSpec:
    """Adam settings for G and D and the learning-rate schedule (conf/optim/*.yaml)."""

    lr_g: float  # generator (and encoder) learning rate
    lr_d: float  # discriminator learning rate
    betas_g: tuple[float, float]  # Adam betas of G
    betas_d: tuple[float, float]  # Adam betas of D
    eps: float = 1e-8  # Adam epsilon
    decay_start: float = 1.0  # fraction of the run after which lr decays linearly ...
    decay_end: float = 1.0  # ... reaching 0 at this fraction (1.0/1.0 = constant lr)
    clip_g: float | None = None  # max gradient norm of G (None = no clipping)
    clip_d: float | None = None  # max gradient norm of D

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> OptimSpec:
        return dataclass_from_dict(cls, values, "optim")


@dataclass(frozen=True)
class EmaSpec:
    """The EMA generator (see ganzoo.nn.ema)."""

    decay: float = 0.999  # fixed decay per G update
    half_life_kimg: float | None = None  # if set, decay from a half-life in kimg (StyleGAN2)
    rampup: float | None = None  # StyleGAN2-ADA ramp-up ratio
    start_iteration: int = 0  # before this iteration the EMA is a plain copy (BigGAN: 20000)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> EmaSpec:
        return dataclass_from_dict(cls, values, "ema")


@dataclass(frozen=True)
class Phase:
    """One step of the GAN schedule, run when iteration % every == offset."""

    name: str  # log prefix, e.g. "G", "D", "D_reg"
    network: Literal["G", "D"]  # which optimiser steps
    loss: str  # name of the task method: (batch) -> dict of loss terms
    every: int = 1  # interval in iterations (n_critic for G; lazy-regularisation interval)
    offset: int = 0  # iteration % every at which the phase runs
    lazy: bool = False  # lazy regulariser: loss x every, Adam lr and betas adjusted
    updates_ema: bool = False  # update the EMA generator after this phase


class GANTask(pl.LightningModule):
    """Base LightningModule; subclasses set `needs` and implement `phases` and the losses."""

    iteration: Tensor  # buffers (saved in checkpoints, moved with the module)
    images_seen: Tensor

    needs: ClassVar[tuple[str, ...]] = ("image",)

    def __init__(
        self,
        generator: nn.Module,  # G, a plain nn.Module from ganzoo.models
        discriminator: nn.Module,  # D
        optim: dict[str, Any],  # conf/optim: OptimSpec fields
        ema: dict[str, Any],  # conf/model ema: EmaSpec fields
        total_iterations: int,  # length of the run, for the lr schedule
        accumulate: int = 1,  # micro-batches per optimiser step (gradient accumulation)
    ) -> None:
        super().__init__()
        if accumulate < 1:
            raise ConfigError(f"accumulate must be >= 1; got {accumulate}")
        self.automatic_optimization = False
        self.generator = generator
        self.discriminator = discriminator
        self.generator_ema = make_ema_copy(generator)
        self.optim_spec = OptimSpec.from_dict(dict(optim))
        self.ema_spec = EmaSpec.from_dict(dict(ema))
        self.total_iterations = total_iterations
        self.accumulate = accumulate
        self.register_buffer("iteration", torch.zeros((), dtype=torch.long))
        self.register_buffer("images_seen", torch.zeros((), dtype=torch.long))
        self.run_config: dict[str, Any] = {}  # resolved config, stored in every checkpoint
        # submodules filled from published weight files (e.g. the VGG of a perceptual loss):
        # left out of checkpoints, which hold only what training changes
        self.file_modules: set[str] = set()
        self._clip: float | None = None  # max gradient norm of the phase being stepped
        self._grad_scalers: dict[str, Any] = {}  # 16-mixed: one GradScaler per optimiser
        self._pending_scaler_states: dict[str, Any] = {}  # restored before the scalers exist

    # ----- what a subclass provides -------------------------------------------------
    def required_fields(self) -> tuple[str, ...]:
        """Batch fields this task reads (checked against the data at start-up)."""
        return self.needs

    def phases(self) -> Sequence[Phase]:
        raise NotImplementedError(f"{type(self).__name__} must define its training phases")

    def generator_modules(self) -> list[nn.Module]:
        """Networks the G optimiser updates (G, plus e.g. SPADE's VAE encoder)."""
        return [self.generator]

    def generator_inputs(self, batch: Batch, latents: Tensor | None) -> tuple[Tensor, ...]:
        """Positional inputs of G for `batch` (latents: fixed ones, or None to draw)."""
        raise NotImplementedError(f"{type(self).__name__} must define generator_inputs()")

    def discriminator_inputs(self, batch: Batch, images: Tensor) -> tuple[Tensor, ...]:
        """Positional inputs of D when it judges `images` for `batch`."""
        raise NotImplementedError(f"{type(self).__name__} must define discriminator_inputs()")

    def networks(self) -> dict[str, nn.Module]:
        """The trained networks by name, as `ganzoo.info` reports them."""
        return {"G": self.generator, "D": self.discriminator}

    def sample(self, generator: nn.Module, batch: Batch, latents: Tensor | None) -> Tensor:
        """Images (N, 3, H, W) in [-1, 1] that `generator` makes for `batch`."""
        return generator(*self.generator_inputs(batch, latents))

    def sample_latents(self, n: int, generator: torch.Generator | None) -> Tensor | None:
        """Fixed latents for sample grids (None for deterministic models)."""
        return None

    def grid_columns(self, batch: Batch, fake: Tensor) -> list[tuple[str, Tensor]]:
        """Columns of the sample grid, each (name, images (N, 3, H, W) in [-1, 1])."""
        return [("generated", fake), ("real", batch.image)]

    # Views this task gives metrics of its own kind (ganzoo.metrics.suite METRICS[...].view):
    # "translations" (attribute translation), "text_image_codes" (text-to-image).
    evaluation_views: ClassVar[tuple[str, ...]] = ()

    def evaluation_view(self, view: str, batch: Batch, images: Tensor) -> Any:
        """What a task-specific metric reads for `batch`, given the EMA generator's `images` of
        it (see `evaluation_views`); called by the metrics callback under no_grad."""
        raise ConfigError(f"{type(self).__name__} gives no {view!r} view to metrics")

    # ----- the loop -----------------------------------------------------------------
    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        spec = self.optim_spec
        optimisers: list[torch.optim.Optimizer] = []
        for net, lr, betas, params in (
            ("G", spec.lr_g, spec.betas_g, self._params("G")),
            ("D", spec.lr_d, spec.betas_d, self._params("D")),
        ):
            lazy = [p.every for p in self.phases() if p.network == net and p.lazy]
            c = lazy[0] / (lazy[0] + 1) if lazy else 1.0  # StyleGAN2 Appendix B
            optimisers.append(
                torch.optim.Adam(
                    params, lr=lr * c, betas=(betas[0] ** c, betas[1] ** c), eps=spec.eps
                )
            )
        for opt in optimisers:
            for group in opt.param_groups:
                group["initial_lr"] = group["lr"]
        return optimisers

    def _params(self, network: str) -> list[nn.Parameter]:
        modules = self.generator_modules() if network == "G" else [self.discriminator]
        return [p for m in modules for p in m.parameters() if p.requires_grad]

    def _set_lr(self, *optimisers: Any) -> None:
        """The lr of the next iteration: initial lr x the linear-decay factor (no state)."""
        factor = self._lr_factor(int(self.iteration))
        for opt in optimisers:
            for group in opt.param_groups:
                group["lr"] = group["initial_lr"] * factor

    def _lr_factor(self, iteration: int) -> float:
        start = self.optim_spec.decay_start * self.total_iterations
        end = self.optim_spec.decay_end * self.total_iterations
        if iteration < start or end <= start:
            return 1.0
        return max(0.0, 1.0 - (iteration - start) / (end - start))

    def training_step(self, batch: Batch, batch_idx: int) -> None:
        it = int(self.iteration)
        opt_g, opt_d = self.optimizers()  # type: ignore[misc,attr-defined]
        logs: dict[str, Tensor] = {}
        for phase in self.phases():
            if it % phase.every != phase.offset % phase.every:
                continue
            opt = opt_g if phase.network == "G" else opt_d
            logs.update(self._run_phase(phase, opt, batch))
            if phase.updates_ema:
                self._update_ema(batch.size)
        self.iteration += 1
        self.images_seen += batch.size * self.trainer.world_size
        self._set_lr(opt_g, opt_d)
        self.log_dict(logs, on_step=True, prog_bar=False, batch_size=batch.size)
        self.log("iteration", float(self.iteration), on_step=True, prog_bar=False)

    def _run_phase(self, phase: Phase, opt: Any, batch: Batch) -> dict[str, Tensor]:
        """Forward the phase's loss, backward, average over processes, clip, step; its terms."""
        self._use_scaler(phase.network)
        self.toggle_optimizer(opt)
        opt.zero_grad(set_to_none=True)
        loss_fn: Callable[[Batch], dict[str, Tensor]] = getattr(self, phase.loss)
        if self.accumulate == 1:
            terms = loss_fn(batch)
            total = torch.stack([t.float() for t in terms.values()]).sum()
            if phase.lazy:
                total = total * phase.every
            self.manual_backward(total)
        else:
            terms, total = self._accumulate_phase(phase, loss_fn, batch)
        if distributed_world() > 1:  # trainer=ddp: this network's only (no list built otherwise)
            average_gradients(self._params(phase.network))
        self._clip = self.optim_spec.clip_g if phase.network == "G" else self.optim_spec.clip_d
        opt.step()  # unscales (16-mixed), calls on_before_optimizer_step (clipping), steps
        self.untoggle_optimizer(opt)
        logs = {f"loss/{phase.name}/{k}": v.detach().float() for k, v in terms.items()}
        logs[f"loss/{phase.name}/total"] = total.detach()
        return logs

    def on_before_optimizer_step(self, optimizer: Any) -> None:
        # Lightning calls this after unscaling the gradients (16-mixed), so the norm is real.
        if self._clip is not None:
            self.clip_gradients(
                optimizer, gradient_clip_val=self._clip, gradient_clip_algorithm="norm"
            )

    def _use_scaler(self, network: str) -> None:
        """16-mixed: G and D each keep their own GradScaler (one overflow does not shrink both).

        Lightning's mixed-precision plugin owns one scaler; the phase swaps its own in before
        backward and step, so the plugin's scale / unscale / skip-on-inf logic is reused as is.
        """
        plugin = self.trainer.precision_plugin
        shared = getattr(plugin, "scaler", None)
        if shared is None:
            return
        if not self._grad_scalers:
            # before any step: the copy has the plugin scaler's settings and initial scale
            self._grad_scalers = {"G": shared, "D": copy.deepcopy(shared)}
            for name, state in self._pending_scaler_states.items():
                self._grad_scalers[name].load_state_dict(state)
        plugin.scaler = self._grad_scalers[network]  # type: ignore[attr-defined]

    @contextmanager
    def full_precision(self) -> Iterator[None]:
        """Autocast off: gradient penalties, R1 and path length are computed in float32.

        Under 16-mixed / bf16-mixed these terms differentiate D (or G) once more and square the
        result; in half precision that underflows or overflows. Callers cast inputs with .float().
        Under trainer.compile the networks run eager here (a compiled backward is not
        differentiable again).
        """
        with torch.autocast(device_type=self.device.type, enabled=False), eager():
            yield

    def _accumulate_phase(
        self, phase: Phase, loss_fn: Callable[[Batch], dict[str, Tensor]], batch: Batch
    ) -> tuple[dict[str, Tensor], Tensor]:
        """Backward of each micro-batch's loss / accumulate; returns the terms averaged."""
        if batch.size % self.accumulate:
            raise ConfigError(
                f"accumulate={self.accumulate} must divide the per-process batch size "
                f"{batch.size} (data.batch_size)"
            )
        sums: dict[str, Tensor] = {}
        total_sum = torch.zeros((), device=batch.image.device)
        for micro in batch.split(self.accumulate):
            terms = loss_fn(micro)
            total = torch.stack([t.float() for t in terms.values()]).sum()
            if phase.lazy:
                total = total * phase.every
            self.manual_backward(total / self.accumulate)
            for k, v in terms.items():
                sums[k] = v.detach().float() + (sums[k] if k in sums else 0.0)
            total_sum = total_sum + total.detach()
        means = {k: v / self.accumulate for k, v in sums.items()}
        return means, total_sum / self.accumulate

    def _update_ema(self, batch_size: int) -> None:
        spec = self.ema_spec
        if int(self.iteration) < spec.start_iteration:
            beta = 0.0
        else:
            beta = ema_beta(
                spec.decay,
                spec.half_life_kimg,
                spec.rampup,
                batch_size * self.trainer.world_size,
                int(self.images_seen),
            )
        update_ema(self.generator_ema, self.generator, beta)

    # ----- sampling -----------------------------------------------------------------
    @torch.no_grad()
    def sample_ema(self, batch: Batch, latents: Tensor | None) -> Tensor:
        """The EMA generator's images in eval mode (training mode restored after)."""
        was_training = self.generator_ema.training
        self.generator_ema.eval()
        try:
            return self.sample(self.generator_ema, batch, latents)
        finally:
            self.generator_ema.train(was_training)

    # ----- description -------------------------------------------------------------
    def io_shapes(self, batch: Batch) -> dict[str, dict[str, Any]]:
        """Input and output shapes of G and D for `batch` (works on the meta device)."""
        with torch.no_grad():
            g_in = self.generator_inputs(batch, self.sample_latents(batch.size, None))
            fake = self.generator(*g_in)
            d_in = self.discriminator_inputs(batch, fake)
            d_out = self.discriminator(*d_in)
        return {
            "G": {"inputs": [list(t.shape) for t in g_in], "output": list(fake.shape)},
            "D": {"inputs": [list(t.shape) for t in d_in], "output": _shapes(d_out)},
        }

    # ----- checkpoint state ---------------------------------------------------------
    def state_dict(self, *args: Any, **kwargs: Any) -> Any:
        sd = super().state_dict(*args, **kwargs)
        for key in [k for k in sd if k.split(".")[0] in self.file_modules]:
            del sd[key]
        return sd

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        own = super().state_dict()
        frozen = {k: v for k, v in own.items() if k.split(".")[0] in self.file_modules}
        return super().load_state_dict({**frozen, **state_dict}, strict=strict, assign=assign)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["ganzoo_config"] = self.run_config
        checkpoint["rng_states"] = _rng_states()
        if self._grad_scalers:
            checkpoint["grad_scalers"] = {k: s.state_dict() for k, s in self._grad_scalers.items()}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if "rng_states" in checkpoint:
            _set_rng_states(checkpoint["rng_states"])
        self._pending_scaler_states = dict(checkpoint.get("grad_scalers", {}))
        fit_loop = checkpoint.get("loops", {}).get("fit_loop")
        if fit_loop is None or "iteration" not in checkpoint.get("state_dict", {}):
            return
        done = int(checkpoint["state_dict"]["iteration"])
        if done > self.total_iterations:
            raise ConfigError(
                f"the checkpoint is at iteration {done}, past steps={self.total_iterations}; "
                f"set steps >= {done} to continue it, or resume=false to start over"
            )
        if done < self.total_iterations and fit_loop["epoch_progress"]["current"]["completed"]:
            reopen_finished_run(checkpoint)
            print(
                f"ganzoo: extending the finished run from {done} to {self.total_iterations} "
                "iterations (schedules follow the new steps)"
            )
        elif done < self.total_iterations:  # e.g. iter_N.ckpt saved at the last batch of a run
            fit_loop["epoch_loop.batch_progress"]["is_last_batch"] = False  # that had steps=N


def reopen_finished_run(checkpoint: dict[str, Any]) -> None:
    """Make the loop state of a run that ended (one epoch of `steps` batches, completed) read as
    a run stopped after its last batch, so that Lightning continues the epoch when `steps` was
    raised: the data stream resumes at the batches consumed, as after any mid-run checkpoint
    (which is saved after a batch ran and before Lightning counted it completed)."""
    loop = checkpoint["loops"]["fit_loop"]
    for which in ("total", "current"):
        epoch = loop["epoch_progress"][which]
        epoch["processed"] = epoch["completed"] = epoch["ready"] - 1
        batches = loop["epoch_loop.batch_progress"][which]
        batches["completed"] = batches["ready"] - 1
    loop["epoch_loop.batch_progress"]["is_last_batch"] = False
    checkpoint["epoch"] = checkpoint["epoch"] - 1


def _shapes(x: Any) -> Any:
    """Shapes of a tensor or of nested lists of tensors."""
    if isinstance(x, Tensor):
        return list(x.shape)
    return [_shapes(v) for v in x]


def _rng_states() -> dict[str, Any]:
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "numpy": (
            np_state[0],  # type: ignore[index]
            torch.from_numpy(np_state[1].astype(np.int64)),  # type: ignore[index]
            *np_state[2:],  # type: ignore[index]
        ),
        "python": random.getstate(),
    }


def _set_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    name, keys, *rest = states["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    random.setstate(states["python"])
