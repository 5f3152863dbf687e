"""W&B without credentials: offline, never a prompt; what a run logs; sweeps share a group; resume
continues the run id. The offline run files (<run_dir>/wandb/offline-run-*/run-<id>.wandb) are
read back record by record."""

from __future__ import annotations

import csv
import json
import os
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hydra.types import RunMode
from omegaconf import OmegaConf, open_dict, read_write

from ganzoo.callbacks import run_info
from ganzoo.cli import resolvers
from tests.conftest import REPO, compose_train

SMOKE = ["debug=smoke", "trainer.enable_progress_bar=false"]


# ----- reading an offline run ------------------------------------------------------------
def wandb_records(path: Path) -> list[Any]:
    """The protobuf records of a .wandb file (a LevelDB-style log of 32 KiB blocks)."""
    from wandb.proto import wandb_internal_pb2 as pb

    raw = path.read_bytes()
    assert raw[:4] == b":W&B", path
    block, pos, pending, records = 32768, 7, b"", []
    while pos + 7 <= len(raw):
        left = block - pos % block
        if left < 7:  # block trailer
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", raw[pos : pos + 7])
        if kind == 0 and length == 0:  # zero padding to the end of the block
            pos += left
            continue
        data, pos = raw[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind == 1:  # a full record
            records.append(data)
        elif kind == 2:  # first / middle / last fragments
            pending = data
        elif kind == 3:
            pending += data
        elif kind == 4:
            records.append(pending + data)
    parsed = []
    for data in records:
        record = pb.Record()
        record.ParseFromString(data)
        parsed.append(record)
    return parsed


def offline_run(run_dir: Path) -> dict[str, Any]:
    """What the (latest) offline W&B run of a run dir recorded."""
    files = sorted((run_dir / "wandb").glob("offline-run-*/run-*.wandb"))
    assert files, f"no offline W&B run under {run_dir}"
    out: dict[str, Any] = {"config": {}, "history": [], "files": files}
    for record in wandb_records(files[-1]):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run = record.run
            out.update(
                id=run.run_id, group=run.run_group, tags=list(run.tags), name=run.display_name
            )
        elif kind == "config":
            for item in record.config.update:
                out["config"][item.key] = json.loads(item.value_json)
        elif kind == "history":
            out["history"].append(
                {
                    i.key or "/".join(i.nested_key): json.loads(i.value_json)
                    for i in record.history.item
                }
            )
    return out


def clean_env(home: Path) -> dict[str, str]:
    """No W&B settings or credentials at all, HOME an empty folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.pop("NETRC", None)
    return {**env, "HOME": str(home), "PYTHONUNBUFFERED": "1", "HYDRA_FULL_ERROR": "0"}


def train(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`python -m ganzoo.train` with stdin closed: a login prompt would fail, not wait."""
    return subprocess.run(
        [sys.executable, "-m", "ganzoo.train", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=240,
    )


# ----- offline unless configured -----------------------------------------------------------
@pytest.mark.parametrize(
    ("env", "netrc", "offline"),
    [
        ({}, None, True),
        ({"WANDB_API_KEY": "x" * 40}, None, False),
        ({"WANDB_MODE": "online"}, None, False),
        ({"WANDB_MODE": "offline", "WANDB_API_KEY": "x" * 40}, None, True),
        ({"WANDB_MODE": "disabled"}, "machine api.wandb.ai login user password k", True),
        ({}, "machine api.wandb.ai login user password k", False),
        ({}, "machine example.org login user password k", True),
    ],
)
def test_offline_unless_credentials_or_online_mode(
    env: dict[str, str], netrc: str | None, offline: bool, tmp_path: Path, monkeypatch
) -> None:
    for key in ("WANDB_MODE", "WANDB_API_KEY", "NETRC"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    if netrc is not None:
        (tmp_path / ".netrc").write_text(netrc + "\n")
    assert resolvers.wandb_offline() is offline


# ----- sweep group, tags and names ---------------------------------------------------------
def _as_job(tmp_path: Path, sweep_args: list[str], job_args: list[str], num: int, params=None):
    """Compose the train config as job `num` of a multirun launched with sweep_args."""
    sweep_dir = tmp_path / "multirun" / "2026-01-02_03-04-05"
    sweep_dir.mkdir(parents=True, exist_ok=True)
    record = {"hydra": {"overrides": {"task": sweep_args}}}
    (sweep_dir / "multirun.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(record)))
    from hydra.core.hydra_config import HydraConfig

    cfg = compose_train(sweep_dir / str(num), [*job_args, "logger=wandb"])
    with read_write(cfg.hydra), open_dict(cfg.hydra):
        cfg.hydra.mode = RunMode.MULTIRUN
        cfg.hydra.sweep.dir = str(sweep_dir)
        cfg.hydra.job.num = num
        cfg.hydra.overrides.task = job_args
        if params is not None:  # a search space in the sweeper's config (Optuna, or basic)
            cfg.hydra.sweeper.params = params
    HydraConfig.instance().set_config(cfg)
    return cfg


def test_sweep_jobs_share_the_group_and_are_tagged_with_the_varying_values(tmp_path: Path) -> None:
    sweep = ["model=spade,pix2pixhd", "optim.lr_g=1e-4,2e-4", "debug=smoke", "seed=range(2)"]
    job = ["model=pix2pixhd", "optim.lr_g=2e-4", "debug=smoke", "seed=1"]
    cfg = _as_job(tmp_path, sweep, job, num=3)
    wandb = OmegaConf.to_container(cfg.logger.wandb, resolve=True)
    assert wandb["group"] == "2026-01-02_03-04-05"
    assert wandb["tags"] == [
        "pix2pixhd",
        "synthetic",
        "model=pix2pixhd",
        "optim.lr_g=2e-4",
        "seed=1",
    ]
    assert wandb["name"] == "pix2pixhd-synthetic#3 model=pix2pixhd optim.lr_g=2e-4 seed=1"
    assert wandb["offline"] is True  # the tests run with WANDB_MODE=offline


def test_sweeper_search_space_keys_are_tags(tmp_path: Path) -> None:
    params = {"optim.lr_d": "interval(1e-4, 1e-3)", "model.lambda_feat": "choice(5, 10)"}
    job = ["debug=smoke", "optim.lr_d=0.00042", "model.lambda_feat=5"]
    cfg = _as_job(tmp_path, ["debug=smoke"], job, num=0, params=params)
    tags = OmegaConf.to_container(cfg.logger.wandb, resolve=True)["tags"]
    assert tags == ["spade", "synthetic", "optim.lr_d=0.00042", "model.lambda_feat=5"]


def test_single_run_has_no_group_and_model_data_tags(make_cfg) -> None:
    cfg = make_cfg("logger=wandb", "model=pix2pixhd")
    wandb = OmegaConf.to_container(cfg.logger.wandb, resolve=True)
    assert wandb["group"] is None
    assert wandb["tags"] == ["pix2pixhd", "synthetic"]
    assert wandb["name"] == "pix2pixhd-synthetic"


def test_run_info_records_git_state_and_machine() -> None:
    info = run_info.collect()
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=REPO)
    if head.returncode == 0:
        assert info["git_commit"] == head.stdout.strip()
        assert isinstance(info["git_dirty"], bool)
    import torch

    assert info["torch"] == torch.__version__ and info["cpu_count"] == os.cpu_count()
    assert info["gpus"] == [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    assert info["host"] and info["ganzoo"] == "0.1.0"


# ----- real runs, read back from the offline run files -------------------------------------
def test_sweep_without_credentials_runs_offline_and_logs_everything(tmp_path: Path) -> None:
    """WANDB_MODE unset, no API key, HOME empty, stdin closed: a multirun of two jobs finishes
    offline; each W&B run has the sweep's group, the model/data/varying-key tags, the resolved
    config, run_info, the losses of metrics.csv, the metric evaluation with its provenance and
    the sample grids as images; a job resumed in its run dir continues the same W&B run id."""
    home = tmp_path / "home"
    home.mkdir()
    env = clean_env(home)
    out = tmp_path / "out"
    metrics = [  # a real metric evaluation (tiny scene evaluator), cached for both jobs
        "metrics=domain", "metrics.num_samples=4", "metrics.batch_size=4",
        "metrics.scene_evaluator.train_samples=64", "metrics.scene_evaluator.steps=5",
        f"paths.cache_dir={tmp_path / 'cache'}", "hydra.sweep.subdir=${hydra.job.num}",
    ]  # fmt: skip
    proc = train(
        "-m", *SMOKE, *metrics, "optim.lr_g=1e-4,2e-4", f"paths.output_dir={out}", env=env
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "wandb login" not in proc.stdout + proc.stderr
    (sweep,) = (out / "multirun").iterdir()
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert len(jobs) == 2
    runs = [offline_run(job) for job in jobs]
    assert [r["id"] for r in runs] == [(j / "wandb_run_id").read_text().strip() for j in jobs]
    assert runs[0]["id"] != runs[1]["id"]
    for job, run, lr in zip(jobs, runs, ("0.0001", "0.0002"), strict=True):
        assert run["group"] == sweep.name
        assert run["tags"] == ["spade", "synthetic", f"optim.lr_g={lr}"]
        config = run["config"]
        assert config["optim"]["lr_g"] == float(lr) and config["steps"] == 4
        info = json.loads((job / "run_info.json").read_text())
        assert config["run_info"]["git_commit"] == info["git_commit"]
        assert config["run_info"]["host"] == info["host"] and "git_dirty" in config["run_info"]
        with (job / "metrics.csv").open() as f:
            rows = [r for r in csv.DictReader(f) if r["loss/G/total"]]
        logged = {h["iteration"]: h["loss/G/total"] for h in run["history"] if "iteration" in h}
        assert logged == pytest.approx(
            {float(r["iteration"]): float(r["loss/G/total"]) for r in rows}
        )
        images = [h for h in run["history"] if h.get("samples/_type") == "images/separated"]
        assert {h["trainer/global_step"] for h in images} >= {2, 4}
        media = list((run["files"][-1].parent / "files" / "media" / "images").glob("samples_*.png"))
        assert media
        (evaluation,) = [json.loads(s) for s in (job / "metrics.jsonl").read_text().splitlines()]
        provenance = config["metrics_provenance"]  # logged at the start: no sample counts yet
        assert (
            provenance["num_fake"] == 4 and provenance.items() <= evaluation["provenance"].items()
        )
        scores = [h for h in run["history"] if "metrics/domain_fid" in h]
        assert [h["trainer/global_step"] for h in scores] == [evaluation["iteration"]] == [4]
        assert scores[0]["metrics/domain_fid"] == pytest.approx(evaluation["metrics"]["domain_fid"])

    # resume job 0 from its iteration-2 checkpoint, as a plain run in the same run dir
    job = jobs[0]
    proc = train(
        *SMOKE,
        *metrics[:-1],
        "optim.lr_g=1e-4",
        f"hydra.run.dir={job}",
        f"ckpt_path={job / 'checkpoints' / 'iter_0000002.ckpt'}",
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    resumed = offline_run(job)
    assert len(resumed["files"]) == 2 and resumed["id"] == runs[0]["id"]
    assert [h["iteration"] for h in resumed["history"] if "iteration" in h] == [3, 4]
    info = json.loads((job / "run_info.json").read_text())
    assert len(info["sessions"]) == 2
    with (job / "metrics.csv").open() as f:
        times = [float(r["time"]) for r in csv.DictReader(f) if r["loss/G/total"]]
    # iterations 3 and 4 of the first session were cut at the resume (each iteration once);
    # wall time continues across the resume
    assert len(times) == 4 and times == sorted(times)
