"""Training parity with NVlabs/stylegan2-ada-pytorch (issue 14): from the converted golden
pickle, 3 iterations of ganzoo's StyleGAN2Task on the batches and random draws the official
loop consumed give the official G, D and G_ema (tests/golden/stylegan2/train.pt, made by
experiments/parity/stylegan2.py).

The official loop draws each phase's z and labels up front (training_loop.py:263-265); ganzoo
draws them in the phase. The test hands the task the official draws through its hooks
(`draw_z`, `draw_fake_class`) and sets torch's RNG to the official state when the phases start,
from which both codes then draw, in the same order, the style-mixing cutoff and switch, the
second z, the noise inputs and the path-length noise."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from ganzoo.data.batch import collate
from tests.conftest import fit_batches, norm_relative_error
from tests.test_official_stylegan2 import GOLDEN, converted

pytestmark = pytest.mark.usefixtures("one_thread")  # exact on one CPU thread (summation order)

PHASES = {"G": "Gmain", "G_reg": "Greg", "D": "Dmain", "D_reg": "Dreg"}  # ganzoo -> official
TRAIN_OVERRIDES = (
    "optim.lr_g=0.0025",
    "optim.lr_d=0.0025",
    "model.r1_gamma=1.0",
    "model.r1_interval=2",
    "model.pl_interval=2",
    "model.ema.half_life_kimg=0.01",
    "model.ema.rampup=null",
    "data.batch_size=4",
    "steps=3",
)


def replay(task: Any, record: dict[str, Any]) -> None:
    """Make the task draw what the official loop drew (see the module docstring)."""
    iterations = record["iterations"]
    state: dict[str, Any] = {}
    run_phase, training_step = task._run_phase, task.training_step

    def phase_hook(phase: Any, opt: Any, batch: Any) -> Any:
        state["phase"] = PHASES[phase.name]
        return run_phase(phase, opt, batch)

    def step_hook(batch: Any, batch_idx: int) -> Any:
        state["it"] = iterations[int(task.iteration)]
        torch.set_rng_state(state["it"]["rng_state"])
        return training_step(batch, batch_idx)

    task._run_phase, task.training_step = phase_hook, step_hook
    task.draw_z = lambda n: state["it"]["gen_z"][state["phase"]][:n].clone()
    task.draw_fake_class = lambda n: state["it"]["gen_class"][state["phase"]][:n].clone()


def test_three_iterations_match_the_official_loop(make_cfg: Any) -> None:
    record = torch.load(GOLDEN / "train.pt", weights_only=True)
    assert record["config"]["G_reg_interval"] == record["config"]["D_reg_interval"] == 2
    task = converted(make_cfg, *TRAIN_OVERRIDES)
    replay(task, record)
    samples = [
        {"image": it["real_u8"][i].float() / 127.5 - 1, "class_id": it["real_class"][i]}
        for it in record["iterations"]
        for i in range(len(it["real_class"]))
    ]
    fit_batches(task, samples, batch_size=4)
    assert int(task.iteration) == 3
    after = record["after"]
    errors: dict[str, float] = {}
    for prefix, net in (("G", task.generator), ("D", task.discriminator),
                        ("G_ema", task.generator_ema)):  # fmt: skip
        ours = net.state_dict()
        assert set(ours) == set(after[prefix])
        for key, ref in after[prefix].items():
            errors[f"{prefix}.{key}"] = norm_relative_error(ours[key], ref)
    errors["pl_mean"] = norm_relative_error(task.pl_mean, after["pl_mean"])
    worst = sorted(errors.items(), key=lambda kv: -kv[1])[:5]
    assert worst[0][1] <= 1e-6, worst


def test_fake_labels_are_drawn_from_the_dataset_labels(make_cfg: Any) -> None:
    task = converted(make_cfg)
    labels = torch.tensor([0, 0, 0, 0, 0, 0, 1, 1, 2, 11])  # the dataset's labels
    dataset = SimpleNamespace(targets=labels.numpy())  # an image folder lists them
    task._trainer = SimpleNamespace(datamodule=SimpleNamespace(train_set=dataset))
    task.on_fit_start()
    assert task.class_counts.tolist() == torch.bincount(labels, minlength=12).tolist()
    assert not task.observe_labels  # the real batches are not counted on top
    torch.manual_seed(0)
    ids = task.draw_fake_class(20000)
    freq = torch.bincount(ids, minlength=12).float() / len(ids)
    expected = torch.bincount(labels, minlength=12).float() / len(labels)
    assert (freq - expected).abs().max() < 0.015
    c = task.fake_labels(collate([{"image": torch.zeros(3, 32, 32),
                                   "class_id": torch.tensor(5)}] * 6))  # fmt: skip
    assert c is not None and c.shape == (6, 12)
    assert set(c.argmax(1).tolist()) <= {0, 1, 2, 11}  # i.i.d. from the dataset, not the batch
    assert torch.equal(c.sum(1), torch.ones(6)) and bool((F.relu(-c) == 0).all())
