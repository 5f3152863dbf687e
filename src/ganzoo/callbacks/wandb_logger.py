"""Lightning's W&B logger without the one setting W&B warns about on every run."""

from __future__ import annotations

from typing import Any

from pytorch_lightning.loggers import WandbLogger


class QuietWandbLogger(WandbLogger):
    """`pytorch_lightning.loggers.WandbLogger`, minus the `anonymous` setting it always passes
    to `wandb.init` (W&B then warns "The anonymous setting has no effect")."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._wandb_init.pop("anonymous", None)
