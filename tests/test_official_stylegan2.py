"""StyleGAN2-ADA network pickles (issue 13): the golden pickle of the official code converts
to ganzoo's task and gives the official outputs; a malicious pickle is refused without running
anything; a pickle of another configuration is a one-line error naming what differs.

Fixtures: tests/golden/stylegan2/ (experiments/parity/stylegan2.py; see its README.md)."""

from __future__ import annotations

import copy
import os
import pickle
import random
import sys
import types
from pathlib import Path
from typing import Any

import pytest
import torch

from ganzoo import official
from ganzoo.cli.build import build_task
from ganzoo.core.safe_pickle import PersistentObject, UnsafePickleError, load_safe_pickle
from ganzoo.official import stylegan2 as reader
from ganzoo.official.base import ConvertError
from tests.conftest import REPO, close

pytestmark = pytest.mark.usefixtures("one_thread")  # exact on one CPU thread (summation order)

GOLDEN = REPO / "tests" / "golden" / "stylegan2"
PKL = GOLDEN / "network-snapshot.pkl"
# The golden configuration (experiments/parity/stylegan2.py) as ganzoo overrides.
OVERRIDES = (
    "model=stylegan2",
    "data=synthetic",
    "data.resolution=32",
    "model.conditional=true",  # synthetic scenes: 12 classes, as the golden c_dim
    "model.augment=none",  # the golden run has no augmentation (model_data sets diffaugment)
    "model.generator.z_dim=16",
    "model.generator.w_dim=16",
    "model.generator.mapping_layers=2",
    "model.generator.channel_base=128",
    "model.generator.channel_max=16",
    "model.generator.conv_clamp=null",
)


def converted(make_cfg: Any, *extra: str, source: Path = PKL) -> Any:
    """The ganzoo task holding the converted pickle (as `python -m ganzoo.convert` builds it)."""
    task = build_task(make_cfg(*OVERRIDES, *extra))
    task.load_state_dict(official.assemble(task, reader.convert(source, task)))
    return task


def test_converted_pickle_gives_the_official_outputs(make_cfg: Any) -> None:
    task = converted(make_cfg)
    ref = torch.load(GOLDEN / "forward.pt", weights_only=True)
    z, c = ref["z"], ref["c"]
    nets = {"G": task.generator, "G_ema": task.generator_ema}
    with torch.no_grad():
        for name, image in ref["images"].items():
            net_name, mode, setting = name.split("/")
            psi = float(setting.split("_")[0][3:])
            cutoff = int(setting.split("cutoff")[1]) if "cutoff" in setting else None
            net = copy.deepcopy(nets[net_name]).train(mode == "train")
            ours = net(z, c, truncation_psi=psi, truncation_cutoff=cutoff, noise_mode="const")
            assert close(ours, image), name
        d = task.discriminator
        assert close(d(ref["images"]["G_ema/eval/psi1"], c), ref["D/fake_logits"])
        assert close(d(ref["real"], c), ref["D/real_logits"])
    # G and G_ema differ in the golden pickle: the EMA is not a copy of G
    assert not torch.equal(task.generator.mapping.fc0.weight, task.generator_ema.mapping.fc0.weight)
    assert task.generator_ema.mapping.w_avg.abs().sum() > 0  # the truncation centre carried


def test_the_pickle_is_read_as_records_without_its_code() -> None:
    data = load_safe_pickle(PKL)
    assert set(data) == {"training_set_kwargs", "G", "D", "G_ema"}
    g = data["G"]
    assert isinstance(g, PersistentObject) and g.class_name == "Generator"
    assert g.init_kwargs["img_resolution"] == 32 and len(g.source_sha256) == 64
    official_packages = {"training", "dnnlib", "torch_utils"}
    assert not official_packages & {m.split(".")[0] for m in sys.modules}  # nothing imported


class _Payload:
    def __init__(self, func: Any, args: tuple[Any, ...]) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.func, self.args)


@pytest.mark.parametrize("kind", ["os.system", "builtins.eval", "inside a network"])
def test_a_malicious_pickle_is_refused_and_runs_nothing(tmp_path: Path, kind: str) -> None:
    marker = tmp_path / "pwned"
    if kind == "os.system":
        payload: Any = _Payload(os.system, (f"touch {marker}",))
    else:
        code = f"open({str(marker)!r}, 'w').write('x')"
        payload = _Payload(eval, (code,))
    obj: Any = {"G": payload}
    if kind == "inside a network":  # after tensors and plain state, deep inside
        obj = {"G": {"w": torch.nn.Parameter(torch.ones(3))}, "D": [1, {"hook": payload}]}
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(obj))
    with pytest.raises(UnsafePickleError) as err:
        load_safe_pickle(path)
    message = str(err.value)
    assert "\n" not in message and "refused global" in message
    assert ("posix.system" in message or "os.system" in message) or "builtins.eval" in message
    assert not marker.exists()


def test_embedded_source_code_is_never_executed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A persistent object whose embedded module source would write a file: only recorded."""
    marker = tmp_path / "ran"
    persistence = types.ModuleType("torch_utils.persistence")

    def _reconstruct_persistent_obj(meta: Any) -> Any:  # pickled by name only
        raise AssertionError("never called")

    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj  # type: ignore[attr-defined]
    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    monkeypatch.setitem(sys.modules, "torch_utils", types.ModuleType("torch_utils"))
    monkeypatch.setitem(sys.modules, "torch_utils.persistence", persistence)
    src = f"open({str(marker)!r}, 'w').write('x')\nclass Generator: pass\n"
    meta = {"type": "class", "version": 4, "module_src": src, "class_name": "Generator",
            "state": {"_parameters": {}, "_init_kwargs": {"img_resolution": 32}}}  # fmt: skip
    raw = pickle.dumps({"G": _Payload(_reconstruct_persistent_obj, (meta,))})
    monkeypatch.delitem(sys.modules, "torch_utils.persistence")
    monkeypatch.delitem(sys.modules, "torch_utils")
    path = tmp_path / "evil-src.pkl"
    path.write_bytes(raw)
    g = load_safe_pickle(path)["G"]
    assert isinstance(g, PersistentObject) and g.init_kwargs == {"img_resolution": 32}
    assert not marker.exists()


def test_truncated_or_foreign_files_are_one_line_errors(tmp_path: Path) -> None:
    cut = tmp_path / "cut.pkl"
    cut.write_bytes(PKL.read_bytes()[:5000])
    with pytest.raises(UnsafePickleError, match="unreadable or truncated") as err:
        load_safe_pickle(cut)
    assert "\n" not in str(err.value)
    raw, rng = PKL.read_bytes(), random.Random(0)
    for _ in range(25):  # corrupted bytes: still a one-line error (or a readable pickle)
        corrupt = bytearray(raw)
        for _ in range(rng.randrange(1, 10)):
            corrupt[rng.randrange(len(raw))] = rng.randrange(256)
        cut.write_bytes(bytes(corrupt))
        try:
            load_safe_pickle(cut)
        except UnsafePickleError as e:
            assert "\n" not in str(e)
    tf_like = tmp_path / "tf.pkl"
    tf_like.write_bytes(b"\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00\x8c\x14dnnlib.tflib.network"
                        b"\x94\x8c\x07Network\x94\x93\x94.")  # fmt: skip
    with pytest.raises(UnsafePickleError, match="refused global dnnlib.tflib.network.Network"):
        load_safe_pickle(tf_like)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.resolution=64", "source resolution 32; data.resolution=64"),
        ("model.conditional=false", "source has 12 classes (c_dim); model.conditional=false"),
        ("model.generator.z_dim=32", "source z_dim 16; model.generator.z_dim=32"),
        ("model.generator.mapping_layers=8", "source mapping layers 2; model.generator.mapping"),
        ("model.generator.conv_clamp=256", "source conv_clamp null; model.generator.conv_clamp"),
        ("model.discriminator.mbstd_group_size=2", "source mbstd_group_size 4; model.discrim"),
    ],
)
def test_another_configuration_is_refused_in_one_line(
    make_cfg: Any, override: str, message: str
) -> None:
    with pytest.raises(ConvertError) as err:
        converted(make_cfg, override)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_ada_probability_and_w_avg_are_carried(
    make_cfg: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = load_safe_pickle(PKL)
    pipe = {"_buffers": {"p": torch.tensor(0.25)}, "_init_kwargs": {"xflip": 1}}
    data["augment_pipe"] = PersistentObject("AugmentPipe", pipe, "0" * 64)
    monkeypatch.setattr(reader, "load_safe_pickle", lambda path: data)
    task = converted(make_cfg, "model.augment=ada")
    assert float(task.augment_p) == 0.25
    w_avg = data["G_ema"].state_dict()["mapping.w_avg"]
    assert torch.equal(task.generator_ema.mapping.w_avg, w_avg)
