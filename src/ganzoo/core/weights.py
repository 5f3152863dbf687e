"""Pretrained weight files: where they are, what they must hash to, how to load them.

Every pretrained file ganzoo can use has a key (the config key under ``weights.``, e.g.
``weights.vgg19=PATH``) and an entry in `WEIGHT_FILES`: the file's published name, its
published SHA-256 and where a person can download it. Nothing is ever downloaded here.

`resolve` turns (key, the path the user gave or None, the weights directory) into a
`ResolvedWeights`: the file to load and its actual SHA-256, to be recorded with every number
it produces.

- No path given: the file is ``weights_dir / filename``. Missing, or present with a hash that
  differs from the published one, is a one-line `WeightsError` that says which file, where to
  put it, where to get it and the expected checksum.
- A path given: it is used as given. Its hash is computed and recorded; a hash that differs
  from the published one is the user's choice and is reported as ``published=False``.

Published checksums: a registry entry may hold the full 64-digit SHA-256 or only a prefix.
torchvision and pytorch-fid embed the first 8 hex digits of the file's SHA-256 in its name and
``torch.hub`` checks only that prefix; an entry that knows only the prefix is checked the same
way (the file's hash must start with it).

Config binds at the edge: this module reads neither Hydra nor environment variables; the
caller passes ``weights_dir`` (conf/paths computes it from GANZOO_WEIGHTS).
"""

from __future__ import annotations

import functools
import hashlib
import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ganzoo.core.console import note
from ganzoo.core.errors import ConfigError, WeightsError

_CHUNK_BYTES = 1 << 20  # hash files 1 MiB at a time


@dataclass(frozen=True)
class WeightFile:
    """One published pretrained file.

    Attributes:
        key: config key under ``weights.`` (e.g. "vgg19").
        filename: the file's published name; the default path is ``weights_dir / filename``.
        sha256: the published SHA-256 in lowercase hex, or only its leading digits when that is
            all that is published (then the check is a prefix check, as ``torch.hub``'s).
        url: where a person can download it. Documentation only: never fetched.
        description: what the file is, who uses it and where the checksum comes from.
    """

    key: str
    filename: str
    sha256: str
    url: str
    description: str

    @property
    def is_prefix(self) -> bool:
        """True when only a prefix of the SHA-256 is known (checked like ``torch.hub``)."""
        return len(self.sha256) < 64

    def matches(self, digest: str) -> bool:
        """Whether a file's full SHA-256 ``digest`` agrees with the published checksum."""
        return digest.lower().startswith(self.sha256.lower())

    def expected(self) -> str:
        """The published checksum as an error message states it."""
        return f"{self.sha256}... (prefix)" if self.is_prefix else self.sha256


WEIGHT_FILES: dict[str, WeightFile] = {
    "vgg19": WeightFile(
        key="vgg19",
        filename="vgg19-dcbb9e9d.pth",
        sha256="dcbb9e9dad569fff7a846263a77324fc34978fea2bfb039c012d710e1776ae44",
        url="https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
        description=(
            "torchvision VGG19 ImageNet weights (VGG19_Weights.IMAGENET1K_V1, 574,673,361 bytes), "
            "the file SPADE and pix2pixHD load through torchvision.models.vgg19(pretrained=True) "
            "for the perceptual loss. torchvision publishes the SHA-256 prefix dcbb9e9d in the "
            "name; the full digest is the one several independent projects record for this file."
        ),
    ),
    "inception": WeightFile(
        key="inception",
        filename="pt_inception-2015-12-05-6726825d.pth",
        sha256="6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2",
        url=(
            "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
            "pt_inception-2015-12-05-6726825d.pth"
        ),
        description=(
            "FID Inception-v3: the TensorFlow 2015-12-05 graph ported to PyTorch by pytorch-fid "
            "(95,628,359 bytes); torch-fidelity ships the same file as "
            "weights-inception-2015-12-05-6726825d.pth. The name embeds the SHA-256 prefix "
            "6726825d; the full digest is the one several independent projects record for it."
        ),
    ),
    "inception_v3": WeightFile(
        key="inception_v3",
        filename="inception_v3_google-0cc3c7bd.pth",
        sha256="0cc3c7bd",
        url="https://download.pytorch.org/models/inception_v3_google-0cc3c7bd.pth",
        description=(
            "torchvision Inception-v3 ImageNet weights (Inception_V3_Weights.IMAGENET1K_V1), the "
            "backbone of AttnGAN's DAMSM image encoder (the official code loads torchvision's "
            "inception_v3_google file). torchvision publishes the SHA-256 prefix 0cc3c7bd in "
            "the name, checked as torch.hub does."
        ),
    ),
    "vgg16": WeightFile(
        key="vgg16",
        filename="vgg16-397923af.pth",
        sha256="397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0",
        url="https://download.pytorch.org/models/vgg16-397923af.pth",
        description=(
            "torchvision VGG16 ImageNet weights (VGG16_Weights.IMAGENET1K_V1, 553,433,881 bytes), "
            "the backbone of LPIPS (EditGAN's perceptual distance). torchvision publishes the "
            "SHA-256 prefix 397923af in the name; the full digest is the one several independent "
            "projects record for this file."
        ),
    ),
    "lpips_vgg": WeightFile(
        key="lpips_vgg",
        filename="vgg.pth",
        sha256="a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868",
        url="https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/vgg.pth",
        description=(
            "LPIPS v0.1 linear layers for VGG16 (7,289 bytes): lpips/weights/v0.1/vgg.pth of "
            "richzhang/PerceptualSimilarity and of the lpips package, the file nv-tlabs/"
            "editGAN_release ships in lpips/weights/v0.1/ (its SHA-256 checked there)."
        ),
    ),
}


@dataclass(frozen=True)
class ResolvedWeights:
    """A weight file chosen for a run, with the hash to record next to its results.

    Attributes:
        key: the config key (``weights.<key>``).
        path: the file that will be loaded.
        sha256: the file's actual full SHA-256 (lowercase hex).
        published: True when ``sha256`` agrees with the registry's published checksum.
    """

    key: str
    path: Path
    sha256: str
    published: bool


@functools.lru_cache(maxsize=64)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    """SHA-256 of a file, memoised on (path, size, mtime) so a file is read once per change."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_of(path: str | Path) -> str:
    """The full SHA-256 (lowercase hex) of the file at ``path``, read in 1 MiB chunks."""
    resolved = Path(path).resolve()
    stat = resolved.stat()
    return _sha256_cached(str(resolved), stat.st_size, stat.st_mtime_ns)


def _entry(key: str, registry: Mapping[str, WeightFile]) -> WeightFile:
    """The registry entry for ``key``; an unknown key lists the valid ones."""
    if key not in registry:
        valid = ", ".join(sorted(registry))
        raise ConfigError(f"weights.{key}: unknown weight file key {key!r}; valid keys: {valid}")
    return registry[key]


def resolve(
    key: str,
    path: str | Path | None,
    weights_dir: str | Path,
    *,
    registry: Mapping[str, WeightFile] = WEIGHT_FILES,
) -> ResolvedWeights:
    """Find the file for ``weights.<key>`` and check it; never downloads.

    Args:
        key: a key of ``registry`` (e.g. "vgg19").
        path: the path the user gave (``weights.<key>=PATH``), or None for the default,
            ``weights_dir / filename``.
        weights_dir: the directory of published files (``paths.weights_dir``).
        registry: the published files; `WEIGHT_FILES` unless a test supplies its own.

    Returns:
        The file, its actual SHA-256 and whether that is the published checksum.

    Raises:
        ConfigError: ``key`` is not in the registry (the message lists the valid keys).
        WeightsError: the file is missing, or (default path only) fails its checksum.
    """
    entry = _entry(key, registry)
    if path is not None:
        given = Path(path).expanduser()
        if not given.is_file():
            raise WeightsError(
                f"weights.{key}: file {given} not found (given as weights.{key}={path}); "
                f"pass the path of {entry.filename} (download it from {entry.url}); "
                f"expected sha256 {entry.expected()}"
            )
        digest = sha256_of(given)
        if not entry.matches(digest):
            note(
                f"weights.{key}={path} is not the published {entry.filename} (sha256 "
                f"{digest[:12]}..., published {entry.expected()[:12]}...): used as given and its "
                "hash recorded; numbers made with it are not comparable with published ones"
            )
        return ResolvedWeights(key, given, digest, published=entry.matches(digest))

    directory = Path(weights_dir).expanduser()
    default = directory / entry.filename
    if not default.is_file():
        raise WeightsError(
            f"weights.{key}: file {entry.filename} not found in {directory}; "
            f"download it from {entry.url}, put it there "
            f"(or pass weights.{key}=PATH, or set GANZOO_WEIGHTS); "
            f"expected sha256 {entry.expected()}"
        )
    digest = sha256_of(default)
    if not entry.matches(digest):
        raise WeightsError(
            f"weights.{key}: file {default} has sha256 {digest}, expected {entry.expected()}; "
            f"it is corrupt or another version: download it again from {entry.url} "
            f"(or pass weights.{key}=PATH to use this file anyway)"
        )
    return ResolvedWeights(key, default, digest, published=True)


def load_state_dict(resolved: ResolvedWeights) -> dict[str, Tensor]:
    """Load a resolved file as a state dict on the CPU, with ``weights_only=True``.

    Raises:
        WeightsError: the file is not a plain state dict (a mapping of names to tensors) that
            ``torch.load(..., weights_only=True)`` accepts.
    """
    where = f"weights.{resolved.key}: file {resolved.path}"
    try:
        loaded = torch.load(resolved.path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:  # objects other than tensors: refused
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error)
        raise WeightsError(f"{where} cannot be loaded as weights only: {first_line}") from error
    except Exception as error:  # the weights-only unpickler meets garbage with any error
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise WeightsError(
            f"{where} is not a PyTorch weights file ({type(error).__name__}"
            f"{': ' + first_line if first_line else ''}); pass the published file or a state "
            "dict saved with torch.save"
        ) from error
    if not isinstance(loaded, Mapping) or not all(
        isinstance(name, str) and isinstance(value, Tensor) for name, value in loaded.items()
    ):
        raise WeightsError(f"{where} is not a state dict (a mapping of names to tensors)")
    return dict(loaded)
