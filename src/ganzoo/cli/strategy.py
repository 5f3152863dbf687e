"""`trainer=ddp`: Lightning's DDP made to fit GANs and Hydra (conf/trainer/ddp.yaml).

GANDDPStrategy leaves the LightningModule unwrapped (see ganzoo.tasks.distributed for why and
how gradients are averaged instead) and launches the other processes of a node with the command
of *this* Hydra job: Lightning's launcher re-runs `sys.argv`, which under `-m` starts a whole
new multirun in every child process and, with a time-stamped run dir, writes into another dir.
Here a child gets the job's own overrides (one value each), its exact output dir and no
`.hydra/` output of its own, so a DDP job of a sweep writes only into its sweep subdir.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import pytorch_lightning as pl
from hydra.core.hydra_config import HydraConfig
from hydra.utils import get_original_cwd
from pytorch_lightning.strategies import DDPStrategy
from pytorch_lightning.strategies.launchers import subprocess_script
from pytorch_lightning.utilities import rank_zero_warn
from torch.nn.modules.batchnorm import _BatchNorm

from ganzoo.tasks.distributed import sync_module_states


class GANDDPStrategy(DDPStrategy):
    """DDPStrategy without the DistributedDataParallel wrapper (GANTask averages gradients)."""

    strategy_name = "gan_ddp"

    def setup(self, trainer: pl.Trainer) -> None:
        if self._layer_sync is not None and self.root_device.type == "cpu":
            # torch's SyncBatchNorm runs on GPUs only; CPU processes keep per-process statistics
            assert self.model is not None
            if any(isinstance(m, _BatchNorm) for m in self.model.modules()):
                rank_zero_warn("trainer.sync_batchnorm ignored: SyncBatchNorm needs GPUs")
            self._layer_sync = None
        super().setup(trainer)

    def configure_ddp(self) -> None:
        assert self.model is not None
        sync_module_states(self.model)  # what DDP's wrapper does at construction

    def _register_ddp_hooks(self) -> None:  # no reducer to hook into
        return None

    def _configure_launcher(self) -> None:
        super()._configure_launcher()
        if isinstance(self._launcher, subprocess_script._SubprocessScriptLauncher):
            self._launcher = _HydraJobLauncher(
                self._launcher.cluster_environment,
                self._launcher.num_processes,
                self._launcher.num_nodes,
            )


def hydra_job_command(local_rank: int) -> tuple[Sequence[str], str]:
    """(command, cwd) that re-runs the current Hydra job, and only it, as process `local_rank`."""
    hydra = HydraConfig.get()
    module = getattr(sys.modules["__main__"].__spec__, "name", None)
    command = [sys.executable, "-m", module] if module else [sys.executable, sys.argv[0]]
    command += list(hydra.overrides.task)  # this job's overrides, sweep values resolved
    command += [
        f'hydra.run.dir="{hydra.runtime.output_dir}"',
        f"hydra.job.name={hydra.job.name}_rank{local_rank}",
        "hydra.output_subdir=null",  # rank 0 alone writes .hydra/
    ]
    return command, get_original_cwd()


@contextmanager
def _job_command() -> Iterator[None]:
    original = subprocess_script._hydra_subprocess_cmd
    subprocess_script._hydra_subprocess_cmd = hydra_job_command  # type: ignore[assignment]
    try:
        yield
    finally:
        subprocess_script._hydra_subprocess_cmd = original


class _HydraJobLauncher(subprocess_script._SubprocessScriptLauncher):
    def _call_children_scripts(self) -> None:
        with _job_command():
            super()._call_children_scripts()
