"""trainer=ddp: two CPU processes (gloo) take the same steps as one process with the same
global batch, inside a Hydra multirun, without stray run dirs (ganzoo.cli.strategy)."""

from __future__ import annotations

from pathlib import Path

import torch

from tests.conftest import run_cli


def _state(run: Path) -> dict[str, torch.Tensor]:
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    return ckpt["state_dict"]


def test_ddp_run_equals_single_process_run_in_one_multirun(tmp_path: Path) -> None:
    # pix2pixHD: instance norm only, so a batch split over processes changes no statistics.
    # Adam's eps is raised so that parameters whose true gradient is 0 (conv biases followed by
    # InstanceNorm) are not driven by rounding noise, which Adam would scale up to full steps.
    result = run_cli(
        "ganzoo.train",
        "-m",
        "model=pix2pixhd",
        "debug=smoke",
        "trainer=default,ddp",
        "trainer.accelerator=cpu",
        "data.global_batch_size=4",
        "optim.eps=1e-4",
        "logger=csv",
        f"paths.root_dir={tmp_path}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    sweeps = list((tmp_path / "outputs" / "multirun").iterdir())
    assert len(sweeps) == 1
    jobs = sorted(p for p in sweeps[0].iterdir() if p.is_dir())
    # two jobs, each its own dir; no job started a multirun of its own, nothing outside
    assert [p.name.split("-")[0] for p in jobs] == ["0", "1"], jobs
    assert sorted(p.name for p in (tmp_path / "outputs").iterdir()) == ["multirun"]
    single, ddp = jobs
    assert single.name.endswith("trainer:default") and ddp.name.endswith("trainer:ddp")
    assert (ddp / "entry_rank1.log").is_file()  # rank 1 wrote into the job's own dir
    a, b = _state(single), _state(ddp)
    assert int(a["iteration"]) == int(b["iteration"]) == 4
    assert int(a["images_seen"]) == int(b["images_seen"]) == 16
    assert a.keys() == b.keys()
    worst = max(float((a[k] - b[k]).abs().max()) for k in a if a[k].is_floating_point())
    # each rank stepping on its own half (no averaging) differs by ~1e-4 after 4 Adam steps
    assert worst < 2e-5, worst
