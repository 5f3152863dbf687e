"""The converter framework (ganzoo.convert, ganzoo.official.assemble) and fine-tuning with
init_from, on a release simulated from a ganzoo StarGAN's own weights (the per-format readers
are tested against golden files of the official code in tests/test_official_<model>.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ganzoo import convert, official
from ganzoo.cli.build import init_from, load_run
from ganzoo.core.errors import ConfigError
from ganzoo.official.base import Converted, ConvertError, load_torch
from tests.conftest import compose_train, run_cli

pytestmark = pytest.mark.usefixtures("one_thread")
SMOKE = ["model=stargan", "debug=smoke"]


def _cfg(tmp_path: Path, source: Path, *extra: str):
    return compose_train(tmp_path / "run", [*SMOKE, f"source={source}", *extra], "convert")


@pytest.fixture
def release(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, torch.Tensor]:
    """A 'release' (G and D weights of another seed) served by a reader for model=stargan."""
    torch.manual_seed(123)
    donor = convert.build_task(compose_train(tmp_path / "donor", SMOKE), perceptual=lambda: None)
    weights = {
        k: v.clone() for k, v in donor.state_dict().items() if not k.startswith("generator_ema.")
    }
    weights.pop("iteration"), weights.pop("images_seen")
    file = tmp_path / "200000-G.ckpt"
    torch.save(weights, file)

    def read(source: Path, task) -> Converted:
        return Converted(state=dict(load_torch(source)), sources=[source])

    monkeypatch.setattr(official, "reader", lambda model: read)
    return weights


def test_convert_writes_a_checkpoint_that_samples_and_records_its_source(
    tmp_path: Path, release: dict[str, torch.Tensor]
) -> None:
    source = tmp_path / "200000-G.ckpt"
    task, record = convert.convert_task(_cfg(tmp_path, source))
    for key, value in release.items():
        assert torch.equal(task.state_dict()[key], value), key
    g, ema = task.generator.state_dict(), task.generator_ema.state_dict()
    assert all(torch.equal(g[k], ema[k]) for k in g)  # no EMA in the release: EMA = G
    assert int(task.iteration) == 0
    assert record["files"][0]["sha256"] == convert.official.sha256(source)
    assert any("no EMA generator" in n for n in record["notes"])

    out = convert.save(task, record, tmp_path / "conv" / "checkpoints" / "converted.ckpt")
    loaded, run_cfg = load_run(out, "cpu")
    assert run_cfg.model._target_.endswith("StarGANTask") and "source" not in run_cfg
    x, c = torch.randn(2, 3, 32, 32), torch.rand(2, 6).round()
    with torch.no_grad():
        assert torch.equal(loaded.generator_ema(x, c), task.generator(x, c))

    info = run_cli("ganzoo.info", f"ckpt={out}")
    assert info.returncode == 0, info.stderr
    described = json.loads(info.stdout)
    assert described["source"]["files"][0]["name"] == "200000-G.ckpt"
    assert described["iteration"] == 0


@pytest.mark.parametrize(
    "change, message",
    [
        (
            lambda w: w.pop("generator.main.0.weight"),
            "keys missing from the release: generator.main.0.weight",
        ),
        (lambda w: w.update({"generator.extra": torch.zeros(1)}), "does not have: generator.extra"),
        (
            lambda w: w.update({"discriminator.main.0.bias": torch.zeros(3)}),
            "the source has shape [3]",
        ),
    ],
)
def test_mismatched_release_is_one_line(tmp_path, release, change, message) -> None:
    change(release)
    torch.save(release, tmp_path / "200000-G.ckpt")
    with pytest.raises(ConvertError, match=__import__("re").escape(message)) as err:
        convert.convert_task(_cfg(tmp_path, tmp_path / "200000-G.ckpt"))
    assert "\n" not in str(err.value)


def test_absent_prefix_keeps_init_and_is_recorded(tmp_path, monkeypatch, release) -> None:
    only_g = {k: v for k, v in release.items() if k.startswith("generator.")}
    monkeypatch.setattr(
        official,
        "reader",
        lambda m: lambda s, t: Converted(only_g, [tmp_path / "200000-G.ckpt"], ("discriminator.",)),
    )
    task, record = convert.convert_task(_cfg(tmp_path, tmp_path / "200000-G.ckpt"))
    assert record["absent"] == ["discriminator."]
    assert torch.equal(
        task.generator.state_dict()["main.0.weight"], release["generator.main.0.weight"]
    )


def test_unsafe_or_truncated_files_are_refused(tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self):
            return (Path.touch, (tmp_path / "pwned",))

    torch.save({"w": Evil()}, tmp_path / "evil.pth")
    with pytest.raises(ConvertError, match="refused"):
        load_torch(tmp_path / "evil.pth")
    assert not (tmp_path / "pwned").exists()
    good = tmp_path / "good.pth"
    torch.save({"w": torch.zeros(1000)}, good)
    (tmp_path / "cut.pth").write_bytes(good.read_bytes()[:300])
    with pytest.raises(ConvertError, match="unreadable or truncated"):
        load_torch(tmp_path / "cut.pth")


def test_init_from_loads_weights_only_and_checks_the_model(tmp_path: Path, release) -> None:
    task, record = convert.convert_task(_cfg(tmp_path, tmp_path / "200000-G.ckpt"))
    task.iteration.fill_(7)  # a run's counter is not carried over
    ckpt = convert.save(task, record, tmp_path / "c" / "converted.ckpt")
    fresh = convert.build_task(compose_train(tmp_path / "r2", SMOKE), perceptual=lambda: None)
    init_from(fresh, ckpt)
    assert int(fresh.iteration) == 0
    assert torch.equal(
        fresh.discriminator.state_dict()["main.0.weight"], release["discriminator.main.0.weight"]
    )
    other = convert.build_task(compose_train(tmp_path / "r3", ["model=biggan", "debug=smoke"]))
    with pytest.raises(ConfigError, match="holds a ganzoo.tasks.stargan.StarGANTask run"):
        init_from(other, ckpt)

    # through the CLI: trains from the converted weights, counting from iteration 0
    run = run_cli(
        "ganzoo.train", *SMOKE, "steps=2", f"init_from={ckpt}", f"hydra.run.dir={tmp_path / 'ft'}"
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "initialised from" in run.stdout and "converted from 200000-G.ckpt" in run.stdout
    last = torch.load(tmp_path / "ft" / "checkpoints" / "last.ckpt", weights_only=True)
    assert int(last["state_dict"]["iteration"]) == 2
