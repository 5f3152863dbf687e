"""ganzoo.export: every generator as TorchScript / ONNX, checked against the eager generator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn

from ganzoo.cli.preflight import CONFIG_DIR
from ganzoo.export import _run_exported, export, main_fn
from tests.conftest import run_cli

MODELS = ["spade", "pix2pixhd", "biggan", "stargan", "stylegan2", "attngan"]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One 2-step smoke run per model (in one multirun)."""
    root = tmp_path_factory.mktemp("export")
    result = run_cli(
        "ganzoo.train",
        "-m",
        f"model={','.join(MODELS)}",
        "debug=smoke",
        "steps=2",
        "logger=csv",
        "callbacks.samples.every_n_iterations=0",
        f"paths.root_dir={root}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    found = {}
    for ckpt in (root / "outputs" / "multirun").glob("*/*/checkpoints/last.ckpt"):
        cfg = OmegaConf.load(ckpt.parent.parent / "config.yaml")
        found[str(cfg.model._target_).split(".")[2]] = ckpt
    assert sorted(found) == sorted(MODELS)
    return found


def _cfg(ckpt: Path, fmt: str, **extra: object) -> DictConfig:
    """conf/export.yaml with these values (what `python -m ganzoo.export ...` composes)."""
    base = OmegaConf.load(CONFIG_DIR / "export.yaml")
    return OmegaConf.merge(base, {"ckpt": str(ckpt), "format": fmt, **extra})  # type: ignore[return-value]


@pytest.mark.parametrize("model", MODELS)
def test_torchscript_export_matches_the_eager_generator(checkpoints, model: str) -> None:
    ckpt = checkpoints[model]
    out = ckpt.parent / f"{model}.pt"
    info = main_fn(_cfg(ckpt, "torchscript", output=str(out)))
    assert info["parity_max_abs_diff"] <= 1e-4
    assert json.loads(out.with_name(f"{out.name}.json").read_text()) == info
    loaded = torch.jit.load(str(out))  # runs without ganzoo's classes
    inputs = [
        torch.zeros(s["shape"], dtype=getattr(torch, s["dtype"].split(".")[1]))
        for s in info["inputs"]
    ]
    image = loaded(*inputs)
    assert image.shape[:2] == (info["inputs"][0]["shape"][0], 3)
    assert bool(torch.isfinite(image).all())  # [-1, 1] scale; StyleGAN2 has no output clamp


@pytest.mark.parametrize("model", ["spade", "stylegan2", "attngan"])
def test_onnx_export_matches_with_another_batch_size(checkpoints, model: str) -> None:
    ckpt = checkpoints[model]
    info = main_fn(_cfg(ckpt, "onnx"))
    assert info["batch_axis"] == "dynamic" and Path(info["file"]).is_file()
    assert info["parity_max_abs_diff"] <= 1e-4  # checked on a batch of 3


def test_attngan_exports_on_text_features_with_the_padding_mask(checkpoints) -> None:
    """AttnGAN's file takes (z, sentence, words, mask, ca_noise) of the frozen DAMSM text encoder
    (debug_model/smoke_attngan: z 4, nef 16, c 4; synthetic captions of 18 tokens)."""
    ckpt = checkpoints["attngan"]
    out = ckpt.parent / "attngan_mask.pt"
    info = main_fn(_cfg(ckpt, "torchscript", output=str(out), batch_size=3))
    shapes = [(s["shape"], s["dtype"]) for s in info["inputs"]]
    assert shapes == [
        ([3, 4], "torch.float32"),
        ([3, 16], "torch.float32"),
        ([3, 16, 18], "torch.float32"),
        ([3, 18], "torch.bool"),
        ([3, 4], "torch.float32"),
    ]
    g = torch.Generator().manual_seed(0)
    z, noise = torch.randn(3, 4, generator=g), torch.randn(3, 4, generator=g)
    sentence, words = torch.randn(3, 16, generator=g), torch.randn(3, 16, 18, generator=g)
    mask = torch.zeros(3, 18, dtype=torch.bool)
    loaded = torch.jit.load(str(out))
    full = loaded(z, sentence, words, mask, noise)
    mask[1:, 5:] = True  # items 1 and 2: captions of 5 words
    padded = loaded(z, sentence, words, mask, noise)
    assert full.shape == (3, 3, 128, 128) and full.abs().max() <= 1.0
    assert torch.equal(full[0], padded[0]) and not torch.allclose(full[1:], padded[1:])


class Noisy(nn.Module):
    """Adds fresh noise each call: a traced copy cannot reproduce it."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.tanh(x + torch.randn_like(x))


class NoisyTask:
    def export_module(self) -> nn.Module:
        return Noisy()

    def export_inputs(self, n: int, generator: torch.Generator) -> tuple[Tensor, ...]:
        return (torch.randn(n, 3, 4, 4, generator=generator),)


def test_parity_check_catches_a_generator_that_does_not_reproduce(tmp_path: Path) -> None:
    path = tmp_path / "g.pt"
    module, inputs = export(NoisyTask(), OmegaConf.create({}), "torchscript", path, 2, 0)  # type: ignore[arg-type]
    diff = float((_run_exported("torchscript", path, inputs) - module(*inputs)).abs().max())
    assert diff > 1e-2


def test_unknown_format_and_missing_ckpt_are_one_line_errors(tmp_path: Path) -> None:
    result = run_cli("ganzoo.export", f"ckpt={tmp_path / 'none.ckpt'}", "format=tflite")
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == (
        "error: unknown format=tflite; valid: torchscript, onnx"
    )
    result = run_cli("ganzoo.export", f"ckpt={tmp_path / 'none.ckpt'}")
    assert (
        result.stderr.strip().splitlines()[-1]
        == f"error: ckpt={tmp_path / 'none.ckpt'} does not exist"
    )
