"""Checks before Hydra runs: one-line errors for unknown keys, with the valid ones listed.

Hydra already lists the valid choices of an unknown group option; for an unknown key
it only says "not in struct". `check_overrides` composes the config with the group
choices given, and names the keys valid at the level of the first unknown one.
"""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from omegaconf import DictConfig

from ganzoo.core.errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parents[3] / "conf"


def _is_group(config_dir: Path, override: Override) -> bool:
    key = override.key_or_group.split("@")[0]
    return (config_dir / key).is_dir()


def _unknown(cfg: DictConfig, key: str) -> str | None:
    """The message for `key` when it is not in `cfg`, else None."""
    node: object = cfg
    parts = key.split(".")
    for depth, part in enumerate(parts):
        if not isinstance(node, DictConfig):
            return None  # inside a list or a leaf: leave it to Hydra
        if part not in node.keys():  # `in` is False for a key whose value is ??? (missing)
            where = ".".join(parts[:depth]) or "the top level"
            valid = ", ".join(sorted(str(k) for k in node.keys()))
            return f"unknown key {key}; valid keys under {where}: {valid}"
        node = node._get_node(part)
    return None


def _check_choice(config_dir: Path, override: Override) -> None:
    """An unknown option of a config group: one line with the valid options."""
    if override.is_sweep_override() or override.is_delete():
        return
    group = override.key_or_group.split("@")[0]
    value = override.value()
    if not isinstance(value, str) or value == "null":
        return
    if not (config_dir / group / f"{value}.yaml").is_file():
        valid = sorted(p.stem for p in (config_dir / group).glob("*.yaml") if p.stem[0] != "_")
        raise ConfigError(f"unknown {group}={value}; valid choices: {', '.join(valid)}")


def check_overrides(args: list[str], config_name: str, config_dir: Path = CONFIG_DIR) -> None:
    """Raise ConfigError naming an unknown group option or key among command-line `args`."""
    texts = [a for a in args if "=" in a and not a.startswith("-")]
    if not texts:
        return
    overrides = OverridesParser.create().parse_overrides(texts)
    for o in overrides:
        if _is_group(config_dir, o):
            _check_choice(config_dir, o)
    keys = [
        o
        for o in overrides
        if not _is_group(config_dir, o)
        and not (o.is_add() or o.is_force_add() or o.is_delete())  # '+k=', '++k=', '~k': on purpose
        and not o.is_hydra_override()
    ]
    if not keys:
        return
    groups = [
        o.input_line for o in overrides if _is_group(config_dir, o) and not o.is_sweep_override()
    ]
    if any(_is_group(config_dir, o) and o.is_sweep_override() for o in overrides):
        return  # a sweep over groups: each job is checked by Hydra itself
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(config_dir), version_base="1.3"):
        cfg = compose(config_name, overrides=[g for g in groups if g is not None])
    GlobalHydra.instance().clear()
    for o in keys:
        message = _unknown(cfg, o.key_or_group)
        if message is not None:
            raise ConfigError(message)
