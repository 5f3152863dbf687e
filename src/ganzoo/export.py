"""python -m ganzoo.export ckpt=PATH [format=torchscript|onnx] — the EMA generator as one file.

The exported graph is the generator of the checkpoint's run (its EMA copy, in eval mode) with
the generator's own positional inputs: e.g. SPADE's one-hot semantic map (+ z with use_vae),
pix2pixHD's label / edge / feature map, BigGAN's (z, class id), StyleGAN2's (z, c), AttnGAN's
(z, sentence, words, padding mask, CA noise) with the text features of the run's frozen DAMSM
text encoder computed outside the file (its last-stage image only). A JSON file
beside it names each input with its shape and dtype, the output, the checkpoint and its
hash, and the largest difference to the eager generator found by the parity check
(`<file>.json`: generator.pt.json, generator.onnx.json, so both exports keep theirs).

- torchscript: `torch.jit.trace` on an example batch; runs with `torch.jit.load` (no ganzoo).
- onnx: the dynamo exporter (opset 18) with a dynamic batch axis; runs with onnxruntime.

Parity (`check=true`, the default): the exported file is loaded back and run on a *second*
random batch of another size than the one it was traced with (catching values baked in by
tracing); the run stops with an error if any output differs from the eager generator's by more
than `atol`. A task may provide `export_module()` and `export_inputs(n, generator)` when its
generator needs fixed settings to be traceable (e.g. StyleGAN2's noise and truncation).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from torch import Tensor, nn

from ganzoo.cli.build import example_batch, load_run
from ganzoo.cli.entry import run
from ganzoo.core.errors import ConfigError
from ganzoo.core.weights import sha256_of
from ganzoo.tasks.base import GANTask

FORMATS = {"torchscript": ".pt", "onnx": ".onnx"}


def random_inputs(task: GANTask, run_cfg: DictConfig, n: int, seed: int) -> tuple[Tensor, ...]:
    """G's positional inputs for n random items: label ids, attributes, classes, captions and
    latents."""
    hook = getattr(task, "export_inputs", None)
    g = torch.Generator().manual_seed(seed)
    if hook is not None:
        return tuple(hook(n, g))
    batch = example_batch(run_cfg, task.required_fields(), n, "cpu")
    if batch.label_map is not None:
        label_nc = int(run_cfg.data.label_nc)
        batch.label_map = torch.randint(0, label_nc, batch.label_map.shape, generator=g)
    if batch.instance_map is not None:
        batch.instance_map = torch.randint(0, 4, batch.instance_map.shape, generator=g)
    if batch.class_id is not None:
        classes = int(run_cfg.data.num_classes)
        batch.class_id = torch.randint(0, classes, batch.class_id.shape, generator=g)
    if batch.attributes is not None:
        batch.attributes = torch.randint(0, 2, batch.attributes.shape, generator=g).float()
    if batch.caption_tokens is not None:  # random captions, 0-padded; the first fills T
        n_words, t = int(run_cfg.data.vocab_size), batch.caption_tokens.shape[1]
        lengths = torch.randint(1, t + 1, (n,), generator=g)
        lengths[0] = t  # the text encoder's word axis is the longest caption: always T
        tokens = torch.randint(1, n_words, (n, t), generator=g)
        batch.caption_tokens = tokens * (torch.arange(t) < lengths[:, None])
        batch.caption_lengths = lengths
    batch.image = torch.rand(batch.image.shape, generator=g) * 2 - 1
    with torch.no_grad():
        return tuple(task.generator_inputs(batch, task.sample_latents(n, g)))


def export_module(task: GANTask) -> nn.Module:
    hook = getattr(task, "export_module", None)
    module = hook() if hook is not None else task.generator_ema
    return module.eval()


def _run_exported(fmt: str, path: Path, inputs: tuple[Tensor, ...]) -> Tensor:
    if fmt == "torchscript":
        loaded = torch.jit.load(str(path), map_location="cpu")
        with torch.no_grad():
            return loaded(*inputs)
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    if len(names) != len(inputs):
        raise ConfigError(f"{path}: the ONNX graph takes {len(names)} inputs, not {len(inputs)}")
    feeds = {name: x.cpu().numpy() for name, x in zip(names, inputs, strict=True)}
    return torch.from_numpy(session.run(None, feeds)[0])


def export(
    task: GANTask, run_cfg: DictConfig, fmt: str, path: Path, batch_size: int, seed: int
) -> tuple[nn.Module, tuple[Tensor, ...]]:
    """Write the generator to `path`; returns (eager module, example inputs)."""
    module = export_module(task)
    inputs = random_inputs(task, run_cfg, batch_size, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with torch.no_grad():
        if fmt == "torchscript":
            torch.jit.trace(module, inputs, check_trace=False).save(str(tmp))
        else:
            from torch.export import Dim

            batch = Dim("batch", min=1, max=1024)
            torch.onnx.export(
                module,
                inputs,
                str(tmp),
                dynamo=True,
                opset_version=18,
                dynamic_shapes=tuple({0: batch} for _ in inputs),
                verbose=False,
            )
    os.replace(tmp, path)
    return module, inputs


def info_path(out: Path) -> Path:
    """The JSON beside an exported file: generator.pt.json, generator.onnx.json (one each)."""
    return out.with_name(f"{out.name}.json")


def check_exportable(task: GANTask, run_cfg: DictConfig) -> None:
    """A run whose task has no image generator (DAMSM's encoders) cannot be exported."""
    own_inputs = type(task).generator_inputs is not GANTask.generator_inputs
    if not own_inputs and not hasattr(task, "export_inputs"):
        target = str(run_cfg.model._target_)
        hint = (
            "; its encoders feed model=attngan (model.damsm_ckpt=...): export that run"
            if "damsm" in target.lower()
            else ""
        )
        raise ConfigError(f"{target} makes no images: nothing to export{hint}")


def main_fn(cfg: DictConfig) -> dict[str, Any]:
    fmt = str(cfg.format)
    if fmt not in FORMATS:
        raise ConfigError(f"unknown format={fmt}; valid: {', '.join(FORMATS)}")
    if cfg.ckpt is None:
        raise ConfigError("ganzoo.export needs ckpt=PATH (a run's checkpoints/last.ckpt)")
    ckpt = Path(str(cfg.ckpt))
    task, run_cfg = load_run(ckpt, "cpu")
    check_exportable(task, run_cfg)
    out = Path(str(cfg.output)) if cfg.output else ckpt.parent / f"generator{FORMATS[fmt]}"
    module, inputs = export(task, run_cfg, fmt, out, int(cfg.batch_size), int(cfg.seed))
    info: dict[str, Any] = {
        "file": str(out),
        "format": fmt,
        "checkpoint": str(ckpt.resolve()),
        "checkpoint_sha256": sha256_of(ckpt),
        "model": str(run_cfg.model._target_),
        "inputs": [{"shape": list(x.shape), "dtype": str(x.dtype)} for x in inputs],
        "batch_axis": "dynamic" if fmt == "onnx" else f"fixed at {int(cfg.batch_size)}",
        "output": "images (N, 3, H, W) on the [-1, 1] scale",
    }
    if cfg.check:
        n = int(cfg.batch_size) + (1 if fmt == "onnx" else 0)  # ONNX: another batch size too
        other = random_inputs(task, run_cfg, n, int(cfg.seed) + 1)
        with torch.no_grad():
            want = module(*other)
        got = _run_exported(fmt, out, other)
        diff = float((got - want).abs().max())
        info["parity_max_abs_diff"] = diff
        if not diff <= float(cfg.atol):
            raise ConfigError(
                f"{out}: exported generator differs from the eager one by {diff:.3g} "
                f"(> atol {cfg.atol}) on a second batch"
            )
    info_path(out).write_text(json.dumps(info, indent=2) + "\n")
    print(json.dumps(info))
    return info


def main() -> None:
    run("export", main_fn, quiet=True)


if __name__ == "__main__":
    main()
