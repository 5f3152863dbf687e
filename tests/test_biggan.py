"""BigGAN: networks (ganzoo.models.biggan), its layers (ganzoo.nn), the task and its configs,
gradient accumulation in GANTask, a CLI smoke run, and learning on the synthetic scenes."""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from types import SimpleNamespace

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.plugins.layer_sync import TorchSyncBatchNorm
from torch import Tensor, nn
from torch.utils.data import DataLoader

from ganzoo.cli.build import build_datamodule, build_task, train
from ganzoo.core.errors import ConfigError
from ganzoo.data.batch import Batch, collate
from ganzoo.info import describe
from ganzoo.models.biggan import BigGANDiscriminator, BigGANGenerator
from ganzoo.nn.attention import SelfAttention
from ganzoo.nn.biggan_sn import BigGANSpectralNorm
from ganzoo.nn.conditional_bn import ConditionalBatchNorm2d, accumulate_standing_stats
from ganzoo.nn.orthogonal import add_orthogonal_gradient, orthogonal_gradient, orthogonal_penalty
from ganzoo.tasks.base import GANTask, Phase
from ganzoo.tasks.biggan import BigGanTask, truncated_normal
from tests.conftest import REPO, run_cli

OFFICIAL = json.loads((REPO / "reference" / "params.json").read_text())["params"]["biggan"]
TINY = ["debug=smoke", "model=biggan", "logger=csv", "trainer.enable_progress_bar=false"]


@pytest.fixture(autouse=True)
def one_thread(monkeypatch: pytest.MonkeyPatch):
    """One intra-op thread here and in subprocesses: on shared 2-core machines two threads per
    process oversubscribe the cores and run tens of times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    yield
    torch.set_num_threads(threads)


def tiny_g(resolution: int = 32, **kw: object) -> BigGANGenerator:
    args: dict = {"num_classes": 12, "ch": 4, "dim_z": 32, "shared_dim": 16, "attention": ()}
    return BigGANGenerator(resolution, **{**args, **kw})


def tiny_d(resolution: int = 32, **kw: object) -> BigGANDiscriminator:
    return BigGANDiscriminator(resolution, **{"num_classes": 12, "ch": 4, "attention": (), **kw})


def _fit(task: GANTask, batches: list[Batch], *callbacks: pl.Callback) -> None:
    samples = [{k: getattr(b, k)[i] for k in b.provided()} for b in batches for i in range(b.size)]
    trainer = pl.Trainer(
        max_epochs=1,
        limit_train_batches=len(batches),
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        callbacks=list(callbacks),
    )
    trainer.fit(task, DataLoader(samples, batch_size=batches[0].size, collate_fn=collate))


# ----- parameter counts and configs --------------------------------------------------------
def test_info_cli_prints_the_official_imagenet128_counts() -> None:
    proc = run_cli("ganzoo.info", "model=biggan", "data=imagenet")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    ref = OFFICIAL["imagenet128_bs256x8"]
    assert info["parameters"] == {"G": ref["G"], "D": ref["D"]}  # 70,433,988 / 87,982,370
    assert info["shapes"]["G"] == {"inputs": [[1, 120], [1]], "output": [1, 3, 128, 128]}
    assert info["shapes"]["D"]["output"] == [1, 1]


# The 256 networks are not in reference/params.json: these counts come from instantiating the
# official classes (BigGAN-PyTorch BigGAN.py Generator / Discriminator, commit 98459431) on the
# meta device with G_ch = D_ch = 96, shared_dim 128, hier, resolution 256, dim_z 140 and
# G_attn '128' (the released 256 generator, TFHub/converter.py get_config), D_attn '64'. The same
# script gives the 128 counts of params.json (70,433,988 / 87,982,370).
OFFICIAL_256 = {"G": 82_097_604, "D": 99_225_890}


def test_experiments_compose_and_the_256_arch_builds_on_meta(make_cfg) -> None:
    cfg = make_cfg("experiment=biggan_imagenet128")
    assert cfg.data.global_batch_size == 2048 and cfg.model.accumulate == 8
    assert cfg.optim.num_d_steps == 2 and cfg.model.ema.start_iteration == 20000
    for overrides in (
        ["model=biggan", "data=imagenet", "data.resolution=256"],
        ["experiment=biggan_imagenet256"],
    ):
        info256 = describe(make_cfg(*overrides))
        assert info256["resolution"] == [256, 256]
        assert info256["shapes"]["G"] == {"inputs": [[1, 140], [1]], "output": [1, 3, 256, 256]}
        assert info256["parameters"] == OFFICIAL_256


def test_paper_architecture_details_on_meta() -> None:
    with torch.device("meta"):
        g, d = BigGANGenerator(), BigGANDiscriminator()
    assert [s[0].conv1.out_channels for s in g.blocks] == [1536, 768, 384, 192, 96]
    assert [len(s) for s in g.blocks] == [1, 1, 1, 2, 1]  # attention after the 64x64 block
    assert g.blocks[3][1].channels == 192
    assert [s[0].conv2.out_channels for s in d.blocks] == [96, 192, 384, 768, 1536, 1536]
    assert [len(s) for s in d.blocks] == [2, 1, 1, 1, 1, 1]  # attention after 128 -> 64
    assert [s[0].downsample for s in d.blocks] == [True] * 5 + [False]
    # spectral norm everywhere but G's shared embedding
    assert not isinstance(g.shared, BigGANSpectralNorm)
    assert all(isinstance(m, BigGANSpectralNorm) for m in (g.linear, d.linear, d.embed))
    with pytest.raises(ValueError, match="valid: 8, 16, 32, 64, 128"):
        BigGANGenerator(128, attention=(48,))
    with pytest.raises(ValueError, match="valid: 32, 64, 128, 256"):
        BigGANDiscriminator(96)


# ----- layers ------------------------------------------------------------------------------
def test_conditional_bn_uses_the_condition() -> None:
    torch.manual_seed(0)
    cbn = ConditionalBatchNorm2d(6, 5, eps=1e-5, momentum=0.1, sn_eps=1e-6)
    x = torch.randn(4, 6, 3, 3)
    c1, c2 = torch.randn(4, 5), torch.randn(4, 5)
    assert not torch.allclose(cbn(x, c1), cbn(x, c2))
    for _ in range(30):  # training-mode power iterations converge u
        cbn.gain.normalized_weight()
    cbn.eval()  # the power iteration no longer stores u: the weights below are the forward's
    w_gain, w_bias = cbn.gain.normalized_weight(), cbn.bias.normalized_weight()  # (6, 5) each
    assert torch.linalg.matrix_norm(w_gain, ord=2).item() == pytest.approx(1.0, rel=1e-3)
    mean, var = x.mean((0, 2, 3), keepdim=True), x.var((0, 2, 3), unbiased=False, keepdim=True)
    normed = (x - mean) / torch.sqrt(var + 1e-5)
    by_hand = normed * (1 + c1 @ w_gain.t())[:, :, None, None] + (c1 @ w_bias.t())[:, :, None, None]
    cbn.bn.train()  # batch statistics, as in training
    torch.testing.assert_close(cbn(x, c1), by_hand, rtol=1e-4, atol=1e-5)
    cbn.train()
    plain = F.batch_norm(x, None, None, training=True, eps=1e-5)
    torch.testing.assert_close(cbn(x, torch.zeros(4, 5)), plain)  # gain 1 + 0, bias 0
    assert sum(p.numel() for p in cbn.parameters()) == 2 * 5 * 6  # BN itself has no affine


def test_generator_class_and_hierarchical_z_condition_the_blocks() -> None:
    torch.manual_seed(0)
    g = tiny_g(resolution=64).eval()
    assert (g.num_slots, g.z_chunk_size, g.dim_z) == (5, 6, 30)  # 4 blocks + input; 32 -> 30
    z = torch.randn(2, 30)
    conds: list[Tensor] = []
    hooks = [s[0].register_forward_pre_hook(lambda m, a: conds.append(a[1])) for s in g.blocks]
    out = g(z, torch.tensor([0, 1]))
    for h in hooks:
        h.remove()
    assert out.shape == (2, 3, 64, 64) and out.abs().max() <= 1
    chunks = z.split(6, dim=1)
    for i, cond in enumerate(conds):  # block i sees [shared embedding, chunk i + 1]
        assert cond.shape == (2, 16 + 6)
        torch.testing.assert_close(cond[:, 16:], chunks[i + 1])
        torch.testing.assert_close(cond[:, :16], g.shared(torch.tensor([0, 1])))
    same_z = z[:1].expand(2, -1)
    a, b = g(same_z, torch.tensor([3, 7]))  # same z, two classes
    assert (a - b).abs().mean() > 1e-3
    g256 = BigGANGenerator(256, ch=8, dim_z=140, init_orthogonal=False)
    assert (g256.num_slots, g256.z_chunk_size, g256.dim_z) == (7, 20, 140)
    g128 = BigGANGenerator(128, ch=8, init_orthogonal=False)
    assert (g128.num_slots, g128.z_chunk_size) == (6, 20)
    assert all(s[0].bn1.cond_dim == s[0].bn2.cond_dim == 128 + 20 for s in g128.blocks)


def test_projection_discriminator_output_depends_on_class() -> None:
    torch.manual_seed(0)
    d = tiny_d().eval()
    x = torch.randn(3, 3, 32, 32)
    out_a, out_b = d(x, torch.tensor([0, 1, 2])), d(x, torch.tensor([5, 6, 7]))
    assert out_a.shape == (3, 1) and not torch.allclose(out_a, out_b)
    feats: list[Tensor] = []
    d.linear.register_forward_hook(lambda m, a, o: feats.append(a[0]))
    y = torch.tensor([4, 4, 9])
    out = d(x, y)
    projection = (d.embed(y) * feats[-1]).sum(1, keepdim=True)
    torch.testing.assert_close(out - d.linear(feats[-1]), projection)


def test_self_attention_starts_as_identity_and_attends() -> None:
    torch.manual_seed(0)
    att = SelfAttention(16, sn_eps=1e-6)
    x = torch.randn(2, 16, 8, 8)
    torch.testing.assert_close(att(x), x)  # gamma = 0
    with torch.no_grad():
        att.gamma.fill_(1.0)
    assert att(x).shape == x.shape and not torch.allclose(att(x), x)
    assert sum(p.numel() for p in att.parameters()) == 16 * (2 + 2 + 8) + 8 * 16 + 1


# ----- orthogonal regularisation ---------------------------------------------------------
def test_orthogonal_regularisation_closed_form_and_gradient() -> None:
    w = torch.tensor([[1.0, 2.0], [3.0, 4.0], [0.0, 1.0]])
    # off-diagonal filter dot products: <w0,w1> = 11, <w0,w2> = 2, <w1,w2> = 4, each twice
    assert orthogonal_penalty(w).item() == pytest.approx(2 * (11**2 + 2**2 + 4**2))
    q, _ = torch.linalg.qr(torch.randn(6, 6, dtype=torch.float64))
    assert orthogonal_penalty(q[:4]).item() == pytest.approx(0.0, abs=1e-12)
    scaled = 3.0 * q[:4]  # orthogonal rows of any norm: no penalty (the diagonal is dropped)
    assert orthogonal_penalty(scaled).item() == pytest.approx(0.0, abs=1e-10)
    assert orthogonal_gradient(scaled).abs().max().item() < 1e-10
    conv = torch.randn(4, 3, 3, 3, requires_grad=True)  # the official step = dR/dW / 2
    orthogonal_penalty(conv).backward()
    torch.testing.assert_close(orthogonal_gradient(conv.detach()), conv.grad / 2)
    weight, bias = nn.Parameter(w.clone()), nn.Parameter(torch.ones(3))
    weight.grad, bias.grad = torch.ones_like(weight), torch.zeros(3)
    add_orthogonal_gradient([weight, bias], 1e-4)
    torch.testing.assert_close(weight.grad, 1 + 1e-4 * orthogonal_gradient(w))
    assert bias.grad.abs().max() == 0  # 1-D parameters are skipped


def test_task_applies_ortho_to_g_but_not_the_shared_embedding(make_cfg) -> None:
    task = build_task(make_cfg(*TINY))
    assert isinstance(task, BigGanTask) and task.ortho_reg == 1e-4  # biggan_paper
    params = task.ortho_parameters()
    assert all(p is not task.generator.shared.weight for p in params)
    assert len(params) == len(list(task.generator.parameters())) - 1
    opt_g, opt_d = task.configure_optimizers()
    task.trainer = SimpleNamespace(optimizers=[opt_g, opt_d])  # type: ignore[assignment]
    for p in task.generator.parameters():
        p.grad = torch.zeros_like(p)
    task.on_before_optimizer_step(opt_d)  # the D step: untouched
    assert all(p.grad.abs().max() == 0 for p in task.generator.parameters())
    task.on_before_optimizer_step(opt_g)
    linear = task.generator.linear.weight
    torch.testing.assert_close(linear.grad, 1e-4 * orthogonal_gradient(linear.detach()))
    assert task.generator.shared.weight.grad.abs().max() == 0


# ----- schedule, optimiser choices, EMA ----------------------------------------------------
class CallLog(pl.Callback):
    def __init__(self) -> None:
        self.ema_equals_g: list[bool] = []

    def on_train_batch_end(self, trainer: pl.Trainer, task, *args: object) -> None:
        pairs = zip(task.generator_ema.parameters(), task.generator.parameters(), strict=True)
        self.ema_equals_g.append(all(torch.equal(a, b) for a, b in pairs))


def _random_batches(n: int, size: int, resolution: int = 32) -> list[Batch]:
    g = torch.Generator().manual_seed(0)
    return [
        Batch(
            image=torch.rand(size, 3, resolution, resolution, generator=g) * 2 - 1,
            class_id=torch.randint(0, 12, (size,), generator=g),
        )
        for _ in range(n)
    ]


@pytest.mark.parametrize(
    ("optim", "lrs", "d_per_g", "ortho"),
    [("biggan_paper", (5e-5, 2e-4), 2, 1e-4), ("biggan_code", (1e-4, 4e-4), 1, 0.0)],
)
def test_optim_choices_set_the_d_to_g_schedule(make_cfg, optim, lrs, d_per_g, ortho) -> None:
    task = build_task(make_cfg(*TINY, "data=imagenet", f"optim={optim}"))  # no synthetic preset
    assert (task.optim_spec.lr_g, task.optim_spec.lr_d) == lrs
    assert task.optim_spec.betas_g == task.optim_spec.betas_d == (0.0, 0.999)
    assert task.optim_spec.eps == 1e-6 and task.ortho_reg == ortho
    calls: list[tuple[int, str]] = []
    for name in ("discriminator_loss", "generator_loss"):
        method = getattr(task, name)

        def logged(batch: Batch, method=method, name=name) -> dict[str, Tensor]:
            calls.append((int(task.iteration), name[0].upper()))
            return method(batch)

        setattr(task, name, logged)
    _fit(task, _random_batches(4, 2))
    assert [i for i, n in calls if n == "D"] == [0, 1, 2, 3]
    assert [i for i, n in calls if n == "G"] == list(range(d_per_g - 1, 4, d_per_g))


def test_ema_is_a_copy_before_its_start_iteration(make_cfg) -> None:
    paper = build_task(make_cfg(*TINY, "data=imagenet"))  # no synthetic preset
    assert (paper.ema_spec.decay, paper.ema_spec.start_iteration) == (0.9999, 20000)
    # start_iteration counts G updates from 1 (the official state_dict['itr']): 3 copies at G
    # updates 1 and 2; with 2 D steps per G step (biggan_paper) G updates 1, 2 are iterations 1, 3
    for optim, expected in (("biggan_code", [True, True, False, False]),
                            ("biggan_paper", [True, True, True, True])):  # fmt: skip
        task = build_task(make_cfg(*TINY, f"optim={optim}", "model.ema.start_iteration=3"))
        log = CallLog()
        _fit(task, _random_batches(4, 2), log)
        assert log.ema_equals_g == expected, optim
    task = build_task(make_cfg(*TINY, "optim=biggan_paper", "model.ema.start_iteration=2"))
    log = CallLog()
    _fit(task, _random_batches(4, 2), log)
    assert log.ema_equals_g == [True, True, True, False]  # G update 2 = iteration 3 decays


# ----- sampling: standing statistics, truncation ------------------------------------------
def test_standing_stats_average_batch_statistics_and_are_seeded() -> None:
    bn = nn.BatchNorm2d(3, momentum=0.1)
    xs = [torch.randn(4, 3, 2, 2) + i for i in range(3)]
    it = iter(xs)
    accumulate_standing_stats(bn, lambda: (next(it),), 3)
    expected = torch.stack([x.mean((0, 2, 3)) for x in xs]).mean(0)
    torch.testing.assert_close(bn.running_mean, expected)  # the plain mean, not momentum 0.1
    assert not bn.training and bn.momentum == 0.1

    def standing(seed: int) -> list[Tensor]:
        torch.manual_seed(0)
        g = tiny_g()
        task = SimpleNamespace(
            standing_stats_seed=seed,
            standing_stats_batch_size=4,
            standing_stats_accumulations=3,
            iteration=torch.zeros(()),
            num_classes=12,
            latents=lambda n, gen: truncated_normal(n, 32, None, gen),
        )
        before = [b.clone() for n, b in g.named_buffers() if "running_mean" in n]
        BigGanTask.standing_statistics(task, g)  # type: ignore[arg-type]
        after = [b.clone() for n, b in g.named_buffers() if "running_mean" in n]
        assert not g.training and all(
            not torch.equal(a, b) for a, b in zip(before, after, strict=True)
        )
        return after

    a, b, c = standing(7), standing(7), standing(8)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(a, c, strict=True))


def test_truncation_keeps_latents_within_the_threshold(make_cfg) -> None:
    z = truncated_normal(256, 120, 0.5, torch.Generator().manual_seed(0))
    assert z.shape == (256, 120) and z.abs().max() <= 0.5
    assert z.std() > 0.25  # spread over the range, not collapsed (uniform-like: 0.5 / sqrt 3)
    again = truncated_normal(256, 120, 0.5, torch.Generator().manual_seed(0))
    assert torch.equal(z, again)
    assert truncated_normal(512, 8, None).abs().max() > 2  # None: the plain normal
    with pytest.raises(ConfigError, match="truncation must be > 0"):
        truncated_normal(2, 2, 0.0)
    task = build_task(make_cfg(*TINY, "model.truncation=0.3"))
    latents = task.sample_latents(16, torch.Generator().manual_seed(1))
    assert latents is not None and latents.abs().max() <= 0.3


def _ema_bn_means(task: GANTask) -> list[Tensor]:
    norms = [m for m in task.generator_ema.modules() if isinstance(m, nn.BatchNorm2d)]
    return [m.running_mean.clone() for m in norms]  # type: ignore[union-attr]


def test_sample_hooks_draw_seeded_latents_and_generate_class_images(make_cfg) -> None:
    """draw_latents / generate, the hooks `python -m ganzoo.sample` calls."""
    task = build_task(make_cfg(*TINY))  # smoke preset: standing statistics over 2 passes
    assert isinstance(task, BigGanTask) and task.standing_stats_accumulations == 2
    z = task.draw_latents([3, 5, 3], 0.5)
    assert z.shape == (3, task.dim_z) and z.abs().max() <= 0.5
    assert torch.equal(z[0], z[2]) and not torch.equal(z[0], z[1])
    assert torch.equal(task.draw_latents([5], 0.5)[0], z[1])  # row i depends on seeds[i] alone
    for off in (None, 0.0, -1.0):  # no truncation: the plain normal
        assert task.draw_latents(list(range(64)), off).abs().max() > 2
    assert torch.equal(task.draw_latents([5], None), task.draw_latents([5], 0.0))
    task.truncation = 0.5  # None = the run's own model.truncation
    assert torch.equal(task.draw_latents([3, 5], None), z[:2])
    task.truncation = None
    with pytest.raises(ConfigError, match="at least one seed"):
        task.draw_latents([], 0.5)

    before = _ema_bn_means(task)
    classes = torch.tensor([0, 1, 0])
    images = task.generate(z, classes, 0.5)
    assert images.shape == (3, 3, 32, 32) and images.abs().max() <= 1
    after = _ema_bn_means(task)  # standing statistics replaced G_ema's running means
    assert all(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
    torch.testing.assert_close(images[0], images[2])  # same seed and class: same image
    assert (images[0] - images[1]).abs().mean() > 1e-3
    torch.testing.assert_close(task.generate(z, classes, 0.5), images)  # seeded statistics
    same_class = task.generate(z[:2], torch.tensor([1]), 0.5)  # one id for every latent
    torch.testing.assert_close(same_class[1], images[1])
    with pytest.raises(ConfigError, match="class-conditional"):
        task.generate(z, None, 0.5)
    with pytest.raises(ConfigError, match="class 12 is out of range: valid ids 0..11"):
        task.generate(z, torch.tensor([0, 12, 1]), 0.5)
    with pytest.raises(ConfigError, match="2 classes for 3 latents"):
        task.generate(z, torch.tensor([0, 1]), 0.5)
    with pytest.raises(ConfigError, match=f"latents must be \\(N, {task.dim_z}\\)"):
        task.generate(z[:, :4], classes, 0.5)

    running = build_task(make_cfg(*TINY, "model.standing_stats_accumulations=0"))
    before = _ema_bn_means(running)
    running.generate(z, classes, None)  # BN running statistics: buffers untouched
    assert all(torch.equal(a, b) for a, b in zip(before, _ema_bn_means(running), strict=True))


# ----- multi-process BN ----------------------------------------------------------------------
def _trainer(world_size: int, device: str) -> SimpleNamespace:
    """What BigGanTask.setup reads of a Trainer."""
    return SimpleNamespace(
        world_size=world_size, strategy=SimpleNamespace(root_device=torch.device(device))
    )


def test_setup_converts_g_batchnorm_to_sync_batchnorm_on_several_processes(make_cfg) -> None:
    task = build_task(make_cfg(*TINY))
    keys, params = list(task.generator.state_dict()), list(task.generator.parameters())
    for world_size, device in ((1, "cuda"), (2, "cpu")):  # one process; CPU (no SyncBN there)
        task.trainer = _trainer(world_size, device)  # type: ignore[assignment]
        with pytest.warns(UserWarning, match="needs GPUs") if device == "cpu" else nullcontext():
            task.setup("fit")
        assert not any(isinstance(m, nn.SyncBatchNorm) for m in task.generator.modules())
    task.trainer = _trainer(2, "cuda")  # type: ignore[assignment]
    task.setup("fit")  # conversion itself needs no GPU
    norms = [m for m in task.generator.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert len(norms) == 2 * 3 + 1 and all(isinstance(m, nn.SyncBatchNorm) for m in norms)
    assert list(task.generator.state_dict()) == keys  # checkpoints stay compatible
    assert all(a is b for a, b in zip(task.generator.parameters(), params, strict=True))
    assert not any(isinstance(m, nn.SyncBatchNorm) for m in task.generator_ema.modules())
    plain = build_task(make_cfg(*TINY, "model.sync_batchnorm=false"))
    plain.trainer = _trainer(2, "cuda")  # type: ignore[assignment]
    plain.setup("fit")
    assert not any(isinstance(m, nn.SyncBatchNorm) for m in plain.generator.modules())


def test_g_ema_keeps_per_process_batchnorm_under_trainer_sync_batchnorm(make_cfg) -> None:
    """trainer=ddp's sync_batchnorm converts the whole task (Lightning's TorchSyncBatchNorm);
    on_fit_start gives G_ema plain BatchNorms back, so that rank 0 alone can sample it."""
    task = TorchSyncBatchNorm().apply(build_task(make_cfg(*TINY)))
    assert isinstance(task, BigGanTask)
    keys = list(task.generator_ema.state_dict())
    means = [b for n, b in task.generator_ema.named_buffers() if n.endswith("running_mean")]
    assert any(isinstance(m, nn.SyncBatchNorm) for m in task.generator_ema.modules())
    task.on_fit_start()
    assert not any(isinstance(m, nn.SyncBatchNorm) for m in task.generator_ema.modules())
    assert all(isinstance(m, nn.SyncBatchNorm) for m in task.generator.modules()
               if isinstance(m, nn.modules.batchnorm._BatchNorm))  # fmt: skip
    assert list(task.generator_ema.state_dict()) == keys
    after = [b for n, b in task.generator_ema.named_buffers() if n.endswith("running_mean")]
    assert all(a is b for a, b in zip(means, after, strict=True))  # the same buffers
    z = task.draw_latents([0, 1, 2, 3], None)
    images = task.generate(z, torch.arange(4), None)  # standing statistics run on one process
    assert images.shape == (4, 3, 32, 32)
    assert not all(torch.equal(a, torch.zeros_like(a)) for a in after)


# ----- gradient accumulation (GANTask) ------------------------------------------------------
class LinearTask(GANTask):
    """No batch-dependent layers: accumulation must equal one large batch exactly."""

    def __init__(self, accumulate: int) -> None:
        torch.manual_seed(0)
        optim = {"lr_g": 1e-2, "lr_d": 1e-2, "betas_g": [0.0, 0.99], "betas_d": [0.0, 0.99]}
        gen, disc = nn.Linear(4, 3), nn.Linear(3, 1)
        super().__init__(gen, disc, optim, {"decay": 0.5}, 10, accumulate=accumulate)
        self.grads: list[list[Tensor]] = []

    def phases(self) -> Sequence[Phase]:
        return (Phase("D", "D", "d_loss"), Phase("G", "G", "g_loss", updates_ema=True))

    def _fake(self, batch: Batch) -> Tensor:
        return self.generator(batch.image.flatten(1)[:, :4])  # deterministic "latents"

    def d_loss(self, batch: Batch) -> dict[str, Tensor]:
        real = self.discriminator(batch.image.flatten(1)[:, 4:7])
        fake = self.discriminator(self._fake(batch).detach())
        return {"real": F.relu(1 - real).mean(), "fake": F.relu(1 + fake).mean()}

    def g_loss(self, batch: Batch) -> dict[str, Tensor]:
        return {"gan": -self.discriminator(self._fake(batch)).pow(3).mean()}

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        self.grads.append([p.grad.clone() for g in optimizer.param_groups for p in g["params"]])


def test_gradient_accumulation_equals_one_large_batch() -> None:
    batch = Batch(image=torch.randn(8, 3, 2, 2), class_id=torch.zeros(8, dtype=torch.long))
    big, accumulated = LinearTask(1), LinearTask(4)
    _fit(big, [batch])
    _fit(accumulated, [batch])
    assert len(big.grads) == len(accumulated.grads) == 2  # one D and one G step each
    for a, b in zip(big.grads, accumulated.grads, strict=True):
        for ga, gb in zip(a, b, strict=True):
            torch.testing.assert_close(ga, gb, rtol=1e-5, atol=1e-7)
    for pa, pb in zip(big.parameters(), accumulated.parameters(), strict=True):
        torch.testing.assert_close(pa, pb, rtol=1e-5, atol=1e-7)
    assert [b.size for b in batch.split(4)] == [2, 2, 2, 2]
    assert torch.equal(torch.cat([b.image for b in batch.split(4)]), batch.image)
    with pytest.raises(ConfigError, match="accumulate=3 must divide"):
        _fit(LinearTask(3), [batch])
    with pytest.raises(ConfigError, match="accumulate must be >= 1"):
        LinearTask(0)


# ----- command line and learning -----------------------------------------------------------
def test_cli_smoke_run_writes_a_checkpoint(tmp_path: Path) -> None:
    run_dir = tmp_path / "smoke"
    proc = run_cli("ganzoo.train", *TINY, f"hydra.run.dir={run_dir}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert int(ckpt["state_dict"]["iteration"]) == 4
    assert any(k.startswith("generator_ema.blocks.0.0.bn1") for k in ckpt["state_dict"])
    assert sorted(p.name for p in (run_dir / "samples").glob("*.png"))


# The laptop preset (model_data/biggan_synthetic: 32x32, no attention, lr 4e-4 / 8e-4, standing
# statistics for sampling) at half its width and batch, 1 D step per G step, 250 steps, and an
# EMA that follows G within a few steps.
LEARN = [
    "model=biggan",
    "optim=biggan_code",
    "optim.lr_g=4e-4",
    "optim.lr_d=8e-4",
    "logger=csv",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "callbacks.samples=null",
    "data.batch_size=8",
    "steps=250",
    "callbacks.checkpoint.every_n_iterations=250",
    "model.generator.ch=8",
    "model.discriminator.ch=8",
    "model.ema.decay=0.9",
    "model.ema.start_iteration=0",
]


def _colour_layout(images: Tensor) -> Tensor:
    """Per-image features: the mean colour of each cell of a 4 x 4 grid, (N, 48)."""
    return F.adaptive_avg_pool2d(images, 4).flatten(1)


def _class_means(features: Tensor, classes: Tensor, num_classes: int) -> Tensor:
    return torch.stack([features[classes == c].mean(0) for c in range(num_classes)])


def test_biggan_learns_the_class_conditional_colour_layout(make_cfg, tmp_path: Path) -> None:
    """Per-class mean colour layout of G_ema's images against the real per-class means.

    Scene classes (layout x day/night) differ in palette and layout, so a generator that
    follows its class input gets its per-class means close to the real ones. A generator that
    ignores its class input has one expected mean m for every class, so its error is at least
    min_m mean_c |m - real_c| (at the geometric median of the real class means): the bound a
    trained G must beat.
    """
    cfg = make_cfg(*LEARN, run_dir=tmp_path / "run")
    real = build_datamodule(cfg).fixed_batch(480)
    assert real.class_id is not None
    num_classes = int(cfg.data.num_classes)
    real_means = _class_means(_colour_layout(real.image), real.class_id, num_classes)
    median = real_means.mean(0)
    for _ in range(200):  # Weiszfeld iterations for the geometric median
        weights = 1 / (real_means - median).norm(dim=1).clamp_min(1e-8)
        median = (weights[:, None] * real_means).sum(0) / weights.sum()
    unconditional = float((real_means - median).norm(dim=1).mean())
    classes = torch.arange(num_classes).repeat_interleave(20)
    size = int(cfg.data.resolution)  # 32, from the preset
    probe = Batch(image=torch.zeros(len(classes), 3, size, size), class_id=classes)

    def error(task: GANTask) -> float:
        latents = task.sample_latents(len(classes), torch.Generator().manual_seed(1))
        images = task.sample_ema(probe, latents)
        means = _class_means(_colour_layout(images), classes, num_classes)
        return float((means - real_means).norm(dim=1).mean())

    torch.manual_seed(0)
    before = error(build_task(cfg))
    train(cfg)
    trained = build_task(cfg)
    state = torch.load(tmp_path / "run/checkpoints/last.ckpt", weights_only=True)
    trained.load_state_dict(state["state_dict"])
    after = error(trained)
    print(
        f"class-mean colour error: untrained {before:.3f}, trained {after:.3f}, "
        f"class-blind bound {unconditional:.3f}"
    )
    assert after < 0.7 * before and after < unconditional, (before, after, unconditional)


def test_standing_statistics_once_per_iteration(make_cfg, monkeypatch) -> None:
    """Sampling twice at one iteration computes standing statistics once (an evaluation's
    batches, studio clicks; the official computes them once per sampling run) and gives the
    same images (each computation advances spectral norm's power iteration, as the official
    does); a new iteration or new weights recompute them."""
    task = build_task(make_cfg(*TINY, "model.standing_stats_accumulations=2"))
    calls: list[int] = []
    original = task.standing_statistics
    monkeypatch.setattr(task, "standing_statistics", lambda g: calls.append(1) or original(g))
    z, y = task.draw_latents([0, 1], None), torch.tensor([0, 1])
    first = task.generate(z, y, None)
    again = task.generate(z, y, None)
    assert len(calls) == 1 and torch.equal(first, again)
    task.load_state_dict(task.state_dict())
    task.generate(z, y, None)
    assert len(calls) == 2
    task.iteration += 1
    task.generate(z, y, None)
    assert len(calls) == 3
