"""Runs a Hydra entry point with ganzoo's resolvers, pre-flight checks and one-line errors."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import hydra
from omegaconf import DictConfig

from ganzoo.cli import resolvers
from ganzoo.cli.preflight import CONFIG_DIR, check_overrides
from ganzoo.core.errors import GanzooError

QUIET = [
    "hydra.output_subdir=null",
    "hydra.run.dir=.",
    "hydra/job_logging=none",
    "hydra/hydra_logging=none",
]


def run(config_name: str, fn: Callable[[DictConfig], Any], quiet: bool = False) -> None:
    """`python -m ganzoo.<entry>`: check the overrides, then let Hydra compose and call fn.

    quiet: no run dir, no logging (for entries that only print, like ganzoo.info).
    """
    resolvers.register()
    if quiet:
        sys.argv.extend(QUIET)
    try:
        check_overrides(sys.argv[1:], config_name)
    except GanzooError as err:
        _fail(err)

    @hydra.main(config_path=str(CONFIG_DIR), config_name=config_name, version_base="1.3")
    def _main(cfg: DictConfig) -> Any:
        try:
            return fn(cfg)
        except GanzooError as err:
            _fail(err)

    _main()


def _fail(err: GanzooError) -> None:
    # an error re-raised from a DataLoader worker carries the worker's traceback: keep its message
    line = str(err).strip().splitlines()[-1]
    if line.startswith("ganzoo."):
        line = line.split(": ", 1)[-1]
    print(f"error: {line}", file=sys.stderr)
    sys.exit(2)
