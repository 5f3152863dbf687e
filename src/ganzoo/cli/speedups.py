"""trainer.compile and trainer.channels_last: torch.compile and channels-last memory for G and D.

conf/trainer/default.yaml builds Lightning's Trainer through `make_trainer`, which takes these
two switches off the Trainer's arguments and adds the `Speedups` callback; at setup (before the
first step, in every process) it converts the task's 4D weights to channels-last memory and
compiles G and D (ganzoo.nn.compiled: penalties that differentiate twice run eager). Both
change only the order of floating-point sums: losses equal eager to float tolerance
(tests/test_speedups.py); experiments/benchmarks measure what they gain.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch

from ganzoo.nn.compiled import compile_network
from ganzoo.tasks.base import GANTask


class Speedups(pl.Callback):
    """Apply channels_last and torch.compile to the task's G and D at setup."""

    def __init__(self, compile: bool, channels_last: bool) -> None:
        self.compile = compile
        self.channels_last = channels_last
        self.applied = False

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self.applied or not (self.compile or self.channels_last):
            return
        assert isinstance(pl_module, GANTask)
        self.applied = True
        done = []
        if self.channels_last:
            pl_module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
            done.append("channels-last weights")
        if self.compile:
            compile_network(pl_module.generator)
            compile_network(pl_module.discriminator)
            done.append("G and D compiled (torch.compile; penalties run eager)")
        if trainer.is_global_zero:
            print(f"ganzoo: {', '.join(done)}")


def make_trainer(
    compile: bool,  # torch.compile G and D (trainer.compile)
    channels_last: bool,  # channels-last memory format for the networks (trainer.channels_last)
    callbacks: list[pl.Callback] | None = None,
    **trainer_args: Any,  # the rest of conf/trainer: pytorch_lightning.Trainer's arguments
) -> pl.Trainer:
    """Lightning's Trainer with the Speedups callback added."""
    speedups = Speedups(compile=compile, channels_last=channels_last)
    return pl.Trainer(callbacks=[*(callbacks or []), speedups], **trainer_args)
