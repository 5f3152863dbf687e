"""`python -m ganzoo.compare`: tables, plots and sample grids of several runs as one offline HTML
page; checked on fabricated run dirs, then on a real multirun rendered in headless Chromium."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf
from PIL import Image

from ganzoo.cli import runs as runs_mod
from ganzoo.cli.runs import PANELS, SECTIONS
from ganzoo.cli.wandb_report import build, definition
from ganzoo.compare import compare
from ganzoo.core.errors import ConfigError, DataError
from tests.conftest import run_cli

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars",
]  # fmt: skip
NO_CHROMIUM = "chromium not installed (apt-get install chromium; .ci/run installs it)"
LOSSES = ("loss/D/total", "loss/G/total")


# ----- fabricated run dirs ---------------------------------------------------------------
def make_run(path: Path, lr: float, seed: int, with_metrics: bool = True) -> dict:
    """A run dir as ganzoo.train writes it: 6 iterations, crashed after 4 and resumed from the
    checkpoint at 3 (rows 4 logged twice: the later one counts), metric evaluations at 3 and 6
    (the one at 6 recorded twice), sample grids at 3 and 6, run_info.json."""
    rng = np.random.default_rng(seed)
    path.mkdir(parents=True)
    config = {
        "seed": seed,
        "steps": 6,
        "optim": {"lr_g": lr, "lr_d": 4e-4},
        "paths": {"run_dir": str(path), "output_dir": str(path.parent)},
        "callbacks": {"samples": {"dirpath": f"{path}/samples"}},
        "logger": {"wandb": {"id": f"id{seed}", "name": f"n{seed}", "project": "ganzoo"}},
    }
    (path / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(config)))
    (path / ".hydra").mkdir()  # the job's command-line overrides, as Hydra records them
    overrides = ["debug=smoke", f"optim.lr_g={lr}", f"seed={seed}"]
    (path / ".hydra" / "overrides.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(overrides)))
    rows, t = [], 0.0
    for it in (1, 2, 3, 4, 4, 5, 6):  # 4 again after the resume
        t += 1.5
        rows.append({"epoch": 0, "iteration": float(it), "step": it - 1, "time": round(t, 3),
                     **{k: float(rng.normal()) for k in LOSSES}})  # fmt: skip
    evals = []
    for it in (3, 6, 6) if with_metrics else ():
        evals.append({"iteration": it, "images_seen": it * 2,
                      "metrics": {"fid": float(rng.uniform(10, 90)), "kid": float(rng.uniform())},
                      "provenance": {"split": "val", "num_fake": 8, "num_real": 8,
                                     "inception": {"weights_sha256": f"{seed:064d}"}}})  # fmt: skip
        rows.append({"step": it, "time": round(t, 3), "metrics/fid": evals[-1]["metrics"]["fid"],
                     "metrics/kid": evals[-1]["metrics"]["kid"]})  # fmt: skip
    keys = sorted({k for r in rows for k in r})
    with (path / "metrics.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    (path / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in evals))
    (path / "samples").mkdir()
    for it in (3, 6):
        pixels = rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(path / "samples" / f"iter_{it:07d}.png")
    info = {"git_commit": "abc123", "git_dirty": seed == 1, "host": f"host{seed}", "gpus": []}
    (path / "run_info.json").write_text(json.dumps(info))
    finals = {k: [r for r in rows if k in r][-1][k] for k in LOSSES}
    return {"final": finals, "metrics": evals[-1]["metrics"] if evals else {}, "wall": t}


@pytest.fixture
def sweep(tmp_path: Path) -> tuple[Path, list[dict]]:
    """A multirun dir of jobs 0, 2 and 10 (job order is numeric, not alphabetical)."""
    root = tmp_path / "multirun" / "2026-01-01_00-00-00"
    made = [make_run(root / f"{n}-debug:smoke+optim.lr_g:{lr}", lr, seed)
            for n, lr, seed in ((10, 3e-4, 2), (0, 1e-4, 0), (2, 2e-4, 1))]  # fmt: skip
    (root / "multirun.yaml").write_text("hydra: {}\n")
    return root, [made[1], made[2], made[0]]


def test_tables_hold_final_losses_last_evaluation_and_config_differences(
    sweep: tuple[Path, list[dict]], tmp_path: Path
) -> None:
    root, made = sweep
    index = compare([root], out=tmp_path / "cmp")
    data = json.loads((tmp_path / "cmp" / "summary.json").read_text())
    assert [r["label"] for r in data["runs"]] == [  # debug=smoke, common to all, left out
        "#0 optim.lr_g=0.0001 seed=0",
        "#2 optim.lr_g=0.0002 seed=1",
        "#10 optim.lr_g=0.0003 seed=2",
    ]
    for run, expected in zip(data["runs"], made, strict=True):
        assert run["losses"] == pytest.approx(expected["final"])  # the resumed run's rows win
        assert run["metrics"] == pytest.approx(expected["metrics"])  # the later record at 6
        assert run["metrics_iteration"] == 6 and run["images_seen"] == 12
        assert run["iteration"] == 6 and run["wall_time"] == pytest.approx(expected["wall"])
        assert run["provenance"]["num_fake"] == 8
    # paths inside each run dir and W&B ids/names are not differences; seed and lr are
    assert data["config_differences"] == {
        "optim.lr_g": [1e-4, 2e-4, 3e-4],
        "seed": [0, 1, 2],
    }
    page = index.read_text()
    assert "<script" not in page and "http://" not in page and "https://" not in page
    assert page.count('src="data:image/png;base64,') == len(PANELS) + 3  # plots + 3 grids
    for panel in PANELS:
        image = np.asarray(Image.open(tmp_path / "cmp" / f"{panel.name}.png").convert("L"))
        assert image.std() > 10, panel.name
    strip = Image.open(tmp_path / "cmp" / "samples.png")
    assert strip.width == 3 * 60 + 2 * 12 and strip.height > 40


def test_series_per_iteration_take_the_resumed_rows_and_wall_time(
    sweep: tuple[Path, list[dict]],
) -> None:
    root, _ = sweep
    (run,) = runs_mod.load([next(root.glob("0-*"))])
    points = run.series["loss/G/total"]
    assert [p.iteration for p in points] == [1, 2, 3, 4, 5, 6]
    assert [p.time for p in points] == pytest.approx([1.5, 3.0, 4.5, 7.5, 9.0, 10.5])
    fid = run.series["metrics/fid"]
    assert [p.iteration for p in fid] == [3, 6]
    assert fid[0].time == pytest.approx(10.5)  # from the metric row of metrics.csv


def test_runs_without_optional_files_and_two_plain_run_dirs(tmp_path: Path) -> None:
    a, b = tmp_path / "a" / "spade-synthetic", tmp_path / "b" / "spade-synthetic"
    make_run(a, 1e-4, 0, with_metrics=False)
    make_run(b, 1e-4, 0, with_metrics=False)
    (b / "run_info.json").unlink()
    shutil.rmtree(b / "samples")
    index = compare([a, b], out=tmp_path / "cmp")
    data = json.loads((index.parent / "summary.json").read_text())
    assert [r["label"] for r in data["runs"]] == ["a/spade-synthetic", "b/spade-synthetic"]
    assert data["config_differences"] == {"paths.output_dir": [str(a.parent), str(b.parent)]}
    assert data["runs"][1]["run_info"] is None and data["runs"][1]["samples"] is None
    assert not (index.parent / "metrics_vs_iteration.png").exists()
    assert "no metric evaluation" in index.read_text()


def test_errors_are_one_line(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match="neither a run dir"):
        compare([empty])
    run = tmp_path / "run"
    make_run(run, 1e-4, 0)
    with (run / "metrics.jsonl").open("a") as f:
        f.write('{"iteration": 7}\n')
    with pytest.raises(DataError, match=r"metrics.jsonl line 4 is not a metric evaluation"):
        compare([run])
    proc = run_cli("ganzoo.compare", str(tmp_path / "nope"))
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: compare: {tmp_path / 'nope'} is not a directory"
    proc = run_cli("ganzoo.compare", str(run), "outdir=x")
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "error: compare: unknown option outdir=; valid options: out, title"
    )


def test_wandb_report_definition_has_the_page_panels(sweep: tuple[Path, list[dict]]) -> None:
    root, _ = sweep
    records = runs_mod.load(runs_mod.expand([root]))
    defn = definition(records, entity=None, project="ganzoo", group=root.name)
    assert [s["name"] for s in defn["sections"]] == list(SECTIONS)
    assert defn["filters"] == f"Group = '{root.name}'"
    sections = {s["name"]: s["panels"] for s in defn["sections"]}
    assert [p["y"] for p in sections["losses_vs_iteration"]] == list(LOSSES)
    assert {p["x"] for p in sections["losses_vs_iteration"]} == {"iteration"}
    assert [p["y"] for p in sections["metrics_vs_time"]] == ["metrics/fid", "metrics/kid"]
    assert {p["x"] for p in sections["metrics_vs_time"]} == {"RelativeTime(Process)"}
    assert [p["summary"] for p in sections["final values"]] == [
        *LOSSES,
        "metrics/fid",
        "metrics/kid",
    ]
    assert sections["samples"] == [{"type": "media", "keys": ["samples"]}]
    pytest.importorskip(
        "wandb_workspaces", reason="building the W&B objects needs wandb-workspaces"
    )
    report, workspace = build(defn)  # built offline; nothing is sent
    grids = [b for b in report.blocks if type(b).__name__ == "PanelGrid"]
    assert len(grids) == len(SECTIONS)
    lines = grids[SECTIONS.index("losses_vs_time")].panels
    assert [(p.x, p.y) for p in lines] == [("RelativeTime(Process)", [k]) for k in LOSSES]
    assert [s.name for s in workspace.sections][1] == PANELS[0].title


def test_wandb_report_cli_writes_the_definition_offline(sweep, tmp_path: Path) -> None:
    root, _ = sweep
    out = tmp_path / "report.json"
    with pytest.raises(ConfigError, match="no W&B group and no wandb_run_id"):
        definition(runs_mod.load(runs_mod.expand([root])), None, "ganzoo", None)
    proc = run_cli("ganzoo.cli.wandb_report", str(root), f"out={out}", "group=g1")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text())["filters"] == "Group = 'g1'"
    proc = run_cli("ganzoo.cli.wandb_report", str(root), f"out={out}", "group=g1", "push=true")
    assert proc.returncode == 2  # the tests run offline: no credentials, no attempt to send
    assert proc.stderr.strip().startswith("error: wandb_report push=true needs W&B credentials")


# ----- a real multirun in headless Chromium ----------------------------------------------
class Cells(HTMLParser):
    """Text of every table cell with data-run / data-key attributes, by (run, key)."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: dict[tuple[str, str], str] = {}
        self._open: tuple[str, str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag in ("td", "th") and "data-run" in a and "data-key" in a:
            self._open = (str(a["data-run"]), str(a["data-key"]))
            self.cells[self._open] = ""

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self.cells[self._open] += data

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th"):
            self._open = None


def _chromium(*args: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp / 'chromium-profile'}", *args],  # type: ignore[list-item]
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def _final_losses(run_dir: Path) -> dict[str, float]:
    final: dict[str, float] = {}
    with (run_dir / "metrics.csv").open() as f:
        for row in csv.DictReader(f):
            final.update({k: float(v) for k, v in row.items() if k.startswith("loss/") and v})
    return final


@pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)
def test_real_multirun_renders_in_chromium_with_the_right_numbers(tmp_path: Path) -> None:
    recipe = ["train_samples=64", "steps=10", "batch_size=32", "lr=0.003", "seed=0"]
    proc = run_cli(
        "ganzoo.train", "-m", "debug=smoke", "logger=csv", "trainer.enable_progress_bar=false",
        "optim.lr_g=1e-4,3e-4", "metrics=domain", "metrics.num_samples=4",
        "hydra.sweep.subdir=${hydra.job.num}",  # all these overrides would make too long a name
        "metrics.batch_size=4", "metrics.every_n_iterations=2",
        *(f"metrics.scene_evaluator.{r}" for r in recipe),
        f"paths.cache_dir={tmp_path / 'cache'}", f"paths.output_dir={tmp_path / 'out'}",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (sweep_dir,) = (tmp_path / "out" / "multirun").iterdir()
    jobs = sorted(p for p in sweep_dir.iterdir() if p.is_dir())
    proc = run_cli("ganzoo.compare", str(sweep_dir), "title=two learning rates")
    assert proc.returncode == 0, proc.stderr[-3000:]
    index = sweep_dir / "compare" / "index.html"
    assert proc.stdout.strip() == f"ganzoo.compare: wrote {index}"

    shot = tmp_path / "shot.png"
    proc = _chromium(
        f"--screenshot={shot}", "--window-size=1280,2400", index.as_uri(), tmp=tmp_path
    )
    assert shot.is_file(), proc.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert (pixels.min(axis=2) < 200).mean() > 0.02  # not a blank page
    blue = np.abs(pixels - np.array([31, 119, 180])).sum(axis=2) < 30  # run #0's plot lines
    assert blue.sum() > 50, "the embedded plots did not render"

    dom = _chromium("--dump-dom", index.as_uri(), tmp=tmp_path).stdout
    parser = Cells()
    parser.feed(dom)
    cells = parser.cells
    labels = ["#0 optim.lr_g=0.0001", "#1 optim.lr_g=0.0003"]
    for job, label in zip(jobs, labels, strict=True):
        assert cells.get((label, "run")) == label, sorted({r for r, _ in cells})
        finals = _final_losses(job)
        assert {k for (r, k) in cells if r == label and k.startswith("loss/")} == set(finals)
        for key, value in finals.items():
            assert float(cells[(label, key)]) == pytest.approx(value, rel=1e-5, abs=1e-9), key
        last = [json.loads(s) for s in (job / "metrics.jsonl").read_text().splitlines()][-1]
        assert last["iteration"] == 4 and int(cells[(label, "metrics_iteration")]) == 4
        for name, value in last["metrics"].items():
            assert float(cells[(label, f"metrics/{name}")]) == pytest.approx(value, rel=1e-5)
        assert cells[(label, "num_fake")] == "4"  # provenance table
        commit = json.loads((job / "run_info.json").read_text())["git_commit"]
        assert cells[(label, "git_commit")] == commit
    assert cells[(labels[0], "optim.lr_g")] == "0.0001"  # the config differences
    assert cells[(labels[1], "optim.lr_g")] == "0.0003"
    assert "two learning rates" in dom
