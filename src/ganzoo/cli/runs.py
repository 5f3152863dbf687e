"""Reading finished or running run dirs for comparison (`python -m ganzoo.compare`).

A run dir (outputs/<model>-<data>/, or one job dir of a multirun) holds:
config.yaml (the resolved config), metrics.csv (losses per iteration with `iteration`, `step`
and `time` = wall seconds; ResumableCSVLogger), metrics.jsonl (one metric evaluation per line:
iteration, images_seen, metrics, provenance; callbacks.metrics), samples/iter_XXXXXXX.png and
run_info.json (git state, machine; callbacks.run_info). Every file but the config is optional.

`PANELS` names what a comparison shows; the HTML page (ganzoo.compare) and the W&B report
(ganzoo.cli.wandb_report) are both built from it, so they show the same panels.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from omegaconf import ListConfig, OmegaConf

from ganzoo.core.errors import ConfigError, DataError

MISSING = "(absent)"  # a config key a run does not have
PRESENT = "(present)"


@dataclass(frozen=True)
class Panel:
    """A grid of line plots: one per logged key with `prefix`, one line per run."""

    name: str  # file stem of the PNG, anchor in the HTML page
    title: str
    prefix: Literal["loss/", "metrics/"]
    x: Literal["iteration", "time"]  # training iterations, or wall-clock seconds of the run


PANELS = (
    Panel("losses_vs_iteration", "Losses against iterations", "loss/", "iteration"),
    Panel("losses_vs_time", "Losses against wall time", "loss/", "time"),
    Panel("metrics_vs_iteration", "Metrics against iterations", "metrics/", "iteration"),
    Panel("metrics_vs_time", "Metrics against wall time", "metrics/", "time"),
)
SECTIONS = (
    "final values",
    *(p.name for p in PANELS),
    "samples",
    "config differences",
    "metric provenance",
    "run info",
)  # the order of the page and of the W&B report


@dataclass
class Point:
    iteration: float
    time: float | None  # wall seconds since the run started (None: not recorded)
    value: float


@dataclass
class RunRecord:
    """What one run dir holds, read once."""

    path: Path
    label: str
    config: dict[str, Any]  # flattened resolved config: "optim.lr_g" -> 0.0001
    series: dict[str, list[Point]]  # "loss/G/total" / "metrics/fid" -> points by iteration
    evaluations: list[dict[str, Any]]  # metrics.jsonl lines by iteration (a resumed run's win)
    info: dict[str, Any] | None  # run_info.json
    grid: Path | None  # the latest sample grid
    wall_time: float | None = field(default=None)  # seconds, last `time` in metrics.csv

    @property
    def last_iteration(self) -> int | None:
        its = [p.iteration for s in self.series.values() for p in s]
        its += [e["iteration"] for e in self.evaluations]
        return int(max(its)) if its else None

    @property
    def grid_iteration(self) -> int | None:
        match = None if self.grid is None else re.search(r"(\d+)", self.grid.stem)
        return None if match is None else int(match.group(1))

    def final(self, key: str) -> float | None:
        points = self.series.get(key)
        return points[-1].value if points else None


def is_run_dir(path: Path) -> bool:
    return (path / "config.yaml").is_file() or (path / "metrics.csv").is_file()


def expand(paths: list[Path]) -> list[Path]:
    """Run dirs from run dirs and multirun (sweep) dirs, whose job dirs are taken in job order.

    Raises:
        ConfigError: a path that does not exist, or holds no run dir.
    """
    found: list[Path] = []
    for path in paths:
        if not path.is_dir():
            raise ConfigError(f"compare: {path} is not a directory")
        if is_run_dir(path):
            found.append(path)
            continue
        jobs = sorted((p for p in path.iterdir() if p.is_dir() and is_run_dir(p)), key=_job_order)
        if not jobs:
            raise ConfigError(
                f"compare: {path} is neither a run dir (config.yaml or metrics.csv) "
                "nor a multirun dir holding run dirs"
            )
        found += jobs
    return list(dict.fromkeys(p.resolve() for p in found))


JOB_DIR = re.compile(r"(\d+)(?:-|$)")  # multirun job dirs: <num>[-<override_dirname>]


def _job_order(path: Path) -> tuple[int, str]:
    number = JOB_DIR.match(path.name)
    return (int(number.group(1)) if number else 1 << 30, path.name)


def _job_overrides(path: Path) -> list[str]:
    """The command-line overrides of a Hydra job (<run_dir>/.hydra/overrides.yaml), if recorded."""
    record = path / ".hydra" / "overrides.yaml"
    if not record.is_file():
        return []
    overrides = OmegaConf.load(record)
    return [str(o) for o in overrides] if isinstance(overrides, ListConfig) else []


def labels(paths: list[Path]) -> list[str]:
    """Short unique names: a multirun job's number and its overrides that differ between jobs
    (e.g. "#1 optim.lr_g=2e-4"); other run dirs by their folder's name."""
    parts = []
    for p in paths:
        number = JOB_DIR.match(p.name)
        parts.append((f"#{number.group(1)}", _job_overrides(p)) if number else (p.name, []))
    jobs = [set(o) for _, o in parts if o]
    common = set.intersection(*jobs) if len(jobs) > 1 else set()
    names = [
        " ".join([head, *(o for o in overrides if o not in common)]) for head, overrides in parts
    ]
    if len(set(names)) < len(names):  # same-named dirs under different parents
        names = [f"{p.parent.name}/{n}" for p, n in zip(paths, names, strict=True)]
    return names


def load(paths: list[Path]) -> list[RunRecord]:
    """Read every run dir (see the module docstring); one-line errors name the bad file."""
    return [_load(p, label) for p, label in zip(paths, labels(paths), strict=True)]


def _load(path: Path, label: str) -> RunRecord:
    config = _read_config(path / "config.yaml")
    rows = _read_csv(path / "metrics.csv")
    evaluations = _read_jsonl(path / "metrics.jsonl")
    info_path = path / "run_info.json"
    info = _read_json(info_path) if info_path.is_file() else None
    grids = sorted((path / "samples").glob("iter_*.png"))
    times = [r["time"] for r in rows if "time" in r]
    return RunRecord(
        path=path,
        label=label,
        config=_normalise(config, path),
        series=_series(rows, evaluations),
        evaluations=evaluations,
        info=info,
        grid=grids[-1] if grids else None,
        wall_time=max(times) if times else None,
    )


def _read_config(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    container = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    if not isinstance(container, dict):
        raise DataError(f"compare: {path} is not a mapping")
    return flatten({str(k): v for k, v in container.items()})


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"optim": {"lr_g": 1e-4}} -> {"optim.lr_g": 1e-4}; lists stay values."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def _normalise(config: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """Paths inside the run's own dir written as <run_dir>/..., so they do not show as
    differences between runs; W&B ids, names and tags (derived from the run dir and the sweep)
    dropped."""
    own = sorted({str(run_dir), str(run_dir.resolve())}, key=len, reverse=True)
    out = {}
    for key, value in config.items():
        if key.startswith("logger.wandb.") and key.rsplit(".", 1)[1] in ("id", "name", "tags"):
            continue
        if isinstance(value, str):
            for prefix in own:
                value = value.replace(prefix, "<run_dir>")
        out[key] = value
    return out


def _read_csv(path: Path) -> list[dict[str, float]]:
    """Rows of metrics.csv as {column: float}, empty cells left out, in file order."""
    if not path.is_file():
        return []
    rows = []
    with path.open(newline="") as handle:
        for n, row in enumerate(csv.DictReader(handle), start=2):
            try:
                rows.append({k: float(v) for k, v in row.items() if k and v not in ("", None)})
            except ValueError as err:
                raise DataError(f"compare: {path} line {n}: {err}") from None
    return rows


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Metric evaluations by iteration; of two at one iteration (a resumed run) the later wins."""
    if not path.is_file():
        return []
    by_iteration: dict[int, dict[str, Any]] = {}
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            by_iteration[int(record["iteration"])] = record
            dict(record["metrics"])
        except (ValueError, KeyError, TypeError) as err:
            raise DataError(
                f"compare: {path} line {n} is not a metric evaluation "
                f"(iteration, images_seen, metrics, provenance): {err}"
            ) from None
    return [by_iteration[i] for i in sorted(by_iteration)]


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except ValueError as err:
        raise DataError(f"compare: {path}: {err}") from None
    if not isinstance(data, dict):
        raise DataError(f"compare: {path} is not a JSON object")
    return data


def _series(
    rows: list[dict[str, float]], evaluations: list[dict[str, Any]]
) -> dict[str, list[Point]]:
    """Per key, one point per iteration (a resumed run's later row wins), sorted by iteration.

    Loss rows carry `iteration`; metric rows (logged by the metric callback with step =
    iteration) have none, so their iteration is `step`. Metric evaluations come from
    metrics.jsonl, their wall time from the metric row of the same iteration in metrics.csv.
    """
    points: dict[str, dict[float, Point]] = {}
    metric_times: dict[float, float] = {}
    for row in rows:
        it = row.get("iteration", row.get("step"))
        if it is None:
            continue
        for key, value in row.items():
            if key.startswith("loss/"):
                points.setdefault(key, {})[it] = Point(it, row.get("time"), value)
            elif key.startswith("metrics/") and "time" in row:
                metric_times[it] = row["time"]
    for record in evaluations:
        it = float(record["iteration"])
        for name, value in record["metrics"].items():
            point = Point(it, metric_times.get(it), float(value))
            points.setdefault(f"metrics/{name}", {})[it] = point
    return {k: [v[i] for i in sorted(v)] for k, v in sorted(points.items())}


def config_differences(runs: list[RunRecord]) -> dict[str, list[Any]]:
    """Keys whose value differs between runs (MISSING where a run lacks the key), sorted.

    A config node that some runs lack and the others have identically (e.g. logger.wandb with
    logger=csv against logger=default) is one row, its values MISSING or PRESENT.
    """
    keys = sorted(set().union(*(r.config for r in runs)))
    diff = {}
    for key in keys:
        values = [r.config.get(key, MISSING) for r in runs]
        if len({json.dumps(v, sort_keys=True, default=str) for v in values}) > 1:
            diff[key] = values
    return _collapse(diff, runs)


def _collapse(diff: dict[str, list[Any]], runs: list[RunRecord]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for key, values in diff.items():
        node = key.rsplit(".", 1)[0] if "." in key else None
        if node is not None and node in out:
            continue
        if node is not None:
            below = {
                k: [r.config.get(k, MISSING) for r in runs]
                for r in runs
                for k in r.config
                if k.startswith(node + ".")
            }
            has = [any(k.startswith(node + ".") for k in r.config) for r in runs]
            absent_alike = all(
                all((v == MISSING) != h for v, h in zip(vals, has, strict=True))
                and len({json.dumps(v, default=str) for v in vals if v != MISSING}) == 1
                for vals in below.values()
            )
            if absent_alike and len(below) > 1:
                out[node] = [PRESENT if h else MISSING for h in has]
                continue
        out[key] = values
    return out


def keys_with(runs: list[RunRecord], prefix: str) -> list[str]:
    """Logged keys starting with prefix, over all runs, sorted."""
    return sorted({k for r in runs for k in r.series if k.startswith(prefix)})


def split_args(
    argv: list[str], options: tuple[str, ...], prog: str
) -> tuple[list[Path], dict[str, str]]:
    """RUN_DIR arguments and key=value options. An existing path is always a run dir (multirun
    job dirs have '=' in their names).

    Raises:
        ConfigError: an unknown option (the error lists the valid ones), or no run dir.
    """
    dirs: list[Path] = []
    found: dict[str, str] = {}
    for arg in argv:
        key, eq, value = arg.partition("=")
        if Path(arg).exists() or not eq or "/" in key:
            dirs.append(Path(arg))
        elif key in options:
            found[key] = value
        else:
            raise ConfigError(f"{prog}: unknown option {key}=; valid options: {', '.join(options)}")
    if not dirs:
        raise ConfigError(
            f"{prog}: no run dir given (arguments: RUN_DIR... "
            + " ".join(f"[{o}=...]" for o in options)
            + ")"
        )
    return dirs, found
