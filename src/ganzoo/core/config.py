"""Typed settings from config mappings, with one-line errors for unknown keys."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any, TypeVar

from ganzoo.core.errors import ConfigError

T = TypeVar("T")


def dataclass_from_dict(cls: type[T], values: Mapping[str, Any], prefix: str) -> T:
    """cls(**values) with lists as tuples; an unknown key stops with the valid ones listed.

    prefix: where the keys live in the config, for the message (e.g. "optim").
    """
    valid = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - valid)
    if unknown:
        raise ConfigError(
            f"unknown key {prefix}.{unknown[0]}; valid keys: {', '.join(sorted(valid))}"
        )
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})
