"""A cache of tensors keyed by a manifest, so that stale results are never reused.

An entry lives in ``<root>/<kind>/<key>/`` with ``payload.pt`` (a dict of tensors, loaded with
``weights_only=True``) and ``manifest.json``. The key is the SHA-256 of the manifest's canonical
JSON, so anything the manifest names (dataset, split, resolution, sample count, resize policy,
feature-extractor weight hash, a fingerprint of the data, the cache format) selects another entry
when it changes. On load the stored manifest must equal the requested one and the payload must
hash to the SHA-256 recorded at write time; otherwise the entry is a miss and is rewritten.
Files are written to temporary names and renamed, so a crash never leaves a half-written entry.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ganzoo.core.weights import sha256_of

CACHE_VERSION = 1  # bump when what an entry means changes


def _canonical(manifest: Mapping[str, Any]) -> str:
    return json.dumps({"cache_version": CACHE_VERSION, **manifest}, sort_keys=True)


def manifest_key(manifest: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the manifest's canonical JSON."""
    return hashlib.sha256(_canonical(manifest).encode()).hexdigest()


def fingerprint(*tensors: Tensor) -> str:
    """SHA-256 of tensors' bytes (e.g. the first images of a split): detects changed data."""
    digest = hashlib.sha256()
    for t in tensors:
        digest.update(str(tuple(t.shape)).encode() + str(t.dtype).encode())
        digest.update(t.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _replace_atomic(path: Path, write: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write(tmp)
    os.replace(tmp, path)


class ManifestCache:
    """Entries of one kind (e.g. "reference", "scene_evaluator") under ``root / kind``."""

    def __init__(self, root: str | Path, kind: str) -> None:
        self.root = Path(root).expanduser() / kind
        self.last_miss: str | None = None  # why the last `load` missed (for messages and tests)

    def directory(self, manifest: Mapping[str, Any]) -> Path:
        return self.root / manifest_key(manifest)[:24]

    def load(self, manifest: Mapping[str, Any]) -> dict[str, Tensor] | None:
        """The payload stored for exactly this manifest, or None (reason in `last_miss`)."""
        folder = self.directory(manifest)
        meta_path, payload_path = folder / "manifest.json", folder / "payload.pt"
        if not (meta_path.is_file() and payload_path.is_file()):
            self.last_miss = "no entry"
            return None
        try:
            stored = json.loads(meta_path.read_text())
        except (OSError, json.JSONDecodeError):
            self.last_miss = "unreadable manifest"
            return None
        if stored.get("manifest") != json.loads(_canonical(manifest)):
            self.last_miss = "manifest differs"
            return None
        if stored.get("payload_sha256") != sha256_of(payload_path):
            self.last_miss = "payload changed since it was written"
            return None
        payload = torch.load(payload_path, map_location="cpu", weights_only=True)
        self.last_miss = None
        return dict(payload)

    def save(self, manifest: Mapping[str, Any], payload: Mapping[str, Tensor]) -> Path:
        """Write the payload and its manifest (atomically); returns the entry's folder."""
        folder = self.directory(manifest)
        folder.mkdir(parents=True, exist_ok=True)
        payload_path = folder / "payload.pt"
        _replace_atomic(payload_path, lambda tmp: torch.save(dict(payload), tmp))
        meta = {
            "manifest": json.loads(_canonical(manifest)),
            "payload_sha256": sha256_of(payload_path),
        }
        text = json.dumps(meta, indent=1, sort_keys=True)
        _replace_atomic(folder / "manifest.json", lambda tmp: tmp.write_text(text))
        return folder
