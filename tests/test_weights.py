"""Weight files: resolution, checksums, one-line errors and weights-only loading."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
import torchvision

from ganzoo.core import weights
from ganzoo.core.errors import ConfigError, WeightsError
from ganzoo.core.weights import WEIGHT_FILES, WeightFile, load_state_dict, resolve
from ganzoo.losses.perceptual import VGG19Features

URL = "https://example.org/toy-0123abcd.pth"


def _write_state_dict(path: Path, state_dict: dict[str, torch.Tensor]) -> str:
    torch.save(state_dict, path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def toy(tmp_path: Path) -> tuple[dict[str, WeightFile], Path, dict[str, torch.Tensor], str]:
    """A weight file in tmp_path/weights and a registry that publishes its hash."""
    weights_dir = tmp_path / "weights"
    weights_dir.mkdir()
    state = {"layer.weight": torch.arange(6.0).view(2, 3), "layer.bias": torch.ones(2)}
    digest = _write_state_dict(weights_dir / "toy-0123abcd.pth", state)
    entry = WeightFile("toy", "toy-0123abcd.pth", digest, URL, "a toy file for tests")
    return {"toy": entry}, weights_dir, state, digest


def test_registry_entries_are_consistent() -> None:
    assert {"vgg19", "inception"} <= set(WEIGHT_FILES)
    for key, entry in WEIGHT_FILES.items():
        assert entry.key == key
        # a full SHA-256, or only the prefix the publisher embeds in the name (torch.hub's check)
        assert len(entry.sha256) in (8, 64) and int(entry.sha256, 16) >= 0
        prefix = entry.filename.rsplit("-", 1)[-1].removesuffix(".pth")
        if len(entry.sha256) == 64 and "-" not in entry.filename:  # a name without a hash
            continue  # (LPIPS's vgg.pth): the full SHA-256 is all there is to check
        assert entry.sha256.startswith(prefix)  # the hash prefix the published name embeds
        assert entry.url.endswith(entry.filename)


def test_default_path_is_checked_and_published(toy) -> None:
    registry, weights_dir, _, digest = toy
    resolved = resolve("toy", None, weights_dir, registry=registry)
    assert resolved.path == weights_dir / "toy-0123abcd.pth"
    assert resolved.sha256 == digest and resolved.published


def test_missing_default_file_is_one_line_naming_file_dir_and_checksum(toy, tmp_path) -> None:
    registry, _, _, digest = toy
    empty = tmp_path / "empty"
    with pytest.raises(WeightsError) as info:
        resolve("toy", None, empty, registry=registry)
    message = str(info.value)
    assert "\n" not in message
    for part in ("weights.toy", "toy-0123abcd.pth", str(empty), digest, URL, "GANZOO_WEIGHTS"):
        assert part in message


def test_vgg19_missing_message(tmp_path: Path) -> None:
    with pytest.raises(WeightsError) as info:
        resolve("vgg19", None, tmp_path)
    message = str(info.value)
    assert message.startswith(f"weights.vgg19: file vgg19-dcbb9e9d.pth not found in {tmp_path};")
    assert WEIGHT_FILES["vgg19"].sha256 in message and "\n" not in message


def test_wrong_checksum_at_default_path_raises(toy) -> None:
    registry, weights_dir, _, digest = toy
    other = _write_state_dict(weights_dir / "toy-0123abcd.pth", {"x": torch.zeros(3)})
    with pytest.raises(WeightsError) as info:
        resolve("toy", None, weights_dir, registry=registry)
    message = str(info.value)
    assert "\n" not in message
    assert "toy-0123abcd.pth" in message and digest in message and other in message


def test_explicit_path_is_used_as_given_and_its_hash_recorded(toy, tmp_path) -> None:
    registry, weights_dir, _, digest = toy
    mine = tmp_path / "elsewhere" / "my_finetuned.pth"
    mine.parent.mkdir()
    other = _write_state_dict(mine, {"layer.weight": torch.zeros(2, 3)})
    resolved = resolve("toy", str(mine), weights_dir, registry=registry)
    assert resolved.path == mine and resolved.sha256 == other and not resolved.published
    copy = tmp_path / "copy.pth"
    copy.write_bytes((weights_dir / "toy-0123abcd.pth").read_bytes())
    assert resolve("toy", copy, weights_dir, registry=registry).published
    with pytest.raises(WeightsError, match="weights.toy: file .*missing.pth not found"):
        resolve("toy", tmp_path / "missing.pth", weights_dir, registry=registry)


def test_prefix_checksum_is_a_prefix_check(toy) -> None:
    registry, weights_dir, _, digest = toy
    prefixed = {"toy": WeightFile("toy", "toy-0123abcd.pth", digest[:8], URL, "prefix only")}
    assert resolve("toy", None, weights_dir, registry=prefixed).published
    wrong = {"toy": WeightFile("toy", "toy-0123abcd.pth", "00000000", URL, "prefix only")}
    with pytest.raises(WeightsError, match=r"expected 00000000\.\.\. \(prefix\)"):
        resolve("toy", None, weights_dir, registry=wrong)


def test_unknown_key_lists_valid_keys(toy) -> None:
    registry, weights_dir, _, _ = toy
    with pytest.raises(ConfigError, match="valid keys: toy"):
        resolve("vgg16", None, weights_dir, registry=registry)
    with pytest.raises(ConfigError, match="valid keys: inception, inception_v3, lpips_vgg, vgg16"):
        resolve("resnet50", None, weights_dir)


def test_hash_is_memoised_until_the_file_changes(toy, monkeypatch) -> None:
    registry, weights_dir, _, digest = toy
    path = weights_dir / "toy-0123abcd.pth"
    assert weights.sha256_of(path) == digest
    opened: list[str] = []
    real_open = open

    def counting_open(file, *args, **kwargs):  # type: ignore[no-untyped-def]
        opened.append(str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr("builtins.open", counting_open)
    assert weights.sha256_of(path) == digest and not opened  # served from the memo
    monkeypatch.undo()
    changed = _write_state_dict(path, {"y": torch.ones(4)})
    assert weights.sha256_of(path) == changed


def test_load_state_dict_round_trips_weights_only(toy) -> None:
    registry, weights_dir, state, _ = toy
    loaded = load_state_dict(resolve("toy", None, weights_dir, registry=registry))
    assert loaded.keys() == state.keys()
    for name, value in state.items():
        torch.testing.assert_close(loaded[name], value)


def test_load_state_dict_refuses_pickled_objects(toy, tmp_path) -> None:
    registry, weights_dir, _, _ = toy
    pickled = tmp_path / "model.pth"
    torch.save(torch.nn.Linear(2, 2), pickled)  # a whole module: needs arbitrary unpickling
    with pytest.raises(WeightsError, match="cannot be loaded as weights only"):
        load_state_dict(resolve("toy", pickled, weights_dir, registry=registry))
    not_a_dict = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], not_a_dict)
    with pytest.raises(WeightsError, match="not a state dict"):
        load_state_dict(resolve("toy", not_a_dict, weights_dir, registry=registry))


def test_vgg19_file_end_to_end(tmp_path: Path) -> None:
    """A torchvision-layout VGG19 file (random weights, features only) through resolve + load."""
    torch.manual_seed(0)
    layers = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["E"])
    state = {f"features.{k}": v for k, v in layers.state_dict().items()}
    state["classifier.6.bias"] = torch.zeros(1000)  # ignored by from_state_dict
    digest = _write_state_dict(tmp_path / "vgg19-dcbb9e9d.pth", state)
    entry = WEIGHT_FILES["vgg19"]
    registry = {"vgg19": WeightFile("vgg19", entry.filename, digest, entry.url, "test copy")}
    resolved = resolve("vgg19", None, tmp_path, registry=registry)
    features = VGG19Features.from_state_dict(load_state_dict(resolved))
    loaded = features.state_dict()
    torch.testing.assert_close(loaded["slice1.0.weight"], layers[0].weight)
    torch.testing.assert_close(loaded["slice5.28.bias"], layers[28].bias)
