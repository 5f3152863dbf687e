"""Checks before Hydra runs: one-line errors for unknown keys, with the valid ones listed.

Hydra already lists the valid choices of an unknown group option; for an unknown key
it only says "not in struct". `check_overrides` composes the config with the group
choices given, and names the keys valid at the level of the first unknown one.
"""

from __future__ import annotations

import io
import re
import warnings
from contextlib import redirect_stdout
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import InstantiationException
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf, open_dict

from ganzoo.cli.build import build_task, example_batch
from ganzoo.core.errors import ConfigError, FieldMismatchError
from ganzoo.data.batch import check_fields

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


# ----- checks of a composed run config, before anything is built -----------------------------

# whole-number keys of a training run and their smallest valid value (None: any)
WHOLE_NUMBERS: dict[str, int | None] = {
    "seed": None,
    "steps": 1,
    "data.resolution": 1,
    "data.batch_size": 1,
    "data.num_workers": 0,
}
# the data config key that counts the values of a Batch field (null: the data lacks them)
COUNTS = {
    "label_map": ("label_nc", "semantic classes of label_map"),
    "attributes": ("num_attributes", "binary attributes"),
    "class_id": ("num_classes", "image-level classes"),
    "caption_tokens": ("vocab_size", "caption vocabulary size"),
}


def check_whole_number(key: str, value: object, low: int | None = None) -> None:
    """One line when `value` (of config key `key`) is not an integer >= low."""
    if isinstance(value, bool) or not isinstance(value, int) or (low is not None and value < low):
        bound = "" if low is None else f" >= {low}"
        raise ConfigError(f"{key}={value} must be a whole number{bound}")


def check_numbers(cfg: DictConfig) -> None:
    """Whole-number keys (steps, seed, batch size, resolution, ...) hold whole numbers."""
    for key, low in WHOLE_NUMBERS.items():
        check_whole_number(key, OmegaConf.select(cfg, key, throw_on_missing=False), low)
    global_batch = OmegaConf.select(cfg, "data.global_batch_size")
    if global_batch is not None:
        check_whole_number("data.global_batch_size", global_batch, 1)


def _class_attr(cfg: DictConfig, key: str, attr: str) -> tuple[str, ...] | None:
    """The ClassVar `attr` of the class named by config key `key` (None when not importable)."""
    target = OmegaConf.select(cfg, key)
    try:
        cls = get_class(str(target))
    except (ImportError, ValueError, AttributeError):
        return None  # an adapter not in this version: build.check_adapter says so
    value = getattr(cls, attr, None)
    return None if value is None else tuple(value)


def check_pair(cfg: DictConfig, model: str) -> None:
    """The model's Batch fields are provided, and counted, by the data (one line naming both).

    Read from the classes' `needs` / `provides` and the data config's counts only, so that a
    pair that does not fit fails before its configs are resolved (model configs interpolate
    the data's counts: data.label_nc=null would fail deep inside OmegaConf).
    """
    needs = _class_attr(cfg, "model._target_", "needs")
    provides = _class_attr(cfg, "data.dataset._target_", "provides")
    if needs is None or provides is None:
        return
    data = str(cfg.data.name)
    check_fields(model, needs, data, provides)
    for field in needs:
        if field not in COUNTS:
            continue
        key, what = COUNTS[field]
        if OmegaConf.is_missing(cfg.data, key):  # ??? in the data config: the user gives it
            raise FieldMismatchError(
                f"model={model} needs data.{key} ({what}): give data.{key}=N for data={data}"
            )
        value = OmegaConf.select(cfg, f"data.{key}", throw_on_missing=False)
        if value is None:
            raise FieldMismatchError(
                f"model={model} needs data.{key} ({what}); data={data} sets {key}=null"
            )
        check_whole_number(f"data.{key}", value, 1)


def check_root(cfg: DictConfig) -> None:
    """A dataset read from files has its folder: data.root is set."""
    dataset = cfg.data.dataset
    if "root" not in dataset:
        return  # procedural (synthetic) or several roots of their own
    if OmegaConf.is_missing(cfg.data, "root") or OmegaConf.select(cfg, "data.root") is None:
        raise ConfigError(
            f"data={cfg.data.name} needs data.root=PATH, the dataset's folder (its layout: "
            f"the docstring of {str(dataset._target_).rsplit('.', 1)[0]})"
        )


def check_missing(cfg: DictConfig) -> None:
    """Every required value (??? in conf/) is given."""
    keys = sorted(k for k in OmegaConf.missing_keys(cfg) if not k.startswith("hydra."))
    if keys:
        raise ConfigError(
            f"{', '.join(keys)} must be given (??? in conf/): add {keys[0]}=... to the command"
        )


def check_run_config(cfg: DictConfig, model: str) -> None:
    """All pre-build checks of a training run's composed config (one-line ConfigErrors)."""
    check_numbers(cfg)
    check_pair(cfg, model)
    check_root(cfg)
    check_missing(cfg)
    check_shapes(cfg, model)


SIZE_ERRORS = (AssertionError, RuntimeError, ValueError, ZeroDivisionError)
SHAPE_WORDS = re.compile(r"size|shape|dimension", re.IGNORECASE)


def _root_cause(err: BaseException) -> BaseException:
    """The innermost cause of an error (Hydra's InstantiationException wraps the model's)."""
    while err.__cause__ is not None:
        err = err.__cause__
    return err


def _probe(cfg: DictConfig, resolution: int) -> str | None:
    """Why the model cannot make images at `resolution` (built on the meta device), or None."""
    probe = cfg.copy()
    with open_dict(probe):
        probe.data.resolution = resolution
    w = resolution
    h = int(round(w / float(probe.data.aspect_ratio)))
    try:  # quiet: what building prints, the real build prints again
        with torch.device("meta"), redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            task = build_task(probe, perceptual=lambda: None)  # losses hold no shapes
            batch = example_batch(probe, task.required_fields(), 2, "meta")
            shapes = task.io_shapes(batch)
    except (*SIZE_ERRORS, InstantiationException) as err:
        cause = _root_cause(err)
        line = (str(cause).strip().splitlines() or [type(cause).__name__])[-1]
        if not isinstance(cause, SIZE_ERRORS) or (
            isinstance(cause, RuntimeError) and not SHAPE_WORDS.search(line)
        ):
            return None  # not about sizes (e.g. an op the meta device lacks): no verdict here
        return line
    if "G" not in shapes:
        return None  # no generator (DAMSM's encoders take any size)
    output = shapes["G"]["output"]
    made = output[-1] if isinstance(output[0], list) else output  # AttnGAN: one per stage
    if list(made[-2:]) != [h, w]:
        return f"its generator makes {made[-1]}x{made[-2]} images"
    return None


def check_shapes(cfg: DictConfig, model: str) -> None:
    """The model makes images of the data's size (its networks built on the meta device)."""
    w = int(cfg.data.resolution)
    h = int(round(w / float(cfg.data.aspect_ratio)))
    reason = _probe(cfg, w)
    if reason is None:
        return
    below = 2 ** (w.bit_length() - 1)
    fits = [r for r in dict.fromkeys((below, 2 * below)) if r != w and _probe(cfg, r) is None]
    hint = f" (data.resolution={' or '.join(map(str, fits))} fits)" if fits else ""
    raise ConfigError(
        f"model={model} cannot make {w}x{h} images (data.resolution={w}, aspect_ratio "
        f"{float(cfg.data.aspect_ratio):g}): {reason}{hint}"
    )
