"""trainer.channels_last and trainer.compile give the losses of the eager run (float tolerance).

A few iterations of each model's smoke run, from the same seed, with and without the switch;
every iteration's logged loss terms are compared. channels_last only reorders the sums inside
convolutions; compile also fuses the elementwise work, draws random numbers from the eager
generator and keeps the passes that penalties differentiate twice (R1, path length, WGAN-GP)
eager. Compiling on the CPU takes minutes, so the compile test is marked slow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch

from ganzoo.cli import build
from ganzoo.nn.compiled import compile_network, eager
from tests.conftest import compose_train

pytestmark = pytest.mark.usefixtures("one_thread")


class LossRecorder(pl.Callback):
    """The loss terms logged at each iteration."""

    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        metrics = trainer.callback_metrics.items()
        self.rows.append({k: float(v) for k, v in metrics if k.startswith("loss/")})


def losses(tmp: Path, monkeypatch: pytest.MonkeyPatch, *overrides: str) -> list[dict[str, float]]:
    recorder = LossRecorder()
    monkeypatch.setattr(build, "build_callbacks", lambda cfg: [recorder])
    cfg = compose_train(
        tmp, ["debug=smoke", "logger=none", "trainer.enable_progress_bar=false", *overrides]
    )
    build.train(cfg)
    return recorder.rows


def assert_same_losses(a: list[dict[str, float]], b: list[dict[str, float]], tol: float) -> None:
    assert len(a) == len(b) and a and all(row for row in a)
    for row_a, row_b in zip(a, b, strict=True):
        assert row_a.keys() == row_b.keys()
        for key in row_a:
            assert row_a[key] == pytest.approx(row_b[key], rel=tol, abs=tol), key


@pytest.mark.parametrize("model", ["stylegan2", "stargan", "biggan"])
def test_channels_last_gives_the_eager_losses(
    model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    plain = losses(tmp_path / "a", monkeypatch, f"model={model}", "steps=3")
    fast = losses(tmp_path / "b", monkeypatch, f"model={model}", "steps=3",
                  "trainer.channels_last=true")  # fmt: skip
    assert "ganzoo: channels-last weights" in capsys.readouterr().out
    assert_same_losses(plain, fast, 1e-4)


def test_compiled_networks_fall_back_to_eager_for_penalties() -> None:
    """The routing alone, without compiling anything (the compiled callable is never reached)."""
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    compile_network(net)
    calls: list[str] = []
    for name, child in [("first", net[0]), ("last", net[2])]:
        child.register_forward_hook(lambda *a, name=name: calls.append(name))
    x = torch.randn(2, 3, requires_grad=True)  # a penalty's input: a leaf that requires grad
    (grad,) = torch.autograd.grad(net(x).sum(), x, create_graph=True)
    grad.square().sum().backward()  # differentiable twice: everything ran eager
    with eager():
        y = net(torch.randn(2, 3))
    assert calls == ["first", "last", "first", "last"] and y.shape == (2, 1)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["stylegan2", "stargan"])
def test_compile_gives_the_eager_losses(
    model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    plain = losses(tmp_path / "a", monkeypatch, f"model={model}", "steps=3")
    fast = losses(tmp_path / "b", monkeypatch, f"model={model}", "steps=3", "trainer.compile=true")
    assert "G and D compiled" in capsys.readouterr().out
    assert_same_losses(plain, fast, 1e-4)
