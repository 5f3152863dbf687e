"""pix2pixHD training (NVIDIA/pix2pixHD models/pix2pixHD_model.py, train.py) and its test-time
feature clustering (encode_features.py; pix2pixHD_model.py sample_features).

Per iteration, as the official train.py: G generates once; a G step (LSGAN summed over the D
scales + feature matching x lambda_feat x (1/num_D)(4/(n_layers_D+1)) + VGG x lambda_vgg), then
a D step on that same fake, detached (D loss = 0.5 (D_fake + D_real)). The official code takes
both losses from one forward and steps G before D, so D judges the fake G made before its
update; here the G phase keeps its fake for the D phase, which gives the same computation. As
the official forward, D runs once on the real image per iteration: the G phase's D(real) (its
features detached for feature matching) keeps its graph through D's parameters, and the D phase
takes its D_real loss from it (G's step does not change D).

Coarse-to-fine (Sec. 3.2; train_1024p_24G.sh). A local run (netG 'local') starts from a global
run's checkpoint (`load_global`: G1, and E and the D scales as the official --load_pretrain) and
for its first `fix_global_steps` iterations trains only the enhancer: G1 runs without autograd,
so its parameters get no gradient and Adam skips them (the official code instead builds G's
Adam over the enhancer only, then a new Adam over all of G after niter_fix_global epochs; here
the enhancer keeps its Adam moments across the switch, and G1's start from zero as in the
official new optimiser).

Instance features (Sec. 3.4, --instance_feat). E's region-averaged features of the real image
are concatenated to G's input. The official Encoder averages over each sample's instance ids
alone (networks.py Encoder.forward): `instance_regions: instance`, the default. On Cityscapes the
ids encode the class (the label id for stuff, label x 1000 + k for objects), so that is the same
as averaging over (label, instance) pairs; where ids repeat across classes (the synthetic scenes
number objects 1..K and leave every background class at 0) the official average mixes classes
sharing an id (0.3 relative apart on those scenes). `instance_regions: label_instance` averages
over (label, instance) pairs instead, ganzoo's choice before round 5: per-class regions even with
such ids. The test-time feature clustering (feature_records, render_latents) always keeps one
class per region, i.e. (label, instance) pairs (a sub-region of an instance region has its mean).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import torch
from torch import Tensor, nn

from ganzoo.core.errors import ConfigError
from ganzoo.core.image import colorize_labels
from ganzoo.data.batch import Batch
from ganzoo.losses.adversarial import d_loss, g_loss
from ganzoo.losses.feature_matching import feature_matching, pix2pixhd_weight
from ganzoo.models.pix2pixhd import (
    FeatureEncoder,
    Pix2PixHDGenerator,
    region_ids,
    region_means,
)
from ganzoo.nn.init import pix2pixhd_init
from ganzoo.nn.patch_discriminator import MultiscaleDiscriminator, PatchDiscriminator
from ganzoo.nn.semantic import instance_edges, one_hot_labels
from ganzoo.tasks.base import GANTask, Phase

AREA_BLOCKS = 32  # encode_features: an instance's area is measured in units of H W / 32 pixels


class Pix2PixHDTask(GANTask):
    """pix2pixHD on any dataset with label maps (instance maps for edges and features)."""

    needs = ("image", "label_map")  # at least (checked before build)

    generator: Pix2PixHDGenerator
    discriminator: MultiscaleDiscriminator

    def __init__(
        self,
        generator: Callable[..., nn.Module],  # partial Pix2PixHDGenerator; input_nc, netG added
        discriminator: Callable[
            ..., nn.Module
        ],  # partial MultiscaleDiscriminator; in_channels added
        encoder: Callable[..., nn.Module],  # partial FeatureEncoder (built only with instance_feat)
        perceptual: Callable[[], nn.Module],  # builds the VGG loss (called only if lambda_vgg > 0)
        optim: dict[str, Any],  # conf/optim/pix2pixhd.yaml
        ema: dict[str, Any],  # EMA generator settings (ganzoo's addition)
        total_iterations: int,  # run length, for the lr decay
        label_nc: int,  # semantic classes (Cityscapes 35)
        contain_dontcare_label: bool,  # one more label channel (ADE20K "other")
        use_instance_edges: bool,  # concatenate the instance boundary map (not --no_instance)
        instance_feat: bool,  # concatenate E's instance-wise features (--instance_feat)
        netG: str,  # 'global' (G1) or 'local' (G1 + enhancer) (--netG)
        fix_global_steps: int,  # local: iterations training only the enhancer (--niter_fix_global)
        load_global: str | None,  # local: checkpoint of the global run (--load_pretrain)
        gan_mode: str = "lsgan",  # pix2pixHD default (vanilla = --no_lsgan; hinge also works)
        lambda_feat: float = 10.0,  # feature matching weight (--lambda_feat)
        lambda_vgg: float = 10.0,  # VGG weight (the official code reuses lambda_feat, 10)
        init_std: float = 0.02,  # N(0, std) conv init (networks.py weights_init)
        instance_regions: str = "instance",  # per instance id (official) | label_instance
    ) -> None:
        if fix_global_steps < 0:
            raise ConfigError(f"model.fix_global_steps must be >= 0; got {fix_global_steps}")
        if netG != "local" and (fix_global_steps > 0 or load_global is not None):
            raise ConfigError(
                "model.fix_global_steps and model.load_global are for the local enhancer; "
                f"set model.netG=local (got netG={netG})"
            )
        if instance_regions not in ("instance", "label_instance"):
            raise ConfigError(
                "model.instance_regions must be one of 'instance', 'label_instance'; "
                f"got {instance_regions!r}"
            )
        self.instance_regions = instance_regions
        self.label_channels = label_nc + int(contain_dontcare_label)
        semantic_nc = self.label_channels + int(use_instance_edges)
        enc = cast(FeatureEncoder, encoder()) if instance_feat else None
        feat_num = enc.feat_num if enc is not None else 0
        g = generator(input_nc=semantic_nc + feat_num, netG=netG)
        d = discriminator(in_channels=semantic_nc + 3)
        for net in (g, d, enc):
            if net is not None:
                pix2pixhd_init(net, init_std)
        super().__init__(g, d, optim, ema, total_iterations)
        self.encoder = enc
        self.vgg = perceptual() if lambda_vgg > 0 else None
        self.file_modules.add("vgg")
        self.use_instance_edges = use_instance_edges
        self.instance_feat = instance_feat
        self.fix_global_steps = fix_global_steps
        self.load_global = load_global
        self.gan_mode = gan_mode
        self.lambda_feat = lambda_feat
        self.lambda_vgg = lambda_vgg
        finest = self.discriminator.scales[0]
        assert isinstance(finest, PatchDiscriminator)
        n_layers_d = len(finest.layers) - 2  # the official n_layers_D
        self.feat_weight = pix2pixhd_weight(len(self.discriminator.scales), n_layers_d)
        # The G phase's fakes for the D phase, by (data pointer, shape) of their batch's images
        # (the same tensors in both phases, also when a phase splits the batch to accumulate).
        self._fakes: dict[tuple[int, tuple[int, ...]], Tensor] = {}
        # ... with its D(real) features (graph through D's parameters kept) and semantics
        self._reals: dict[tuple[int, tuple[int, ...]], tuple[Tensor, list]] = {}
        self._fakes_iteration = -1

    def required_fields(self) -> tuple[str, ...]:
        needs_instances = self.use_instance_edges or self.instance_feat
        return ("image", "label_map") + (("instance_map",) if needs_instances else ())

    def phases(self) -> Sequence[Phase]:
        return (
            Phase("G", "G", "generator_loss", updates_ema=True),
            Phase("D", "D", "discriminator_loss"),
        )

    def generator_modules(self) -> list[nn.Module]:
        """G and E share the G optimiser (pix2pixHD_model.py:103-105)."""
        return [self.generator] + ([self.encoder] if self.encoder is not None else [])

    def networks(self) -> dict[str, nn.Module]:
        nets = super().networks()
        if self.encoder is not None:
            nets["E"] = self.encoder
        return nets

    # ----- inputs -------------------------------------------------------------------
    def semantics(self, batch: Batch) -> Tensor:
        """One-hot labels (+ instance edges): (N, semantic_nc, H, W) (encode_input)."""
        assert batch.label_map is not None
        sem = one_hot_labels(batch.label_map, self.label_channels)
        if self.use_instance_edges:
            assert batch.instance_map is not None
            sem = torch.cat([sem, instance_edges(batch.instance_map)], dim=1)
        return sem

    def regions(self, label_map: Tensor, instance_map: Tensor) -> Tensor:
        """(N, H, W) ids of the regions E averages over: the instance ids (official), or the
        (label, instance) pairs with instance_regions 'label_instance' (module docstring)."""
        if self.instance_regions == "instance":
            return instance_map
        return self.class_regions(label_map, instance_map)

    @staticmethod
    def class_regions(label_map: Tensor, instance_map: Tensor) -> Tensor:
        """(N, H, W) ids of the (label, instance) pairs: one class per region."""
        if instance_map.is_meta:
            return instance_map
        return label_map * (int(instance_map.max()) + 1) + instance_map

    def encode(self, batch: Batch) -> Tensor:
        """E's instance-wise features of the real image: (N, feat_num, H, W)."""
        assert self.encoder is not None and batch.label_map is not None
        assert batch.instance_map is not None
        return self.encoder(batch.image, self.regions(batch.label_map, batch.instance_map))

    def global_is_fixed(self) -> bool:
        """True while a local run trains only the enhancer (the first fix_global_steps)."""
        return int(self.iteration) < self.fix_global_steps

    def generate(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """(semantics, fake) for training; G1 without autograd while it is fixed."""
        sem = self.semantics(batch)
        x = sem if self.encoder is None else torch.cat([sem, self.encode(batch)], dim=1)
        if not self.global_is_fixed():
            return sem, self.generator(x)
        with torch.no_grad():
            coarse = self.generator.global_features(x)
        return sem, self.generator.enhance(x, coarse)

    def discriminate(self, sem: Tensor, fake: Tensor, real: Tensor) -> tuple[list, list]:
        """D on [sem, fake] and [sem, real] in one forward (instance norm keeps them apart);
        per-scale feature lists of each."""
        x = torch.cat([torch.cat([sem, fake], 1), torch.cat([sem, real], 1)], dim=0)
        outputs = self.discriminator(x)
        n = fake.shape[0]
        pred_fake = [[f[:n] for f in scale] for scale in outputs]
        pred_real = [[f[n:] for f in scale] for scale in outputs]
        return pred_fake, pred_real

    def judge_real(self, sem: Tensor, real: Tensor) -> list:
        """D's per-scale features of [sem, real], recording the graph through D's parameters
        also in the G phase (toggle_optimizer froze them there), so that the D phase reuses
        it as the official forward reuses pred_real."""
        params = list(self.discriminator.parameters())
        states = [p.requires_grad for p in params]
        for p in params:
            p.requires_grad_(True)
        try:
            return self.discriminator(torch.cat([sem, real], 1))
        finally:
            for p, state in zip(params, states, strict=True):
                p.requires_grad_(state)

    # ----- losses -------------------------------------------------------------------
    def generator_loss(self, batch: Batch) -> dict[str, Tensor]:
        """G_GAN + G_GAN_Feat + G_VGG (pix2pixHD_model.py:170-190; train.py:79)."""
        if self._fakes_iteration != int(self.iteration):  # drop what an earlier one left
            self._fakes, self._reals = {}, {}
            self._fakes_iteration = int(self.iteration)
        sem, fake = self.generate(batch)
        pred_fake = self.discriminator(torch.cat([sem, fake], 1))
        pred_real = self.judge_real(sem, batch.image)
        self._fakes[_key(batch)] = fake.detach()
        self._reals[_key(batch)] = (sem, pred_real)
        pred_real = [[f.detach() for f in scale] for scale in pred_real]
        terms = {"gan": g_loss(self.gan_mode, [s[-1] for s in pred_fake], "sum")}
        if self.lambda_feat > 0:
            fm = feature_matching(pred_fake, pred_real, self.feat_weight)
            terms["feat"] = fm * self.lambda_feat
        if self.vgg is not None:
            terms["vgg"] = self.vgg(fake, batch.image) * self.lambda_vgg
        return terms

    def discriminator_loss(self, batch: Batch) -> dict[str, Tensor]:
        """0.5 (D_fake + D_real) (train.py:78), logged as the two halves."""
        cached = self._fakes.pop(_key(batch), None)
        reals = self._reals.pop(_key(batch), None)
        if cached is not None and reals is not None:
            fake, (sem, pred_real) = cached, reals
            pred_fake = self.discriminator(torch.cat([sem, fake.detach()], 1))
        else:  # a D phase without a G phase before it: generate afresh
            with torch.no_grad():
                sem, fake = self.generate(batch)
            pred_fake, pred_real = self.discriminate(sem, fake.detach(), batch.image)
        terms = d_loss(self.gan_mode, [s[-1] for s in pred_real], [s[-1] for s in pred_fake], "sum")
        return {"fake": 0.5 * terms["fake"], "real": 0.5 * terms["real"]}

    # ----- coarse-to-fine: start a local run from a global one ---------------------
    def on_fit_start(self) -> None:
        if self.fix_global_steps > 0 and self.load_global is None:
            raise ConfigError(
                f"model.fix_global_steps={self.fix_global_steps} keeps G1 fixed, but "
                "model.load_global is null: pass the global run's checkpoint"
            )
        if self.load_global is not None and int(self.iteration) == 0:  # not on resume
            print(f"ganzoo: {self.load_global_run(Path(self.load_global))}")

    @torch.no_grad()
    def load_global_run(self, path: Path) -> str:
        """Copy G1, E and the D scales of a global run's checkpoint (--load_pretrain).

        G1 (`global_generator`) has the same layers in both networks. D scale s of the global
        run saw 1/2^s of the global resolution, half the local one, so it fills scale s + k of
        the local D (k enhancers), as the official key matching does; the finest local scale
        keeps its init. E is copied when both runs use instance features. Returns a summary.
        """
        if not path.is_file():
            raise ConfigError(f"model.load_global={path} does not exist")
        state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
        loaded = [
            _load_prefixed(
                self.generator.global_generator, state, path, "generator.global_generator.", "G1"
            )
        ]
        if self.encoder is not None:
            loaded.append(_load_prefixed(self.encoder, state, path, "encoder.", "E"))
        k = self.generator.n_local_enhancers
        for s, scale in enumerate(self.discriminator.scales):
            if s >= k and any(key.startswith(f"discriminator.scales.{s - k}.") for key in state):
                prefix = f"discriminator.scales.{s - k}."
                loaded.append(_load_prefixed(scale, state, path, prefix, f"D scale {s}"))
        self.generator_ema.load_state_dict(self.generator.state_dict())
        return f"{', '.join(loaded)} loaded from the global run {path}"

    # ----- sampling -----------------------------------------------------------------
    def generator_inputs(self, batch: Batch, latents: Tensor | None) -> tuple[Tensor, ...]:
        """(labels [+ edges] [+ features],); latents: a feature map (N, feat_num, H, W) to use
        instead of encoding the real image (e.g. from `render_latents`)."""
        sem = self.semantics(batch)
        if self.encoder is None:
            return (sem,)
        features = self.encode(batch) if latents is None else latents[: sem.shape[0]]
        return (torch.cat([sem, features.to(sem.dtype)], dim=1),)

    def discriminator_inputs(self, batch: Batch, images: Tensor) -> tuple[Tensor, ...]:
        return (torch.cat([self.semantics(batch), images], dim=1),)

    def grid_columns(self, batch: Batch, fake: Tensor) -> list[tuple[str, Tensor]]:
        assert batch.label_map is not None
        labels = colorize_labels(batch.label_map, self.label_channels)
        return [("label map", labels), ("EMA generator", fake), ("real", batch.image)]

    @torch.no_grad()
    def feature_records(self, batch: Batch) -> tuple[Tensor, Tensor, Tensor]:
        """Each region's class (R,), E feature (R, feat_num) and area in units of H W / 32
        pixels (R,), as encode_features (pix2pixHD_model.py:231-250) records them."""
        if self.encoder is None:
            raise ConfigError("this run has no feature encoder (trained with instance_feat=false)")
        assert batch.label_map is not None and batch.instance_map is not None
        index, count = region_ids(self.class_regions(batch.label_map, batch.instance_map))
        features = region_means(self.encode(batch), index, count)  # (R, feat_num)
        flat = index.reshape(-1)
        labels = torch.zeros(count, dtype=torch.long, device=flat.device)
        labels.scatter_(0, flat, batch.label_map.reshape(-1))
        h, w = batch.label_map.shape[1:]
        areas = torch.bincount(flat, minlength=count).float() / (h * w // AREA_BLOCKS)
        return labels, features, areas

    def fit_feature_clusters(
        self, batches: Iterable[Batch], n_clusters: int, seed: int, min_area: float = 0.5
    ) -> dict[int, Tensor]:
        """encode_features.py: E's features of every region of `batches`, per class k-means
        with min(n_clusters, regions) centres over the regions larger than min_area (x H W /
        32 pixels). Returns {label: centres (k, feat_num)} for the classes that have any."""
        records = [self.feature_records(b.to(self.device)) for b in batches]
        labels = torch.cat([r[0] for r in records]).cpu()
        features = torch.cat([r[1] for r in records]).cpu()
        areas = torch.cat([r[2] for r in records]).cpu()
        centres: dict[int, Tensor] = {}
        for label in labels.unique().tolist():
            points = features[(labels == label) & (areas > min_area)]
            if len(points):
                centres[int(label)] = kmeans(points, min(n_clusters, len(points)), seed)
        return centres

    def render_latents(
        self,
        batch: Batch,
        clusters: Mapping[int, Tensor] | None,  # {label: centres (k, feat_num)}
        choice: Mapping[int, int],  # {label: centre index}; other classes draw one per region
        generator: torch.Generator | None,  # for the draws
    ) -> Tensor | None:
        """Feature maps (N, feat_num, H, W) from the clustered centres (sample_features): each
        region gets centre choice[label], or a random one; classes without centres get 0.
        None when the run has no feature encoder."""
        if self.encoder is None:
            return None
        if clusters is None:
            raise ConfigError("no feature clusters: run `ganzoo.sample action=cluster` first")
        assert batch.label_map is not None and batch.instance_map is not None
        index, count = region_ids(self.class_regions(batch.label_map, batch.instance_map))
        flat = index.reshape(-1).cpu()
        labels = torch.zeros(count, dtype=torch.long).scatter_(
            0, flat, batch.label_map.cpu().reshape(-1)
        )
        table = torch.zeros(count, self.encoder.feat_num)
        for r, label in enumerate(labels.tolist()):
            if label not in clusters:
                continue
            centres = clusters[label]
            i = choice.get(label)
            if i is None:
                i = int(torch.randint(len(centres), (), generator=generator))
            elif not 0 <= i < len(centres):
                raise ConfigError(f"centres: class {label} has {len(centres)} centres; got {i}")
            table[r] = centres[i]
        n, h, w = batch.label_map.shape
        maps = table[flat].reshape(n, h, w, -1).permute(0, 3, 1, 2)  # (N, feat_num, H, W)
        return maps.to(self.device)


def _key(batch: Batch) -> tuple[int, tuple[int, ...]]:
    """Identifies a batch's images across the G and D phases of one iteration."""
    return batch.image.data_ptr(), tuple(batch.image.shape)


def _load_prefixed(
    module: nn.Module, state: Mapping[str, Tensor], path: Path, prefix: str, name: str
) -> str:
    """Load the entries of `state` under `prefix` into `module` (all of its keys); returns name."""
    own = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    if not own:
        raise ConfigError(f"model.load_global={path} has no {name} ({prefix}*)")
    try:
        module.load_state_dict(own, strict=True)
    except RuntimeError as error:
        detail = str(error).splitlines()[-1].strip()
        raise ConfigError(
            f"model.load_global={path}: {name} does not match this network ({detail}); the "
            "global run needs the same labels, instance edges, instance_feat and widths"
        ) from None
    return name


def kmeans(
    points: Tensor,  # (M, D) samples
    k: int,  # clusters, 1 <= k <= M
    seed: int,  # seeds the k-means++ draws (encode_features.py: KMeans(random_state=0))
    n_init: int = 10,  # restarts, the best inertia kept (sklearn's default then)
    max_iter: int = 300,  # Lloyd iterations per restart (sklearn's default)
    tol: float = 1e-4,  # stop when the centres move less than tol x mean variance (sklearn)
) -> Tensor:
    """Deterministic k-means: k-means++ seeding, Lloyd iterations, best of n_init restarts.

    Plays the role of sklearn.cluster.KMeans in encode_features.py (not bit-identical: sklearn's
    greedy k-means++ tries several candidates per centre). Returns centres (k, D), float32.
    """
    if not 1 <= k <= len(points):
        raise ValueError(f"kmeans: k must lie in [1, {len(points)}]; got {k}")
    x = points.double()
    g = torch.Generator().manual_seed(seed)
    threshold = tol * float(x.var(0, unbiased=False).mean()) if len(x) > 1 else 0.0
    best, best_inertia = x[:k], float("inf")
    for _ in range(n_init):
        centres = _kmeans_plus_plus(x, k, g)
        for _ in range(max_iter):
            assign = torch.cdist(x, centres).argmin(1)  # (M,)
            sums = torch.zeros_like(centres).index_add_(0, assign, x)
            counts = torch.bincount(assign, minlength=k).to(x.dtype)[:, None]
            moved = torch.where(counts > 0, sums / counts.clamp_min(1), centres)  # empty: stay
            shift = float((moved - centres).pow(2).sum())
            centres = moved
            if shift <= threshold:
                break
        inertia = float(torch.cdist(x, centres).min(1).values.pow(2).sum())
        if inertia < best_inertia:
            best, best_inertia = centres, inertia
    return best.float()


def _kmeans_plus_plus(x: Tensor, k: int, g: torch.Generator) -> Tensor:
    """k-means++ seeding: the first centre uniform, each next one with probability ~ D^2."""
    chosen = [int(torch.randint(len(x), (), generator=g))]
    d2 = (x - x[chosen[0]]).pow(2).sum(1)  # (M,) squared distance to the nearest centre
    for _ in range(1, k):
        weights = d2 if float(d2.sum()) > 0 else torch.ones_like(d2)
        chosen.append(int(torch.multinomial(weights, 1, generator=g)))
        d2 = torch.minimum(d2, (x - x[chosen[-1]]).pow(2).sum(1))
    return x[chosen].clone()
