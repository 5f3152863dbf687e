"""What the studio's pages share: a served checkpoint, image conversions, timing."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig
from torch import Tensor

from ganzoo.core.image import to_uint8
from ganzoo.tasks.base import GANTask


@dataclass
class Served:
    """One checkpoint the studio serves."""

    path: Path
    task: GANTask
    run_cfg: DictConfig
    work_dir: Path  # downloads and saved files of this tab

    @property
    def title(self) -> str:
        model = str(self.run_cfg.model._target_).rsplit(".", 1)[-1].removesuffix("Task")
        return f"{model} · {self.run_cfg.data.name} · {self.path.parent.parent.name}"


def image(x: Tensor) -> np.ndarray:
    """(1, 3, H, W) or (3, H, W) in [-1, 1] -> (H, W, 3) uint8."""
    return to_uint8(x if x.dim() == 4 else x[None])[0]


@contextmanager
def timed(report: list[float]) -> Iterator[None]:
    """Append the block's wall time in milliseconds to `report`."""
    start = time.perf_counter()
    yield
    report.append((time.perf_counter() - start) * 1000.0)


def ints(text: str, what: str) -> list[int]:
    """'85, 100, 75' or '0-6' -> integers; a one-line error otherwise."""
    out: list[int] = []
    for part in str(text).replace(" ", "").split(","):
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        try:
            out.extend(range(int(lo), int(hi) + 1) if sep else [int(lo)])
        except ValueError:
            raise ValueError(f"{what}: expected integers like 1,2,3 or 0-6, got {text!r}") from None
    if not out:
        raise ValueError(f"{what}: give at least one integer")
    return out


def guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a ganzoo or value error inside a callback into a message shown in the page."""
    import gradio as gr

    from ganzoo.core.errors import GanzooError

    def call(*args: Any) -> Any:
        try:
            return fn(*args)
        except (GanzooError, ValueError) as err:
            raise gr.Error(str(err).strip().splitlines()[-1]) from None

    call.__name__ = fn.__name__
    return call
