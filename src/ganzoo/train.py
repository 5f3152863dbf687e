"""python -m ganzoo.train [group=choice ...] [key=value ...] — train a GAN (see conf/train.yaml).

Returns the value named by `optimized_metric` (e.g. loss/G/total, metrics/fid,
metrics/domain_fid): the objective of Optuna sweeps (conf/hparams_search/).
"""

from __future__ import annotations

from omegaconf import DictConfig

from ganzoo.cli.build import choice, train
from ganzoo.cli.entry import SweepConfigError, run
from ganzoo.cli.preflight import check_run_config
from ganzoo.metrics.suite import METRICS


def check_optimized_metric(cfg: DictConfig) -> None:
    """A `metrics/<key>` objective must be computed by the selected metrics (before training)."""
    name = str(cfg.optimized_metric)
    if not name.startswith("metrics/"):
        return  # losses are named by the task's phases: checked once the run has logged them
    selected = [str(m) for m in cfg.metrics.compute]
    produced = [f"metrics/{key}" for m in selected if m in METRICS for key in METRICS[m].outputs]
    if name not in produced:
        what = (
            f"metrics=[{','.join(selected)}] computes {', '.join(produced)}"
            if selected
            else ("metrics=none computes nothing")
        )
        raise SweepConfigError(
            f"optimized_metric={name} is not computed: {what} (choose metrics in conf/metrics/)"
        )


def main_fn(cfg: DictConfig) -> float | None:
    check_run_config(cfg, choice(cfg, "model"))
    target = cfg.optimized_metric
    if target is not None:
        check_optimized_metric(cfg)
    values = train(cfg)
    if target is None:
        return None
    if str(target) not in values:
        logged = ", ".join(sorted(values)) or "nothing (a finished run resumed? resume=false)"
        raise SweepConfigError(
            f"optimized_metric={target} was not logged; this run logged {logged}"
        )
    return values[str(target)]


def main() -> None:
    run("train", main_fn)


if __name__ == "__main__":
    main()
