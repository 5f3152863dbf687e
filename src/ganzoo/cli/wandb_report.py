"""python -m ganzoo.cli.wandb_report RUN_DIR... [out=FILE] [entity=E] [project=P] [group=G]
[push=true] — the W&B report and workspace that show what `python -m ganzoo.compare` shows.

Offline (the default) it writes the definition as JSON (default: <common parent>/compare/
wandb_report.json): one section per section of the HTML page (ganzoo.cli.runs.SECTIONS), one
line plot per logged loss and metric against iterations and against wall time (W&B's process
runtime, which like metrics.csv's `time` continues across resumed sessions), a bar chart of the
final value of every key, the `samples` images, and run comparers for config differences, the
metric provenance (`metrics_provenance`) and `run_info`. The runs are those of the W&B group of
the sweep (or the runs' ids). With push=true (needs `pip install wandb-workspaces` and W&B
credentials) it also saves the report and a saved workspace view to W&B.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from ganzoo.cli import resolvers
from ganzoo.cli.runs import PANELS, SECTIONS, RunRecord, expand, keys_with, load, split_args
from ganzoo.core.errors import ConfigError, GanzooError

OPTIONS = ("out", "entity", "project", "group", "push")
WANDB_X = {  # compare's x axis -> the W&B history key it is
    ("loss/", "iteration"): "iteration",  # logged by GANTask with every loss row
    ("metrics/", "iteration"): "trainer/global_step",  # metric rows: step = iteration
    ("loss/", "time"): "RelativeTime(Process)",  # W&B's _runtime
    ("metrics/", "time"): "RelativeTime(Process)",
}


def run_filter(runs: list[RunRecord], group: str | None) -> str:
    """W&B filter expression selecting the compared runs: their group, else their ids."""
    if group is not None:
        return f"Group = '{group}'"
    ids = [
        (r.path / "wandb_run_id").read_text().strip()
        for r in runs
        if (r.path / "wandb_run_id").is_file()
    ]
    if not ids:
        raise ConfigError(
            "wandb_report: the runs have no W&B group and no wandb_run_id file (trained with "
            "logger=csv?); give group=NAME"
        )
    return "ID in [" + ", ".join(f"'{i}'" for i in ids) + "]"


def default_group(runs: list[RunRecord]) -> str | None:
    """The runs' common W&B group (logger.wandb.group of their configs), if any."""
    groups = {r.config.get("logger.wandb.group") for r in runs}
    return str(groups.pop()) if len(groups) == 1 and None not in groups else None


def definition(
    runs: list[RunRecord], entity: str | None, project: str, group: str | None
) -> dict[str, Any]:
    """The report as plain data: sections in the order of the HTML page, panels per section."""
    keys = keys_with(runs, "loss/") + keys_with(runs, "metrics/")
    sections: dict[str, list[dict[str, Any]]] = {
        "final values": [{"type": "bar", "title": k, "summary": k} for k in keys],
        "samples": [{"type": "media", "keys": ["samples"]}],
        "config differences": [{"type": "run_comparer", "diff_only": True}],
        "metric provenance": [
            {"type": "run_comparer", "diff_only": False, "note": "config keys metrics_provenance.*"}
        ],
        "run info": [
            {"type": "run_comparer", "diff_only": False, "note": "config keys run_info.*"}
        ],
    }
    for panel in PANELS:
        x = WANDB_X[(panel.prefix, panel.x)]
        sections[panel.name] = [
            {"type": "line", "title": k, "x": x, "y": k} for k in keys_with(runs, panel.prefix)
        ]
    titles = {p.name: p.title for p in PANELS}
    return {
        "entity": entity,
        "project": project,
        "group": group,
        "filters": run_filter(runs, group),
        "title": f"ganzoo: {group or f'{len(runs)} runs'}",
        "runs": [r.label for r in runs],
        "sections": [
            {"name": name, "title": titles.get(name, name.capitalize()), "panels": sections[name]}
            for name in SECTIONS
        ],
    }


def _panel(spec: dict[str, Any]) -> Any:
    import wandb_workspaces.reports.v2 as wr

    kind = spec["type"]
    if kind == "line":
        return wr.LinePlot(title=spec["title"], x=spec["x"], y=[spec["y"]])
    if kind == "bar":
        return wr.BarPlot(title=spec["title"], metrics=[wr.SummaryMetric(spec["summary"])])
    if kind == "media":
        return wr.MediaBrowser(media_keys=list(spec["keys"]), mode="gallery", gallery_axis="run")
    if kind == "run_comparer":
        return wr.RunComparer(diff_only="split" if spec["diff_only"] else None)
    raise ConfigError(f"wandb_report: unknown panel type {kind}")


def build(defn: dict[str, Any]) -> tuple[Any, Any]:
    """The wandb_workspaces Report and Workspace of a definition (nothing is sent)."""
    try:
        import wandb_workspaces.reports.v2 as wr
        import wandb_workspaces.workspaces as ws
    except ImportError:
        raise ConfigError(
            "wandb_report push=true needs the wandb-workspaces package "
            "(pip install wandb-workspaces)"
        ) from None
    entity, project = defn["entity"] or "", defn["project"]
    runset = wr.Runset(
        entity=entity, project=project, name="compared runs", filters=defn["filters"]
    )
    blocks: list[Any] = [
        wr.H1(defn["title"]),
        wr.P(
            "Built by python -m ganzoo.cli.wandb_report; the same panels as "
            "python -m ganzoo.compare."
        ),
    ]
    for section in defn["sections"]:
        panels = [_panel(p) for p in section["panels"]]
        blocks += [wr.H2(section["title"]), wr.PanelGrid(runsets=[runset], panels=panels)]
    report = wr.Report(
        project=project, entity=entity, title=defn["title"], blocks=blocks, width="fluid"
    )
    workspace = ws.Workspace(
        entity=entity,
        project=project,
        name=defn["title"],
        sections=[
            ws.Section(name=s["title"], panels=[_panel(p) for p in s["panels"]], is_open=True)
            for s in defn["sections"]
        ],
        runset_settings=ws.RunsetSettings(filters=defn["filters"]),
    )
    return report, workspace


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        return
    try:
        dirs, options = split_args(argv, OPTIONS, "wandb_report")
        paths = expand(dirs)
        runs = load(paths)
        group = options.get("group") or default_group(runs)
        defn = definition(runs, options.get("entity"), options.get("project", "ganzoo"), group)
        parents = {p.parent for p in paths}
        default = (parents.pop() if len(parents) == 1 else Path.cwd()) / "compare"
        out = Path(options.get("out", default / "wandb_report.json"))
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(defn, indent=2) + "\n")
        print(f"ganzoo.cli.wandb_report: wrote {out}")
        if options.get("push", "false").lower() in ("1", "true", "yes"):
            if resolvers.wandb_offline():
                raise ConfigError(
                    "wandb_report push=true needs W&B credentials (WANDB_API_KEY or "
                    f"`wandb login`); the definition is in {out}"
                )
            if not defn["entity"]:  # the account's default entity
                import wandb

                defn["entity"] = wandb.Api().default_entity
            report, workspace = build(defn)
            report.save()
            workspace.save()
            print(f"ganzoo.cli.wandb_report: report {report.url}\nworkspace {workspace.url}")
    except GanzooError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
