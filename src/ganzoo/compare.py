"""python -m ganzoo.compare RUN_DIR... [out=DIR] [title=TEXT] — compare runs, offline.

RUN_DIR is a run dir (outputs/<model>-<data>) or a multirun dir (outputs/multirun/<date>),
which stands for its job dirs. Writes to `out` (default: <common parent>/compare):

    index.html                 one self-contained page (inline CSS, images embedded)
    losses_vs_iteration.png    one plot per loss, one line per run   (and the same for
    losses_vs_time.png         wall time, and for metric evaluations: metrics_vs_*.png)
    samples.png                the latest sample grid of every run, side by side
    summary.json               the numbers of the page's tables

The page holds a table of final values (last logged losses, the last metric evaluation and
its iteration), the plots, the sample grids, the config keys that differ between runs, the
provenance of the last metric evaluation and where each run ran (run_info.json). The W&B
report of `python -m ganzoo.cli.wandb_report` shows the same panels online.
"""

from __future__ import annotations

import base64
import datetime
import html
import json
import sys
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure  # no pyplot: no display, no global state
from matplotlib.lines import Line2D
from PIL import Image, ImageDraw

from ganzoo.cli.runs import (
    PANELS,
    Panel,
    RunRecord,
    config_differences,
    expand,
    flatten,
    keys_with,
    load,
    split_args,
)
from ganzoo.core.errors import GanzooError

OPTIONS = ("out", "title")
COLOURS = [f"C{i}" for i in range(10)]  # run i has colour i in every plot
INFO_KEYS = (
    "git_commit",
    "git_dirty",
    "git_branch",
    "host",
    "cpu",
    "cpu_count",
    "gpus",
    "world_size",
    "python",
    "torch",
    "lightning",
    "ganzoo",
    "started_utc",
)


def fmt(value: Any) -> str:
    """A number with 6 significant digits; anything else as JSON or text."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, float | int):
        return f"{value:.6g}"
    if isinstance(value, list | dict):
        return json.dumps(value, sort_keys=True)
    return str(value)


# ----- plots -----------------------------------------------------------------------------
def plot_panel(runs: list[RunRecord], panel: Panel, path: Path) -> Path | None:
    """One subplot per key with panel.prefix, one line per run; None when nothing to draw."""
    keys = [k for k in keys_with(runs, panel.prefix) if any(_xy(r, k, panel.x)[0] for r in runs)]
    if not keys:
        return None
    cols = min(3, len(keys))
    rows = -(-len(keys) // cols)
    fig = Figure(figsize=(4.2 * cols, 3.0 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, key in zip(axes.flat, keys, strict=False):
        for i, run in enumerate(runs):
            xs, ys = _xy(run, key, panel.x)
            if xs:
                marker = "o" if panel.prefix == "metrics/" else None
                ax.plot(
                    xs, ys, color=COLOURS[i % len(COLOURS)], marker=marker, lw=1.2, label=run.label
                )
        ax.set_title(key, fontsize=10)
        ax.set_xlabel("iteration" if panel.x == "iteration" else "wall time (s)", fontsize=9)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(keys) :]:
        ax.set_visible(False)
    handles = [
        Line2D([], [], color=COLOURS[i % len(COLOURS)], label=run.label)
        for i, run in enumerate(runs)
    ]
    fig.legend(
        handles=handles, loc="lower center", ncol=min(4, len(runs)), fontsize=9, frameon=False
    )
    fig.suptitle(panel.title, fontsize=12)
    fig.tight_layout(rect=(0, 0.06 + 0.02 * (len(runs) // 4), 1, 0.97))
    fig.savefig(path, dpi=100)
    return path


def _xy(run: RunRecord, key: str, x: str) -> tuple[list[float], list[float]]:
    points = run.series.get(key, [])
    if x == "iteration":
        return [p.iteration for p in points], [p.value for p in points]
    timed = [p for p in points if p.time is not None]
    return [p.time for p in timed], [p.value for p in timed]  # type: ignore[misc]


def samples_strip(runs: list[RunRecord], path: Path) -> Path | None:
    """The latest grid of every run side by side, each under its run's label."""
    grids = [(r, Image.open(r.grid).convert("RGB")) for r in runs if r.grid is not None]
    if not grids:
        return None
    gap, caption = 12, 18
    width = sum(im.width for _, im in grids) + gap * (len(grids) - 1)
    height = max(im.height for _, im in grids) + caption
    strip = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(strip)
    x = 0
    for run, im in grids:
        draw.text((x + 2, 3), f"{run.label} @ {run.grid_iteration}", fill="black")
        strip.paste(im, (x, caption))
        x += im.width + gap
    strip.save(path)
    return path


# ----- tables ----------------------------------------------------------------------------
def summary(runs: list[RunRecord]) -> dict[str, Any]:
    """The numbers the page shows, as JSON: per run the final losses and the last evaluation."""
    out = []
    for run in runs:
        last = run.evaluations[-1] if run.evaluations else None
        out.append(
            {
                "label": run.label,
                "path": str(run.path),
                "iteration": run.last_iteration,
                "wall_time": run.wall_time,
                "losses": {k: run.final(k) for k in keys_with([run], "loss/")},
                "metrics": {} if last is None else dict(last["metrics"]),
                "metrics_iteration": None if last is None else last["iteration"],
                "images_seen": None if last is None else last.get("images_seen"),
                "provenance": None if last is None else last.get("provenance"),
                "run_info": run.info,
                "samples": None if run.grid is None else str(run.grid),
            }
        )
    return {"runs": out, "config_differences": config_differences(runs)}


def _cell(value: Any, key: str, run: str, tag: str = "td") -> str:
    attrs = f' data-key="{html.escape(key)}" data-run="{html.escape(run)}"'
    return f"<{tag}{attrs}>{html.escape(fmt(value)) if value is not None else '—'}</{tag}>"


def final_table(runs: list[RunRecord], data: dict[str, Any]) -> str:
    losses = keys_with(runs, "loss/")
    metrics = sorted({k for r in data["runs"] for k in r["metrics"]})
    head = [  # metrics first: with many loss terms they would be off-screen
        "run",
        "iteration",
        *(f"metrics/{m}" for m in metrics),
        "evaluated at",
        *losses,
        "wall time (s)",
        "images seen",
    ]
    rows = []
    for record in data["runs"]:
        label = record["label"]
        cells = [
            _cell(label, "run", label, "th"),
            _cell(record["iteration"], "iteration", label),
        ]
        cells += [_cell(record["metrics"].get(m), f"metrics/{m}", label) for m in metrics]
        cells.append(_cell(record["metrics_iteration"], "metrics_iteration", label))
        cells += [_cell(record["losses"].get(k), k, label) for k in losses]
        cells += [
            _cell(record["wall_time"], "wall_time", label),
            _cell(record["images_seen"], "images_seen", label),
        ]
        rows.append(f'<tr data-run="{html.escape(label)}">{"".join(cells)}</tr>')
    header = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    return (
        f'<div class="scroll"><table id="final"><thead><tr>{header}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def key_table(table_id: str, runs: list[str], values: dict[str, list[Any]]) -> str:
    """Rows = keys, columns = runs."""
    if not values:
        return '<p class="empty">none</p>'
    header = "<th>key</th>" + "".join(f"<th>{html.escape(r)}</th>" for r in runs)
    rows = [
        f"<tr><th>{html.escape(key)}</th>"
        + "".join(_cell(fmt(v), key, r) for v, r in zip(vals, runs, strict=True))
        + "</tr>"
        for key, vals in values.items()
    ]
    return (
        f'<div class="scroll"><table id="{table_id}"><thead><tr>{header}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def provenance_values(data: dict[str, Any]) -> dict[str, list[Any]]:
    flat = [flatten(r["provenance"]) if r["provenance"] else {} for r in data["runs"]]
    keys = sorted(set().union(*flat))
    return {k: [f.get(k) for f in flat] for k in keys}


def info_values(data: dict[str, Any]) -> dict[str, list[Any]]:
    infos = [r["run_info"] or {} for r in data["runs"]]
    return {k: [i.get(k) for i in infos] for k in INFO_KEYS if any(k in i for i in infos)}


# ----- the page --------------------------------------------------------------------------
CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; background: #fff; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; }
.meta, .empty { color: #666; } nav a { margin-right: 12px; }
table { border-collapse: collapse; font-size: 13px; margin: 4px 0; }
.scroll { overflow-x: auto; max-width: 100%; } thead th { white-space: nowrap; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; vertical-align: top; }
th { background: #f3f3f3; } tbody th { text-align: left; font-weight: 600; white-space: nowrap; }
td { font-variant-numeric: tabular-nums; max-width: 28em; overflow-wrap: anywhere; }
img.plot { max-width: 100%; border: 1px solid #eee; }
#final tbody th, #final thead th:first-child { position: sticky; left: 0; z-index: 1; }
.heads { display: grid; font-size: 12px; color: #444; text-align: center; }
.failed { color: #a00; }
.grids { display: flex; flex-wrap: wrap; gap: 16px; align-items: flex-start; }
figure { margin: 0; } figure img { image-rendering: pixelated; border: 1px solid #ddd;
  max-width: 640px; } figcaption { font-size: 12px; color: #444; }
"""


def _why_empty(panel: Panel) -> str:
    if panel.prefix == "metrics/":
        return "no metric evaluation (metrics.jsonl; trained with metrics=none?)"
    if panel.x == "time":
        return "metrics.csv has no time column (a run from before ganzoo recorded wall time?)"
    return "metrics.csv has no loss/ column"


def _display_width(width: int) -> int:
    """Small grids (debug runs) shown at an integer zoom of at least 240 pixels."""
    return width * max(1, -(-240 // width))


def _png(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def _plot_section(panel: Panel, path: Path | None) -> str:
    body = (
        f'<img class="plot" alt="{html.escape(panel.title)}" src="{_png(path)}">'
        if path is not None
        else f'<p class="empty">nothing to plot: {_why_empty(panel)}</p>'
    )
    return f'<section id="{panel.name}"><h2>{html.escape(panel.title)}</h2>{body}</section>'


def grid_columns(grid: Path) -> list[str]:
    """The column names of a run's sample grids (samples/columns.json), if recorded."""
    record = grid.parent / "columns.json"
    if not record.is_file():
        return []
    try:
        return [str(c) for c in json.loads(record.read_text())["columns"]]
    except (ValueError, KeyError, TypeError):
        return []


def _figure(run: RunRecord) -> str:
    assert run.grid is not None
    width = _display_width(Image.open(run.grid).width)
    names = grid_columns(run.grid)
    heads = (
        f'<div class="heads" style="width:{width}px;grid-template-columns:'
        f'repeat({len(names)},1fr)">' + "".join(f"<span>{html.escape(n)}</span>" for n in names)
        + "</div>"
        if names
        else ""
    )
    return (
        f'<figure>{heads}<img alt="samples of {html.escape(run.label)}" width="{width}" '
        f'src="{_png(run.grid)}"><figcaption>{html.escape(run.label)} · iteration '
        f"{run.grid_iteration}</figcaption></figure>"
    )


def _samples_section(runs: list[RunRecord]) -> str:
    figures = [_figure(r) for r in runs if r.grid is not None]
    body = (
        f'<div class="grids">{"".join(figures)}</div>'
        if figures
        else '<p class="empty">no sample grids</p>'
    )
    return f'<section id="samples"><h2>Samples (latest grid of each run)</h2>{body}</section>'


def failed_jobs(run_dirs: list[Path]) -> list[dict[str, str]]:
    """Jobs of the given (multi)run dirs that failed: their dir and the error's last line
    (a failed multirun job leaves <job dir>/error.txt, see ganzoo.cli.entry)."""
    found = []
    for path in run_dirs:
        jobs = sorted(p for p in path.iterdir() if p.is_dir()) if path.is_dir() else []
        candidates = [path, *jobs]
        for job in candidates:
            record = job / "error.txt"
            if record.is_file():
                lines = [line for line in record.read_text(errors="replace").splitlines() if line]
                found.append({"job": str(job), "error": lines[-1] if lines else "(empty)"})
    return found


def _failed_section(failed: list[dict[str, str]]) -> str:
    if not failed:
        return ""
    items = "".join(
        f"<li><code>{html.escape(f['job'])}</code>: {html.escape(f['error'])} "
        "(traceback in its error.txt)</li>"
        for f in failed
    )
    return (
        f'<section id="failed"><h2 class="failed">Failed jobs ({len(failed)})</h2>'
        f"<p class=meta>a job that stopped before logging is missing below</p><ul>{items}</ul>"
        "</section>"
    )


def page(
    title: str, runs: list[RunRecord], data: dict[str, Any], plots: dict[str, Path | None]
) -> str:
    labels = [r.label for r in runs]
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="meta">{len(runs)} runs · generated {now} by python -m ganzoo.compare</p>',
        "<nav>"
        + "".join(
            f'<a href="#{a}">{html.escape(t)}</a>'
            for a, t in (
                ("final-values", "final values"),
                *((p.name, p.title) for p in PANELS),
                ("samples", "samples"),
                ("config-differences", "config differences"),
                ("provenance", "metric provenance"),
                ("run-info", "run info"),
            )
        )
        + "</nav>",
        _failed_section(data.get("failed_jobs", [])),
        '<section id="final-values"><h2>Final values</h2>'
        "<p class=meta>metrics from the last evaluation (metrics.jsonl) with the iteration it "
        "was made at, then the last logged value of every loss</p>"
        f"{final_table(runs, data)}</section>",
    ]
    parts += [_plot_section(panel, plots[panel.name]) for panel in PANELS]
    parts.append(_samples_section(runs))
    diff = data["config_differences"]
    differ = "key differs" if len(diff) == 1 else "keys differ"
    parts.append(
        '<section id="config-differences"><h2>Config differences</h2>'
        f'<p class="meta">{len(diff)} {differ} (paths inside each run dir written '
        f"as &lt;run_dir&gt;)</p>{key_table('config', labels, diff)}</section>"
    )
    parts.append(
        '<section id="provenance"><h2>Metric provenance (last evaluation)</h2>'
        f"{key_table('provenance-table', labels, provenance_values(data))}</section>"
    )
    parts.append(
        '<section id="run-info"><h2>Run info (run_info.json)</h2>'
        f"{key_table('run-info-table', labels, info_values(data))}</section>"
    )
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head>\n<body>\n"
        + "\n".join(parts)
        + "\n</body></html>\n"
    )


def compare(run_dirs: list[Path], out: Path | None = None, title: str | None = None) -> Path:
    """Write the comparison of the runs (run or multirun dirs) to `out`; returns index.html."""
    paths = expand(run_dirs)
    runs = load(paths)
    if out is None:
        parents = {p.parent for p in paths}
        out = (parents.pop() if len(parents) == 1 else Path.cwd()) / "compare"
    out.mkdir(parents=True, exist_ok=True)
    data = summary(runs)
    data["failed_jobs"] = failed_jobs(run_dirs)
    for stale in [*(f"{p.name}.png" for p in PANELS), "samples.png"]:  # from an earlier call
        (out / stale).unlink(missing_ok=True)
    plots = {p.name: plot_panel(runs, p, out / f"{p.name}.png") for p in PANELS}
    samples_strip(runs, out / "samples.png")
    (out / "summary.json").write_text(json.dumps(data, indent=2, default=str) + "\n")
    index = out / "index.html"
    index.write_text(page(title or f"ganzoo: {len(runs)} runs compared", runs, data, plots))
    return index


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        return
    try:
        dirs, options = split_args(argv, OPTIONS, "compare")
        index = compare(
            dirs, Path(options["out"]) if "out" in options else None, options.get("title")
        )
    except GanzooError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    print(f"ganzoo.compare: wrote {index}")


if __name__ == "__main__":
    main()
