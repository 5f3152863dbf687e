"""DAMSM pretraining, AttnGAN's first stage (taoxugit/AttnGAN code/pretrain_DAMSM.py).

Per iteration: regions, global image feature = ImageEncoder(image); words, sentence =
TextEncoder(caption); loss = w_loss0 + w_loss1 + s_loss0 + s_loss1 (ganzoo.losses.damsm, gamma1
4, gamma2 5, gamma3 10, pairs of the same class masked when the data has class ids); the text
encoder's gradient norm clipped to 0.25 (RNN_GRAD_CLIP); one Adam (lr 0.002, betas 0.5, 0.999)
over the text encoder and the image encoder's trainable layers.

Schedule (pretrain_DAMSM.py:265-284): the optimiser is created anew every epoch (its moments
reset) and lr x 0.98 after each epoch while lr > lr0 / 10. ganzoo counts iterations, so an epoch
is `epoch_iterations` iterations (CUB: 8,855 training images / batch 48 = 185).

The image encoder's Inception-v3 layers: with `pretrained_backbone` (real data) they are loaded
at the start of training from weights.inception_v3 (a local file with a checksum) and frozen
(`train_backbone: false`, official); data=synthetic trains them from scratch. As in the official
script the image encoder stays in training mode (Inception's BatchNorm uses batch statistics).

The checkpoint of this run feeds model=attngan (model.damsm_ckpt=PATH).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganzoo.core.errors import ConfigError
from ganzoo.data.batch import Batch
from ganzoo.losses.damsm import sentence_loss, word_loss, word_similarities
from ganzoo.models.damsm import DAMSM
from ganzoo.tasks.base import GANTask, Phase
from ganzoo.tasks.distributed import average_gradients


class DAMSMTask(GANTask):
    """Trains the DAMSM text and image encoders (the `generator` slot holds both)."""

    needs = ("image", "caption_tokens", "caption_lengths")

    def __init__(
        self,
        damsm: DAMSM,  # ganzoo.models.damsm.DAMSM (text + image encoder)
        optim: dict[str, Any],  # conf/optim/damsm.yaml: Adam lr_g 0.002, betas_g (0.5, 0.999)
        ema: dict[str, Any],  # unused by DAMSM (no averaged copy is kept); EmaSpec keys
        total_iterations: int,
        gamma1: float = 4.0,  # attention sharpness over regions
        gamma2: float = 5.0,  # weight of the most relevant word
        gamma3: float = 10.0,  # smoothing of the matching posterior
        mask_same_class: bool = True,  # mask pairs of the same class (class_id) as mismatches
        epoch_iterations: int = 185,  # iterations per epoch of the lr schedule
        lr_decay: float = 0.98,  # lr x this after each epoch ...
        lr_min_fraction: float = 0.1,  # ... while lr > lr0 x this
        rnn_grad_clip: float = 0.25,  # max gradient norm of the text encoder
        pretrained_backbone: bool = False,  # load Inception-v3 ImageNet weights at fit start
        backbone_weights: Callable[[], Any] | None = None,  # -> (state dict, provenance)
        perceptual: Callable[[], Any] | None = None,  # unused: ganzoo.info passes it to every task
    ) -> None:
        super().__init__(damsm, nn.Module(), optim, ema, total_iterations)
        if epoch_iterations < 1 or not 0 < lr_decay <= 1:
            raise ConfigError(
                f"model.epoch_iterations must be >= 1 and lr_decay in (0, 1]; got "
                f"{epoch_iterations}, {lr_decay}"
            )
        if pretrained_backbone and backbone_weights is None:
            raise ConfigError("model.pretrained_backbone=true needs model.backbone_weights")
        self.gammas = (gamma1, gamma2, gamma3)
        self.mask_same_class = mask_same_class
        self.epoch_iterations = epoch_iterations
        self.lr_decay, self.lr_min_fraction = lr_decay, lr_min_fraction
        self.rnn_grad_clip = rnn_grad_clip
        self.pretrained_backbone = pretrained_backbone
        self.backbone_weights = backbone_weights
        self.weights_provenance: dict[str, Any] = {}
        self.file_modules.add("generator_ema")  # no averaged copy in checkpoints
        self._epoch = -1

    @property
    def damsm(self) -> DAMSM:
        assert isinstance(self.generator, DAMSM)
        return self.generator

    def phases(self) -> Sequence[Phase]:
        return (Phase("DAMSM", "G", "damsm_loss"),)

    def networks(self) -> dict[str, nn.Module]:
        return {"text_encoder": self.damsm.text_encoder, "image_encoder": self.damsm.image_encoder}

    def setup(self, stage: str) -> None:
        if stage == "fit" and self.pretrained_backbone:
            assert self.backbone_weights is not None
            state, resolved = self.backbone_weights()
            self.damsm.image_encoder.load_backbone(state)
            self.weights_provenance = {
                "inception_v3": {"path": str(resolved.path), "sha256": resolved.sha256}
            }

    # ----- optimisation -----------------------------------------------------------------
    def lr_factor(self, iteration: int) -> float:
        """lr / lr0 at `iteration`: x lr_decay per completed epoch while above the floor."""
        factor = 1.0
        for _ in range(iteration // self.epoch_iterations):
            if factor <= self.lr_min_fraction:
                break
            factor *= self.lr_decay
        return factor

    def configure_optimizers(self) -> torch.optim.Optimizer:  # type: ignore[override]
        spec = self.optim_spec
        params = [p for p in self.damsm.parameters() if p.requires_grad]
        return torch.optim.Adam(params, lr=spec.lr_g, betas=spec.betas_g, eps=spec.eps)

    def training_step(self, batch: Batch, batch_idx: int) -> None:
        opt: Any = self.optimizers()
        it = int(self.iteration)
        epoch = it // self.epoch_iterations
        if epoch != self._epoch:  # a new optimiser every epoch: reset Adam's moments
            if self._epoch >= 0:
                opt.optimizer.state.clear()
            self._epoch = epoch
            for group in opt.param_groups:
                group["lr"] = self.optim_spec.lr_g * self.lr_factor(it)
        opt.zero_grad(set_to_none=True)
        terms = self.damsm_loss(batch)
        total = torch.stack(list(terms.values())).sum()
        self.manual_backward(total)
        average_gradients(self.damsm.parameters())  # trainer=ddp: mean over the processes
        opt.step()  # unscales (16-mixed), then on_before_optimizer_step clips the RNN
        self.iteration += 1
        self.images_seen += batch.size * self.trainer.world_size
        logs = {f"loss/DAMSM/{k}": v.detach() for k, v in terms.items()}
        logs["loss/DAMSM/total"] = total.detach()
        self.log_dict(logs, on_step=True, prog_bar=False, batch_size=batch.size)
        self.log("iteration", float(self.iteration), on_step=True, prog_bar=False)

    def on_before_optimizer_step(self, optimizer: Any) -> None:
        if self.rnn_grad_clip > 0:  # the text encoder only (pretrain_DAMSM.py:95-97)
            nn.utils.clip_grad_norm_(self.damsm.text_encoder.parameters(), self.rnn_grad_clip)

    def class_ids(self, batch: Batch) -> Tensor | None:
        return batch.class_id if self.mask_same_class else None

    def damsm_loss(self, batch: Batch) -> dict[str, Tensor]:
        assert batch.caption_tokens is not None and batch.caption_lengths is not None
        regions, code, words, sentence = self.damsm(
            batch.image, batch.caption_tokens, batch.caption_lengths
        )
        g1, g2, g3 = self.gammas
        ids = self.class_ids(batch)
        w0, w1, _ = word_loss(regions, words, batch.caption_lengths, ids, g1, g2, g3)
        s0, s1 = sentence_loss(code, sentence, ids, g3)
        return {"w_loss0": w0, "w_loss1": w1, "s_loss0": s0, "s_loss1": s1}

    # ----- evaluation and sample grids ------------------------------------------------------
    @torch.no_grad()
    def embed(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """(global image features, sentence features) in eval mode, each (N, 256)."""
        was = self.damsm.training
        self.damsm.eval()
        try:
            assert batch.caption_tokens is not None and batch.caption_lengths is not None
            _, code, _, sentence = self.damsm(
                batch.image, batch.caption_tokens, batch.caption_lengths
            )
        finally:
            self.damsm.train(was)
        return code, sentence

    def sample_ema(self, batch: Batch, latents: Tensor | None) -> Tensor:
        """Each image shaded by its caption's word attention (mean over the words)."""
        with torch.no_grad():
            was = self.damsm.training
            self.damsm.eval()
            try:
                assert batch.caption_tokens is not None and batch.caption_lengths is not None
                regions, _, words, _ = self.damsm(
                    batch.image, batch.caption_tokens, batch.caption_lengths
                )
                _, maps = word_similarities(regions, words, batch.caption_lengths, self.gammas[0])
            finally:
                self.damsm.train(was)
            heat = torch.stack([m.mean(0) for m in maps])[:, None]  # (N, 1, h, w)
            heat = heat / heat.flatten(1).amax(1).clamp(min=1e-8)[:, None, None, None]
            heat = F.interpolate(heat, size=batch.image.shape[-2:], mode="bilinear")
            return (batch.image + 1) * heat - 1

    def grid_columns(self, batch: Batch, fake: Tensor) -> list[tuple[str, Tensor]]:
        return [("attention", fake), ("real", batch.image)]

    def io_shapes(self, batch: Batch) -> dict[str, dict[str, Any]]:
        assert batch.caption_tokens is not None and batch.caption_lengths is not None
        with torch.no_grad():
            regions, code, words, sentence = self.damsm.eval()(
                batch.image, batch.caption_tokens, batch.caption_lengths
            )
        return {
            "image_encoder": {
                "inputs": [list(batch.image.shape)],
                "output": [list(regions.shape), list(code.shape)],
            },
            "text_encoder": {
                "inputs": [list(batch.caption_tokens.shape), list(batch.caption_lengths.shape)],
                "output": [list(words.shape), list(sentence.shape)],
            },
        }

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["weights_provenance"] = self.weights_provenance


def load_damsm_state(path: str, damsm: nn.Module) -> dict[str, Any]:
    """Load the encoders of a model=damsm checkpoint (or the `damsm.` encoders a model=attngan
    checkpoint carries, e.g. a converted official release) into `damsm`; its run config back."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    weights = checkpoint.get("state_dict", {})
    state: dict[str, Any] = {}
    for prefix in ("generator.", "damsm."):
        state = {k[len(prefix) :]: v for k, v in weights.items() if k.startswith(prefix)}
        if prefix == "generator." and any(k.startswith("damsm.") for k in weights):
            continue  # an AttnGAN checkpoint: its generator is G, its encoders are damsm.*
        if state:
            break
    if not state:
        raise ConfigError(
            f"model.damsm_ckpt={path} is not a model=damsm checkpoint (nor a model=attngan one "
            "carrying damsm.* encoders)"
        )
    try:
        damsm.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[1].strip() if "\n" in str(err) else str(err)
        raise ConfigError(
            f"model.damsm_ckpt={path} does not fit this run's DAMSM encoders ({first}); train "
            "it with the same data (vocabulary) and model.damsm settings"
        ) from None
    return dict(checkpoint.get("ganzoo_config", {}))
