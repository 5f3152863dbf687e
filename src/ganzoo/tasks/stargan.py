"""StarGAN training (yunjey/stargan solver.py), one dataset or two with the mask vector.

Per iteration, in the official order (solver.py:243-288):

    D, every iteration:
        -mean(D_src(x)) + mean(D_src(G(x, c_trg))) + lambda_cls L_cls(D_cls(x), c_org)
        + lambda_gp mean((||grad D_src(x_hat)||_2 - 1)^2),
        x_hat = a x + (1 - a) G(x, c_trg), a ~ U(0, 1) per image
    G, every n_critic-th iteration (the 5th, 10th, ...), after D:
        -mean(D_src(G(x, c_trg))) + lambda_cls L_cls(D_cls(G(x, c_trg)), c_trg)
        + lambda_rec mean|x - G(G(x, c_trg), c_org)|

Target labels are the batch's own labels randomly permuted (solver.py:223), drawn once per
iteration and shared by the D and G phases. L_cls is BCE-with-logits summed over the attributes
and averaged over the batch (CelebA, synthetic attributes) or cross-entropy (RaFD), solver.py:175.
The gradient penalty is computed in float32 with autocast off (safe under mixed precision).

Joint training (Sec. 3.2, data=celeba_rafd): the label G sees is [c_dim part, c2_dim part, mask
(2)] with the other dataset's part zero; D's classifier has c_dim + c2_dim outputs and each
image's loss uses only its own dataset's part. As the official solver (train_multi), the data
alternates a CelebA batch and a RaFD batch (data.alternate_groups) with one D step each, and an
iteration is the pair: G steps on both batches of every n_critic-th iteration, and the lr
schedule counts iterations (`batches_per_iteration` = 2, from the datamodule). With
alternate_groups false a batch mixes both datasets, each sample's classification loss following
its mask. Targets are permuted within each dataset of the batch.

Learning rate (solver.py:335-338): after every lr_update_step-th iteration past the decay start
(optim.decay_start x steps; 100k of 200k), lr -= lr0 / num_iters_decay. Over the official run that
lowers lr by only 0.1% (`lr_schedule: code`, the released models); `lr_schedule: paper` subtracts
lr0 / (num_iters_decay / lr_update_step) instead, the paper's linear decay to 0.

Translation and evaluation. `translation_targets(c_org)` gives the official test targets (one
per attribute: flipped, hair colours one-of; one per RaFD class), `translate(images, c)` runs
the EMA generator, `translation_columns` makes the figure grid (input | one column per target;
the training sample grids and `ganzoo.sample action=translate`), and `source_labels` reads the
labels of unlabelled images with D's classifier. Metrics per target domain (the attribute
classifier's accuracy, ganzoo.metrics.attribute_classifier.translation_scores; FID of each
column against the real images of that domain) translate the real images to every target.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganzoo.core.errors import ConfigError
from ganzoo.data.batch import Batch
from ganzoo.tasks.base import GANTask, Phase

ClsLoss = Literal["bce", "ce"]
LrSchedule = Literal["code", "paper"]


# ----- losses and labels (plain functions, tested on their own) ---------------------------
def gradient_penalty(critic: Callable[[Tensor], Tensor], x_hat: Tensor) -> Tensor:
    """mean over the batch of (||d critic(x_hat) / d x_hat||_2 - 1)^2 (solver.py:128-140), in
    float32 with autocast off. critic: (N, ...) -> (N, ...) scores, each summed per image."""
    x_hat = x_hat.detach().float().requires_grad_(True)
    with torch.autocast(device_type=x_hat.device.type, enabled=False):
        out = critic(x_hat).float()
        (grad,) = torch.autograd.grad(out.sum(), x_hat, create_graph=True)
    norm = grad.flatten(1).pow(2).sum(1).sqrt()  # (N,)
    return (norm - 1.0).pow(2).mean()


def interpolate(real: Tensor, fake: Tensor, alpha: Tensor) -> Tensor:
    """x_hat = alpha x + (1 - alpha) x_fake with alpha (N, 1, 1, 1), no gradient to either."""
    return alpha * real.detach().float() + (1.0 - alpha) * fake.detach().float()


def classification_loss(logits: Tensor, target: Tensor, kind: ClsLoss) -> Tensor:
    """Per-image loss (N,): 'bce' sums BCE-with-logits over the attributes (multi-label, CelebA);
    'ce' is cross-entropy against the one-hot target's index (RaFD)."""
    if kind == "bce":
        bce = F.binary_cross_entropy_with_logits(logits.float(), target.float(), reduction="none")
        return bce.sum(dim=1)
    return F.cross_entropy(logits.float(), target.argmax(dim=1), reduction="none")


def batch_classification_loss(logits: Tensor, target: Tensor, kind: ClsLoss) -> Tensor:
    """The batch mean of `classification_loss` computed as solver.py:175-180 does: BCE summed
    over the batch and the attributes, / N; cross-entropy's own mean. The same value as
    classification_loss(...).mean(), rounded as the official (training parity is bitwise)."""
    if kind == "bce":
        bce = F.binary_cross_entropy_with_logits(logits.float(), target.float(), reduction="sum")
        return bce / logits.shape[0]
    return F.cross_entropy(logits.float(), target.argmax(dim=1))


def permute_within(labels: Tensor, groups: Tensor, generator: torch.Generator | None) -> Tensor:
    """labels (N, C) shuffled among the rows of each group id (N,) (solver.py:223 per dataset)."""
    out = labels.clone()
    for g in groups.unique():
        rows = (groups == g).nonzero().squeeze(1)
        perm = torch.randperm(len(rows), generator=generator).to(rows.device)
        out[rows] = labels[rows[perm]]
    return out


def create_labels(
    c_org: Tensor, names: Sequence[str], kind: ClsLoss, one_of: Sequence[Sequence[str]]
) -> list[tuple[str, Tensor]]:
    """Target labels for translation grids (solver.py create_labels): one per attribute.
    'bce': flip attribute i, except that an attribute in a one-of group (hair colours) is set
    to 1 and the rest of its group to 0; 'ce': the one-hot label of class i."""
    targets = []
    for i, name in enumerate(names):
        if kind == "ce":
            c = torch.zeros_like(c_org)
            c[:, i] = 1.0
        else:
            c = c_org.clone()
            group = [g for g in one_of if name in g]
            if group:
                for j, other in enumerate(names):
                    if other in group[0]:
                        c[:, j] = float(j == i)
            else:
                c[:, i] = (c_org[:, i] == 0).to(c.dtype)
        targets.append((name, c))
    return targets


def lr_factor(
    completed: int,  # iterations done (the lr is for the next one)
    decay_start: int,  # iterations before the decay (num_iters - num_iters_decay: 100k)
    decay_iters: int,  # num_iters_decay (100k)
    update_step: int,  # lr_update_step (1000)
    schedule: LrSchedule,  # 'code': lr0 / decay_iters per update; 'paper': reaches 0
) -> float:
    """The lr multiplier of solver.py:335-338 after `completed` iterations."""
    if completed <= decay_start:
        return 1.0
    updates = completed // update_step - decay_start // update_step
    per_update = 1.0 / decay_iters if schedule == "code" else update_step / decay_iters
    return max(0.0, 1.0 - updates * per_update)


# ----- the task ---------------------------------------------------------------------------
class StarGANTask(GANTask):
    """StarGAN on attributes (CelebA, synthetic), classes (RaFD) or both (CelebA + RaFD)."""

    needs = ("image", "attributes")  # at least (checked before build)

    def __init__(
        self,
        generator: nn.Module,  # ganzoo.models.stargan.StarGANGenerator (c_dim = label_dim)
        discriminator: nn.Module,  # StarGANDiscriminator (c_dim = c_dim + c2_dim)
        optim: dict[str, Any],  # conf/optim/stargan.yaml: Adam 1e-4, betas (0.5, 0.999)
        ema: dict[str, Any],  # EMA generator (ganzoo's addition; the official samples from G)
        total_iterations: int,  # num_iters (200k)
        c_dim: int,  # labels of the first (or only) dataset: CelebA 5 attributes, RaFD 8
        c2_dim: int,  # labels of the second dataset for joint training (RaFD 8); 0 = one dataset
        cls_loss: ClsLoss,  # first dataset: bce (attributes) | ce (one class)
        cls_loss2: ClsLoss,  # second dataset (RaFD: ce)
        attribute_names: list[str],  # names of the c_dim + c2_dim labels (grids, one-of groups)
        one_of: list[list[str]],  # mutually exclusive attributes (hair colours) for targets
        lambda_cls: float = 1.0,  # domain classification weight
        lambda_rec: float = 10.0,  # reconstruction (cycle) weight
        lambda_gp: float = 10.0,  # gradient penalty weight
        n_critic: int = 5,  # D updates per G update
        lr_schedule: LrSchedule = "code",  # code: solver.py as released | paper: decay to 0
        lr_update_step: int = 1000,  # iterations between lr decrements
        perceptual: Callable[[], Any] | None = None,  # unused: ganzoo.info passes it to every task
    ) -> None:
        super().__init__(generator, discriminator, optim, ema, total_iterations)
        for key, value in (("cls_loss", cls_loss), ("cls_loss2", cls_loss2)):
            if value not in get_args(ClsLoss):
                raise ConfigError(f"model.{key}={value}; valid: {', '.join(get_args(ClsLoss))}")
        if lr_schedule not in get_args(LrSchedule):
            raise ConfigError(
                f"model.lr_schedule={lr_schedule}; valid: {', '.join(get_args(LrSchedule))}"
            )
        if len(attribute_names) != c_dim + c2_dim:
            raise ConfigError(
                f"model.attribute_names has {len(attribute_names)} names for c_dim + c2_dim = "
                f"{c_dim + c2_dim} labels"
            )
        if n_critic < 1 or lr_update_step < 1:
            raise ConfigError(
                f"n_critic and lr_update_step must be >= 1; got {n_critic}, {lr_update_step}"
            )
        self.c_dim, self.c2_dim = c_dim, c2_dim
        for net, want, what in (
            (generator, self.label_dim, "c_dim + c2_dim + 2 (mask)" if self.joint else "c_dim"),
            (discriminator, c_dim + c2_dim, "c_dim + c2_dim"),
        ):
            if getattr(net, "c_dim", want) != want:
                raise ConfigError(
                    f"{type(net).__name__} has c_dim {net.c_dim}; the labels need {what} = {want}"
                )
        self.cls_kinds: tuple[ClsLoss, ClsLoss] = (cls_loss, cls_loss2)
        self.attribute_names = list(attribute_names)
        self.one_of = [list(g) for g in one_of]
        self.lambda_cls, self.lambda_rec, self.lambda_gp = lambda_cls, lambda_rec, lambda_gp
        self.n_critic = n_critic
        self.lr_schedule: LrSchedule = lr_schedule
        self.lr_update_step = lr_update_step
        self._targets: tuple[tuple[int, int], Tensor] | None = None  # this iteration's c_trg
        # batches per official iteration: 2 when the data alternates CelebA and RaFD batches
        # (data.alternate_groups), set from the datamodule when training starts
        self.batches_per_iteration = 1

    @property
    def joint(self) -> bool:
        return self.c2_dim > 0

    @property
    def label_dim(self) -> int:
        """Size of the label G is conditioned on: c_dim, or c_dim + c2_dim + 2 (mask)."""
        return self.c_dim + self.c2_dim + (2 if self.joint else 0)

    def required_fields(self) -> tuple[str, ...]:
        return ("image", "attributes") + (("domain_mask",) if self.joint else ())

    def on_fit_start(self) -> None:
        if self.joint:
            dm = getattr(self.trainer, "datamodule", None)
            self.batches_per_iteration = int(getattr(dm, "batches_per_cycle", 1))

    def phases(self) -> Sequence[Phase]:
        """D on every batch; G on every batch of each n_critic-th iteration. With alternating
        datasets an iteration is one batch of each (k = 2 batches): G on batches b with
        b % (k n_critic) in [k (n_critic - 1), k n_critic), as solver.py train_multi."""
        k, n = self.batches_per_iteration, self.n_critic
        g_phases = [
            Phase("G", "G", "generator_loss", every=k * n, offset=k * (n - 1) + j, updates_ema=True)
            for j in range(k)
        ]
        return (Phase("D", "D", "discriminator_loss"), *g_phases)

    def _lr_factor(self, iteration: int) -> float:
        """solver.py's schedule over official iterations (batches // batches_per_iteration)."""
        total = self.total_iterations // self.batches_per_iteration
        start = int(round(self.optim_spec.decay_start * total))
        end = int(round(self.optim_spec.decay_end * total))
        if end <= start:
            return 1.0
        done = iteration // self.batches_per_iteration
        return lr_factor(done, start, end - start, self.lr_update_step, self.lr_schedule)

    # ----- labels ----------------------------------------------------------------------
    def domain_labels(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """(c_org (N, label_dim) that G sees, dataset id (N,) long: 0, or 1 for the second)."""
        assert batch.attributes is not None
        attrs = batch.attributes.float()
        if attrs.shape[1] != self.c_dim + self.c2_dim:
            raise ConfigError(
                f"the data gives {attrs.shape[1]} attributes; model=stargan was built for "
                f"c_dim + c2_dim = {self.c_dim + self.c2_dim}"
            )
        if not self.joint:
            return attrs, torch.zeros(len(attrs), dtype=torch.long, device=attrs.device)
        assert batch.domain_mask is not None
        mask = batch.domain_mask.float()  # (N, 2): [1, 0] first dataset, [0, 1] second
        keep = torch.cat(
            [mask[:, :1].expand(-1, self.c_dim), mask[:, 1:].expand(-1, self.c2_dim)], dim=1
        )
        return torch.cat([attrs * keep, mask], dim=1), mask.argmax(dim=1)

    def target_labels(self, batch: Batch) -> Tensor:
        """c_trg: the batch's labels permuted within each dataset, drawn once per iteration."""
        key = (int(self.iteration), batch.image.data_ptr())
        if self._targets is None or self._targets[0] != key:
            c_org, dataset = self.domain_labels(batch)
            self._targets = (key, permute_within(c_org, dataset, None))
        return self._targets[1]

    def cls_loss(self, logits: Tensor, c: Tensor) -> Tensor:
        """Classification loss of D's logits (N, c_dim + c2_dim) for labels c (N, label_dim):
        each image against its own dataset's part, averaged over the batch. A batch of one
        dataset (one dataset, or the alternating batches of joint training) uses the official
        reductions (`batch_classification_loss`); a batch mixing both datasets averages each
        image's loss from its own part."""
        first_part = slice(0, self.c_dim)
        second_part = slice(self.c_dim, self.c_dim + self.c2_dim)
        if not self.joint:
            return batch_classification_loss(
                logits[:, first_part], c[:, first_part], self.cls_kinds[0]
            )
        is_first = c[:, -2] > 0.5
        if bool(is_first.all()) or not bool(is_first.any()):  # solver.py train_multi
            part, kind = (first_part, 0) if bool(is_first[0]) else (second_part, 1)
            return batch_classification_loss(logits[:, part], c[:, part], self.cls_kinds[kind])
        first = classification_loss(logits[:, first_part], c[:, first_part], self.cls_kinds[0])
        second = classification_loss(logits[:, second_part], c[:, second_part], self.cls_kinds[1])
        return torch.where(is_first, first, second).mean()

    # ----- losses ----------------------------------------------------------------------
    def discriminator_loss(self, batch: Batch) -> dict[str, Tensor]:
        x = batch.image
        c_org, _ = self.domain_labels(batch)
        c_trg = self.target_labels(batch)
        # the official order and forwards (solver.py:243-262): D(x), G(x, c_trg), D(fake) apart
        # (one D forward of both is the same function, but its gradient sums in another order)
        src_real, cls_real = self.discriminator(x)
        with torch.no_grad():
            fake = self.generator(x, c_trg)
        src_fake, _ = self.discriminator(fake)
        alpha = torch.rand(x.shape[0], 1, 1, 1, device=x.device)
        gp = gradient_penalty(lambda h: self.discriminator(h)[0], interpolate(x, fake, alpha))
        return {
            "real": -src_real.float().mean(),
            "fake": src_fake.float().mean(),
            "cls": self.lambda_cls * self.cls_loss(cls_real, c_org),
            "gp": self.lambda_gp * gp,
        }

    def generator_loss(self, batch: Batch) -> dict[str, Tensor]:
        x = batch.image
        c_org, _ = self.domain_labels(batch)
        c_trg = self.target_labels(batch)
        fake = self.generator(x, c_trg)
        src, cls = self.discriminator(fake)
        reconstruction = self.generator(fake, c_org)
        return {
            "fake": -src.float().mean(),
            "rec": self.lambda_rec * (x.float() - reconstruction.float()).abs().mean(),
            "cls": self.lambda_cls * self.cls_loss(cls, c_trg),
        }

    # ----- translation -----------------------------------------------------------------
    def translation_targets(self, c_org: Tensor) -> list[tuple[str, Tensor]]:
        """The official test targets (solver.py create_labels, test_multi) for labels c_org
        (N, label_dim): one per attribute of the first dataset (flip / one-of), then, with
        joint training, one per class of the second (its part one-hot, mask [0, 1])."""
        names = self.attribute_names
        first = create_labels(
            c_org[:, : self.c_dim], names[: self.c_dim], self.cls_kinds[0], self.one_of
        )
        if not self.joint:
            return first
        n = c_org.shape[0]
        zeros1, zeros2 = c_org.new_zeros(n, self.c_dim), c_org.new_zeros(n, self.c2_dim)
        mask1 = c_org.new_tensor([1.0, 0.0]).expand(n, 2)
        mask2 = c_org.new_tensor([0.0, 1.0]).expand(n, 2)
        part2 = c_org[:, self.c_dim : self.c_dim + self.c2_dim]
        second = create_labels(part2, names[self.c_dim :], self.cls_kinds[1], self.one_of)
        return [(k, torch.cat([c, zeros2, mask1], 1)) for k, c in first] + [
            (k, torch.cat([zeros1, c, mask2], 1)) for k, c in second
        ]

    @torch.no_grad()
    def estimate_labels(self, images: Tensor, dataset: int = 0) -> Tensor:
        """c_org (N, label_dim) read from D's domain classifier, for images without labels:
        attributes thresholded at 0.5 ('bce') or the arg-max class ('ce'), as of `dataset`."""
        _, logits = self.discriminator(images)

        def decide(part: Tensor, kind: ClsLoss) -> Tensor:
            if kind == "bce":
                return (part > 0).float()
            return F.one_hot(part.argmax(1), part.shape[1]).float()

        first = decide(logits[:, : self.c_dim], self.cls_kinds[0])
        if not self.joint:
            return first
        second = decide(logits[:, self.c_dim :], self.cls_kinds[1])
        mask = logits.new_zeros(len(images), 2)
        mask[:, dataset] = 1.0
        parts = [first * mask[:, :1], second * mask[:, 1:]]
        return torch.cat([parts[0], parts[1], mask], dim=1)

    def source_labels(self, images: Tensor, attributes: Tensor | None = None) -> Tensor:
        """c_org (N, label_dim) of images given without a dataset: the given attributes
        ((N or 1, c_dim + c2_dim) 0/1; joint training: images of the first dataset), else
        what D's domain classifier reads."""
        if attributes is None:
            return self.estimate_labels(images)
        n, a = len(images), self.c_dim + self.c2_dim
        if attributes.shape[-1] != a or attributes.numel() not in (a, n * a):
            raise ConfigError(
                f"source_attributes needs {a} values ({', '.join(self.attribute_names)}) "
                f"for all images or for each of the {n}; got {list(attributes.shape)}"
            )
        attrs = attributes.float().reshape(-1, a).expand(n, a).to(images.device)
        mask = attrs.new_tensor([1.0, 0.0]).expand(n, 2) if self.joint else None
        return self.domain_labels(Batch(image=images, attributes=attrs, domain_mask=mask))[0]

    @torch.no_grad()
    def translate(
        self, images: Tensor, c_trg: Tensor, generator: nn.Module | None = None
    ) -> Tensor:
        """G(images, c_trg) with the EMA generator by default: (N, 3, H, W) in [-1, 1]."""
        net = self.generator_ema if generator is None else generator
        was_training = net.training
        net.eval()
        try:
            return net(images, c_trg.to(images))
        finally:
            net.train(was_training)

    def translation_columns(
        self, images: Tensor, c_org: Tensor, names: Sequence[str] | None = None
    ) -> list[tuple[str, Tensor]]:
        """[("input", images), (target name, translated images), ...]: the paper's figure grid
        (input | one column per attribute or domain); `names` picks and orders the targets."""
        targets = dict(self.translation_targets(c_org))
        chosen = list(targets) if names is None else list(names)
        unknown = [k for k in chosen if k not in targets]
        if unknown:
            raise ConfigError(f"unknown target {unknown[0]}; valid targets: {', '.join(targets)}")
        return [("input", images)] + [(k, self.translate(images, targets[k])) for k in chosen]

    evaluation_views = ("translations",)

    def evaluation_view(self, view: str, batch: Batch, images: Tensor) -> Any:
        """The "translations" view: [(target name, c_trg (N, label_dim), EMA G(x, c_trg))] for every
        official translation target of the batch's real images (metrics=attributes,
        target_fid); `images` (one target per image) is not used."""
        if view != "translations":
            return super().evaluation_view(view, batch, images)
        c_org, _ = self.domain_labels(batch)
        return [(k, c, self.translate(batch.image, c)) for k, c in self.translation_targets(c_org)]

    # ----- sampling and description -----------------------------------------------------
    def generator_inputs(self, batch: Batch, latents: Tensor | None) -> tuple[Tensor, ...]:
        """(image, c): image i goes to translation target i mod the number of targets."""
        c_org, _ = self.domain_labels(batch)
        targets = [c for _, c in self.translation_targets(c_org)]
        rows = torch.arange(batch.size, device=c_org.device)
        c = torch.stack(targets)[rows % len(targets), rows]  # (N, label_dim)
        return batch.image, c

    def discriminator_inputs(self, batch: Batch, images: Tensor) -> tuple[Tensor, ...]:
        return (images,)

    def grid_columns(self, batch: Batch, fake: Tensor) -> list[tuple[str, Tensor]]:
        c_org, _ = self.domain_labels(batch)
        return self.translation_columns(batch.image, c_org)
