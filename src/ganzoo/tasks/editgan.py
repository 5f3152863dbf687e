"""EditGAN training on top of a trained StyleGAN2 (nv-tlabs/editGAN_release train_encoder.py,
train_interpreter.py; settings of experiments/encoder_car.json, datasetgan_car.json).

The StyleGAN2 generator comes from a ganzoo checkpoint (`stylegan2_ckpt`: a model=stylegan2
run, or an official pickle converted by ganzoo.convert): its EMA generator, frozen, with the
architecture stored in that checkpoint's config. The spec is copied into this run's
checkpoints, so `ganzoo.sample` rebuilds an EditGAN run without the StyleGAN2 file.

One run, three stages, by iteration (`steps` = encoder_steps + the annotation iterations +
branch iterations):

1. encoder (iterations [0, encoder_steps)), as train_encoder.py: per iteration on the real
   batch E(x) -> G -> p_loss x 10 (LPIPS) + mse x 1, one Adam step (from `real_start`; the
   official waits train_real_start_epochs 5), then on `sample_batch` (2) generated images
   G(w), w = mapping(z): encoder_loss x 5 (mse of E(G(w)) and w) + p_loss x 10 + mse x 1, a
   second step. Adam lr 3e-5. Images compared in [0, 1], as the official.
2. annotation: the first `annotated` training images (data.annotated; the label maps are the
   annotations) are embedded in W+ (encoder + `annotation_embedding_steps` of per-image
   optimisation: ganzoo.tasks.editing.embed), batch by batch.
3. branch (the remaining iterations), as train_interpreter.py: G's features of the annotated
   ws, upsampled bilinearly and concatenated per pixel, train `num_models` (10) pixel MLPs
   with cross-entropy, Adam lr 1e-3, 64 random pixels per model per iteration (the official
   runs up to 100 epochs over all pixels with early stopping; here the run length decides).

The released train_encoder.py reads e_label_ce_loss / e_label_dice_loss from its json but
never uses them; neither does this task.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganzoo.core.errors import ConfigError
from ganzoo.core.image import colorize_labels
from ganzoo.core.weights import sha256_of
from ganzoo.data.batch import Batch
from ganzoo.losses.lpips import LPIPS
from ganzoo.models.editgan import (
    EditGANNets,
    FPNEncoder,
    SegmentationBranch,
    feature_channels,
    synthesis_with_features,
    upsample_features,
)
from ganzoo.models.stylegan2 import Generator
from ganzoo.tasks.base import GANTask, Phase
from ganzoo.tasks.distributed import average_gradients
from ganzoo.tasks.editing import EditSettings, EmbedSettings, embed, eval_mode, segment


def read_stylegan2_spec(path: str) -> dict[str, Any]:
    """Generator arguments (and provenance) of a model=stylegan2 ganzoo checkpoint."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ConfigError(f"model.stylegan2_ckpt={path} does not exist") from None
    config = checkpoint.get("ganzoo_config") if isinstance(checkpoint, dict) else None
    target = (config or {}).get("model", {}).get("_target_")
    if target != "ganzoo.tasks.stylegan2.StyleGAN2Task":
        raise ConfigError(
            f"model.stylegan2_ckpt={path} is not a model=stylegan2 ganzoo checkpoint "
            f"(model {target}); train one, or convert an official pickle with ganzoo.convert"
        )
    assert config is not None
    kwargs = {k: v for k, v in config["model"]["generator"].items() if not k.startswith("_")}
    model = config["model"]
    kwargs["c_dim"] = int(model["num_classes"]) if model["conditional"] else 0
    state = checkpoint["state_dict"]
    return {
        "generator": kwargs,
        "source": str(path),
        "sha256": sha256_of(path),
        "iteration": int(state["iteration"]) if "iteration" in state else None,
    }


def load_stylegan2_weights(path: str, generator: nn.Module) -> None:
    """The EMA generator of a model=stylegan2 checkpoint into `generator`."""
    state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    prefix = "generator_ema."
    ours = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    try:
        generator.load_state_dict(ours)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[-1].strip()
        raise ConfigError(f"model.stylegan2_ckpt={path}: {first}") from None


class EditGANTask(GANTask):
    """Encoder + segmentation branch on a frozen StyleGAN2 (the `generator` slot holds both)."""

    annotated_ws: Tensor
    annotated_labels: Tensor
    annotated_count: Tensor

    needs = ("image", "label_map")  # the label maps of the annotated images

    def __init__(
        self,
        encoder: Callable[..., FPNEncoder],  # ganzoo.models.editgan.FPNEncoder, given the sizes
        optim: dict[str, Any],  # conf/optim/editgan.yaml: lr_g (encoder) 3e-5, lr_d (branch) 1e-3
        ema: dict[str, Any],  # unused (no averaged copy); EmaSpec keys
        total_iterations: int,
        stylegan2_ckpt: str | None,  # a model=stylegan2 (or converted) ganzoo checkpoint
        num_classes: int,  # semantic classes of the annotations (data.label_nc)
        annotated: int,  # annotated training images for the branch (data.annotated; official 16-32)
        batch_size: int,  # data.batch_size: images per annotation iteration
        encoder_steps: int,  # iterations of encoder training
        real_start: int,  # first iteration of the real-image encoder loss
        num_models: int,  # pixel classifiers in the ensemble (official 10)
        branch_batch_size: int,  # pixels per classifier step (official 64)
        p_loss: float,  # LPIPS weight (10)
        mse_loss: float,  # L2 weight (1)
        encoder_loss: float,  # encoder latent regression weight on generated images (5)
        sample_batch: int,  # generated images per encoder iteration (sample_bs 2)
        noise_mode: str,  # G's noise inputs: const (use_noise false)
        annotation_embedding_steps: int,  # per-image optimisation of the annotated images
        embedding: dict[str, Any],  # EmbedSettings: steps 100, lr 0.1, ...
        edit: dict[str, Any],  # EditSettings: steps 30, lr 0.02, rgb_loss_weight 15, ...
        lpips: Callable[[], LPIPS],  # the perceptual distance (weights.vgg16 + weights.lpips_vgg)
        generator: dict[str, Any] | None = None,  # StyleGAN2 arguments without a checkpoint (info)
        stylegan2_spec: dict[str, Any] | None = None,  # written into this run's checkpoints
        perceptual: Callable[[], Any] | None = None,  # unused: ganzoo.info passes it to every task
    ) -> None:
        # a checkpoint of this run carries G's weights itself; without any (ganzoo.info) the
        # architecture is `generator`'s and training stops at setup
        load = stylegan2_spec is None and stylegan2_ckpt is not None
        if stylegan2_spec is None and stylegan2_ckpt is not None:
            stylegan2_spec = read_stylegan2_spec(str(stylegan2_ckpt))
        elif stylegan2_spec is None:
            kwargs = {k: v for k, v in (generator or {}).items() if not k.startswith("_")}
            stylegan2_spec = {"generator": kwargs, "source": None}
        stylegan = Generator(**stylegan2_spec["generator"])
        if load and not next(stylegan.parameters()).is_meta:  # meta: shapes only (preflight)
            load_stylegan2_weights(str(stylegan2_ckpt), stylegan)
        res = stylegan.img_resolution
        in_channels = sum(feature_channels(stylegan.synthesis))
        nets = EditGANNets(
            encoder(resolution=res, num_ws=stylegan.num_ws, w_dim=stylegan.w_dim),
            SegmentationBranch(in_channels, num_classes, num_models),
        )
        super().__init__(nets, nn.Module(), optim, ema, total_iterations)
        if annotated < 1 or encoder_steps < 0 or real_start < 0:
            raise ConfigError(
                f"data.annotated must be >= 1 and model.encoder_steps, real_start >= 0; got "
                f"{annotated}, {encoder_steps}, {real_start}"
            )
        self.annotation_iterations = math.ceil(annotated / batch_size)
        first_branch = encoder_steps + self.annotation_iterations
        if total_iterations <= first_branch:
            raise ConfigError(
                f"steps={total_iterations} leaves no branch training: model=editgan runs "
                f"{encoder_steps} encoder iterations (model.encoder_steps) and "
                f"{self.annotation_iterations} annotation iterations (data.annotated={annotated}"
                f" / data.batch_size={batch_size}); set steps > {first_branch}"
            )
        self.stylegan = stylegan.requires_grad_(False).eval()
        self.stylegan2_spec = stylegan2_spec
        self.file_modules |= {"generator_ema", "_lpips"}  # no averaged copy, no weight files
        self.num_classes, self.annotated = num_classes, annotated
        self.encoder_steps, self.real_start = encoder_steps, real_start
        self.branch_batch_size = branch_batch_size
        self.weights = {"p_loss": p_loss, "mse_loss": mse_loss, "encoder_loss": encoder_loss}
        self.sample_batch = sample_batch
        self.noise_mode = noise_mode
        self.annotation_embedding = EmbedSettings.from_dict(
            {**embedding, "steps": annotation_embedding_steps}
        )
        self.embed_settings = EmbedSettings.from_dict(embedding)
        self.edit_settings = EditSettings.from_dict(edit)
        self._lpips_factory = lpips
        self._lpips: LPIPS | None = None
        self._features: tuple[Tensor, Tensor] | None = None  # branch training pixels, labels
        ws_shape = (annotated, stylegan.num_ws, stylegan.w_dim)
        self.register_buffer("annotated_ws", torch.zeros(ws_shape))
        self.register_buffer("annotated_labels", torch.zeros(annotated, res, res, dtype=torch.long))
        self.register_buffer("annotated_count", torch.zeros((), dtype=torch.long))

    # ----- parts ----------------------------------------------------------------------------
    @property
    def nets(self) -> EditGANNets:
        return cast(EditGANNets, self.generator)

    @property
    def encoder(self) -> FPNEncoder:
        return self.nets.encoder

    @property
    def branch(self) -> SegmentationBranch:
        return self.nets.branch

    @property
    def resolution(self) -> int:
        return int(self.stylegan.img_resolution)

    @property
    def branch_trained(self) -> bool:
        return int(self.iteration) > self.encoder_steps + self.annotation_iterations

    def lpips(self) -> LPIPS:
        """The perceptual distance, built from its weight files on first use."""
        if self._lpips is None:
            self._lpips = self._lpips_factory().to(self.annotated_ws.device)
        return self._lpips

    def setup(self, stage: str) -> None:
        if stage == "fit" and self.stylegan2_spec["source"] is None:
            raise ConfigError(
                "model=editgan needs model.stylegan2_ckpt=PATH (checkpoints/last.ckpt of a "
                "model=stylegan2 run, or an official pickle converted by ganzoo.convert)"
            )

    def train(self, mode: bool = True) -> EditGANTask:
        super().train(mode)
        self.stylegan.eval()  # frozen G: no w_avg update, fused modconv
        return self

    def phases(self) -> Sequence[Phase]:
        return (Phase("E", "G", "encoder_sampled_loss"), Phase("branch", "D", "branch_loss"))

    def networks(self) -> dict[str, nn.Module]:
        return {"encoder": self.encoder, "branch": self.branch}

    def synthesize(self, ws: Tensor, with_features: bool = False) -> tuple[Tensor, list[Tensor]]:
        """G's image (N, 3, R, R) of ws and, if asked, its feature maps (else [])."""
        if with_features:
            return synthesis_with_features(self.stylegan.synthesis, ws, self.noise_mode)
        return self.stylegan.synthesis(ws, noise_mode=self.noise_mode).float(), []

    # ----- optimisation ---------------------------------------------------------------------
    def configure_optimizers(self) -> list[torch.optim.Optimizer]:  # type: ignore[override]
        spec = self.optim_spec
        return [
            torch.optim.Adam(self.encoder.parameters(), lr=spec.lr_g, betas=spec.betas_g),
            torch.optim.Adam(self.branch.parameters(), lr=spec.lr_d, betas=spec.betas_d),
        ]

    def training_step(self, batch: Batch, batch_idx: int) -> None:
        it = int(self.iteration)
        opt_e, opt_b = self.optimizers()  # type: ignore[misc,attr-defined]
        logs: dict[str, Tensor] = {}
        if it < self.encoder_steps:
            if it >= self.real_start:
                logs.update(self._step(opt_e, "E_real", self.encoder_real_loss(batch)))
            logs.update(self._step(opt_e, "E", self.encoder_sampled_loss(batch)))
        elif int(self.annotated_count) < self.annotated:
            logs["annotation/count"] = self.annotate(batch).float()
        else:
            logs.update(self._step(opt_b, "branch", self.branch_loss(batch)))
        self.iteration += 1
        self.images_seen += batch.size * self.trainer.world_size
        self.log_dict(logs, on_step=True, prog_bar=False, batch_size=batch.size)
        self.log("iteration", float(self.iteration), on_step=True, prog_bar=False)

    def _step(self, opt: Any, name: str, terms: dict[str, Tensor]) -> dict[str, Tensor]:
        opt.zero_grad(set_to_none=True)
        total = torch.stack([t.float() for t in terms.values()]).sum()
        self.manual_backward(total)
        average_gradients(p for group in opt.param_groups for p in group["params"])  # ddp
        opt.step()
        logs = {f"loss/{name}/{k}": v.detach().float() for k, v in terms.items()}
        logs[f"loss/{name}/total"] = total.detach()
        return logs

    def reconstruction_terms(self, fake: Tensor, real: Tensor) -> dict[str, Tensor]:
        """p_loss x LPIPS + mse_loss x MSE, images compared in [0, 1] (train_encoder.py)."""
        return {
            "p_loss": self.lpips()(fake, real).mean() * self.weights["p_loss"],
            "mse": F.mse_loss((fake + 1) / 2, (real + 1) / 2) * self.weights["mse_loss"],
        }

    def encoder_real_loss(self, batch: Batch) -> dict[str, Tensor]:
        """Real images through E and G, compared with themselves."""
        fake, _ = self.synthesize(self.encoder(batch.image))
        return self.reconstruction_terms(fake, batch.image)

    def encoder_sampled_loss(self, batch: Batch) -> dict[str, Tensor]:
        """Generated images: E(G(w)) regresses w, and G(E(G(w))) reconstructs G(w)."""
        g, device = self.stylegan, self.iteration.device
        z = torch.randn(self.sample_batch, g.z_dim, device=device)
        c = None  # a class-conditional G: random classes
        if g.c_dim > 0:
            c = F.one_hot(torch.randint(0, g.c_dim, (len(z),), device=device), g.c_dim).float()
        with torch.no_grad():
            ws = g.mapping(z, c)
            images, _ = self.synthesize(ws)
        encoded = self.encoder(images)
        fake, _ = self.synthesize(encoded)
        terms = {"encoder": F.mse_loss(encoded, ws) * self.weights["encoder_loss"]}
        return {**terms, **self.reconstruction_terms(fake, images)}

    def annotate(self, batch: Batch) -> Tensor:
        """Embed the batch's images (up to `annotated` in all) and keep their label maps."""
        start = int(self.annotated_count)
        take = min(self.annotated - start, batch.size)
        assert batch.label_map is not None
        images, labels = batch.image[:take], batch.label_map[:take]
        if labels.shape[-2:] != (self.resolution, self.resolution):
            raise ConfigError(
                f"label maps are {tuple(labels.shape[-2:])}; StyleGAN2 makes "
                f"{self.resolution}x{self.resolution} images (set data.resolution)"
            )
        with torch.enable_grad():
            ws = embed(self, images, self.annotation_embedding)
        self.annotated_ws[start : start + take] = ws
        self.annotated_labels[start : start + take] = labels
        self.annotated_count += take
        return self.annotated_count

    def branch_pixels(self) -> tuple[Tensor, Tensor]:
        """All annotated pixels: features (P, C) in float16, as the official keeps them, and
        labels (P,) (computed once, not saved)."""
        if self._features is None:
            feats, labels = [], []
            with torch.no_grad():
                for ws, label in zip(self.annotated_ws.split(4), self.annotated_labels.split(4),
                                     strict=True):
                    _, maps = self.synthesize(ws, with_features=True)
                    up = upsample_features(maps, self.resolution, "bilinear")
                    feats.append(up.permute(0, 2, 3, 1).reshape(-1, up.shape[1]).half())
                    labels.append(label.reshape(-1))
            self._features = (torch.cat(feats), torch.cat(labels))
        return self._features

    def branch_loss(self, batch: Batch) -> dict[str, Tensor]:
        """Cross-entropy of each pixel classifier on its own random pixels."""
        pixels, labels = self.branch_pixels()
        losses = []
        for model in self.branch.models:
            idx = torch.randint(0, pixels.shape[0], (self.branch_batch_size,),
                                device=pixels.device)
            losses.append(F.cross_entropy(model(pixels[idx].float()), labels[idx]))
        return {"ce": torch.stack(losses).sum()}

    # ----- samples, description, checkpoints -------------------------------------------------
    @torch.no_grad()
    def sample_ema(self, batch: Batch, latents: Tensor | None) -> Tensor:
        """Reconstructions G(E(x)) of the batch's images (encoder in eval mode)."""
        with eval_mode(self.encoder):
            return self.synthesize(self.encoder(batch.image))[0]

    def grid_columns(self, batch: Batch, fake: Tensor) -> list[tuple[str, Tensor]]:
        columns = [("G(E(x))", fake), ("real", batch.image)]
        if self.branch_trained:
            with torch.no_grad(), eval_mode(self.encoder):
                logits = segment(self, self.encoder(batch.image))[1]
            columns.append(("branch", colorize_labels(logits.argmax(1), self.num_classes)))
        return columns

    def io_shapes(self, batch: Batch) -> dict[str, dict[str, Any]]:
        """The frozen G (ws -> image), the branch and, at G's resolution, the encoder."""
        g = self.stylegan
        ws = torch.zeros(batch.size, g.num_ws, g.w_dim, device=batch.image.device)
        with torch.no_grad():
            image = self.synthesize(ws)[0]
        channels = sum(feature_channels(g.synthesis))
        shapes = {
            "G": {"inputs": [list(ws.shape)], "output": list(image.shape)},
            "branch": {"inputs": [[-1, channels]], "output": [-1, self.num_classes]},
        }
        if tuple(batch.image.shape[-2:]) == tuple(image.shape[-2:]):
            with torch.no_grad(), eval_mode(self.encoder):
                encoded = self.encoder(batch.image)
            shapes["encoder"] = {"inputs": [list(batch.image.shape)], "output": list(encoded.shape)}
        return shapes

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        config = dict(checkpoint.get("ganzoo_config") or {})
        if "model" in config:  # the StyleGAN2 architecture travels with the run
            config["model"] = {**config["model"], "stylegan2_spec": self.stylegan2_spec}
            checkpoint["ganzoo_config"] = config

