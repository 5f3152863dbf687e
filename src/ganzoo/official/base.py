"""What every official-format reader shares: the `Converted` record, safe loading, checks.

A reader (`ganzoo.official.<model>.convert(source, task) -> Converted`) maps the names of an
official release onto the keys of the ganzoo task's state dict. It reads files only through
`load_torch` (``torch.load(weights_only=True)``) or `ganzoo.core.safe_pickle` (StyleGAN2-ADA
network pickles), so that opening a release never runs code from it. It raises `ConvertError`
with one line naming what differs (class count, resolution, vocabulary) as soon as it knows;
key-level mismatches are caught once, for every reader, by `ganzoo.official.assemble`.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ganzoo.core.errors import GanzooError
from ganzoo.core.weights import sha256_of

__all__ = [
    "ConvertError",
    "Converted",
    "check_shape",
    "find_file",
    "load_state",
    "load_torch",
    "net_files",
    "optional_network",
    "prefixed",
    "require",
    "sha256",
]


class ConvertError(GanzooError):
    """An official file cannot become this ganzoo model (one line naming what differs)."""


@dataclass
class Converted:
    """A release mapped onto a ganzoo task's state dict."""

    state: dict[str, Tensor]  # task.state_dict() keys -> tensors ("generator.…", "discriminator.…")
    sources: list[Path]  # every file read; their names and SHA-256 go into the checkpoint
    absent: tuple[str, ...] = ()  # state prefixes the release does not hold (kept at their init)
    notes: list[str] = field(default_factory=list)  # what a user should know, printed and stored


def sha256(path: Path) -> str:
    """The file's full SHA-256 (lowercase hex)."""
    return sha256_of(path)


def require(condition: bool, message: str) -> None:
    """Raise ConvertError(message) unless condition holds."""
    if not condition:
        raise ConvertError(message)


def check_shape(name: str, source: Iterable[int], ours: Iterable[int]) -> None:
    """One line naming a tensor whose shape in the release differs from ganzoo's."""
    s, o = tuple(source), tuple(ours)
    require(s == o, f"{name}: the source has shape {list(s)}, this ganzoo model {list(o)}")


def find_file(source: Path, names: Iterable[str], what: str) -> Path:
    """`source` itself when it is a file, else the first of `names` inside the folder."""
    if source.is_file():
        return source
    require(source.is_dir(), f"source={source} does not exist")
    options = list(names)
    for name in options:
        if (source / name).is_file():
            return source / name
    raise ConvertError(f"source={source}: no {what} file ({' or '.join(options)}) in the folder")


def net_files(source: Path, code: str) -> dict[str, Path]:
    """{'G': path, 'D': path?, 'E': path?} of a pix2pixHD-style checkpoint folder (SPADE and
    pix2pixHD save `<epoch>_net_<G|D|E>.pth`; `latest` when present, else the last epoch) or
    of one `<epoch>_net_G.pth` file with its `_D` / `_E` beside it. `code` names the
    repository in the error."""
    if source.is_file():
        m = re.match(r"^(.*)_net_([GDE])\.pth$", source.name)
        require(
            m is not None and m.group(2) == "G",
            f"source={source}: expected an official {code} <epoch>_net_G.pth (or its folder)",
        )
        assert m is not None
        prefix, folder = m.group(1), source.parent
    else:
        require(source.is_dir(), f"source={source} does not exist")
        folder = source
        candidates = sorted(p.name[: -len("_net_G.pth")] for p in folder.glob("*_net_G.pth"))
        require(bool(candidates), f"source={source}: no <epoch>_net_G.pth in the folder")
        prefix = "latest" if "latest" in candidates else candidates[-1]
    files = {"G": folder / f"{prefix}_net_G.pth"}
    for net in ("D", "E"):
        if (folder / f"{prefix}_net_{net}.pth").is_file():
            files[net] = folder / f"{prefix}_net_{net}.pth"
    return files


def optional_network(
    converted: Converted,  # filled in place: state (mapped), or absent + a note
    files: dict[str, Path],  # from `net_files`
    net: str,  # "D" or "E"
    prefix: str,  # the task attribute, e.g. "discriminator."
    read: Callable[[Path], dict[str, Tensor]],  # file -> the network's ganzoo state dict
    what: str,  # for the note, e.g. "the VAE encoder"
) -> None:
    """A network a pix2pixHD-style release may leave out (`_net_D`, `_net_E`): mapped when its
    file is there, else named absent (kept at its initialisation) with a note."""
    if net in files:
        converted.state.update(prefixed(prefix, read(files[net])))
        converted.sources.append(files[net])
    else:
        converted.absent += (prefix,)
        converted.notes.append(f"the release has no _net_{net}.pth: {what} keeps its init")


def load_torch(path: Path) -> Any:
    """A .pth / .ckpt file loaded on the CPU with weights_only=True (nothing in it runs)."""
    require(path.is_file(), f"source file {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else "refused"
        # weights_only refuses any global that is not a tensor or plain container
        hint = next((ln.strip() for ln in str(err).splitlines() if "GLOBAL" in ln), first)
        raise ConvertError(
            f"{path}: not a plain weight file, refused to load it ({hint})"
        ) from None
    except (EOFError, RuntimeError, zipfile.BadZipFile, ValueError) as err:
        line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConvertError(f"{path}: unreadable or truncated ({line})") from None


def load_state(path: Path, what: str) -> dict[str, Tensor]:
    """A file holding one plain state dict of tensors (`what` names the expected file)."""
    state = load_torch(path)
    require(
        isinstance(state, dict) and all(isinstance(v, Tensor) for v in state.values()),
        f"{path}: not a state_dict of tensors ({what})",
    )
    return dict(state)


def prefixed(prefix: str, state: dict[str, Tensor]) -> dict[str, Tensor]:
    """{prefix + key: tensor}: a network's state dict under its task attribute name."""
    return {prefix + k: v for k, v in state.items()}
