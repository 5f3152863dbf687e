"""The typed Batch every dataset yields, and the field contract between data and tasks.

A dataset adapter returns one sample as a plain dict whose keys are a subset of
`FIELDS` (tensors without the batch dimension); `collate` stacks a list of such
samples into a `Batch`. Each adapter declares the fields it provides and each task
the fields it needs; `check_fields` fails at start-up with one line naming both.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields, replace

import torch
from torch import Tensor

from ganzoo.core.errors import FieldMismatchError

# name -> (dtype, shape of one sample without the batch dimension, meaning)
FIELDS: dict[str, tuple[torch.dtype, str, str]] = {
    "image": (torch.float32, "3,H,W", "RGB in [-1, 1]"),
    "label_map": (torch.int64, "H,W", "semantic class per pixel"),
    "instance_map": (torch.int64, "H,W", "object instance id per pixel (0 = background)"),
    "class_id": (torch.int64, "", "image-level class"),
    "attributes": (torch.float32, "A", "binary attributes as 0/1"),
    "caption_tokens": (torch.int64, "T", "word ids, 0 = padding"),
    "caption_lengths": (torch.int64, "", "number of real tokens"),
    "domain_mask": (torch.float32, "K", "one-hot dataset indicator (StarGAN mask vector)"),
}


@dataclass
class Batch:
    """A minibatch. Shapes: image (N, 3, H, W) float in [-1, 1]; label_map and
    instance_map (N, H, W) long; class_id (N,) long; attributes (N, A) float 0/1;
    caption_tokens (N, T) long with caption_lengths (N,); domain_mask (N, K)."""

    image: Tensor
    label_map: Tensor | None = None
    instance_map: Tensor | None = None
    class_id: Tensor | None = None
    attributes: Tensor | None = None
    caption_tokens: Tensor | None = None
    caption_lengths: Tensor | None = None
    domain_mask: Tensor | None = None

    @property
    def size(self) -> int:
        return int(self.image.shape[0])

    def provided(self) -> tuple[str, ...]:
        return tuple(f.name for f in fields(self) if getattr(self, f.name) is not None)

    def to(self, device: torch.device | str) -> Batch:
        return replace(self, **{k: getattr(self, k).to(device) for k in self.provided()})

    def __getitem__(self, index: slice | Tensor) -> Batch:
        """Rows of the batch, e.g. `batch[:4]`."""
        return replace(self, **{k: getattr(self, k)[index] for k in self.provided()})

    def split(self, n: int) -> list[Batch]:
        """n consecutive micro-batches of equal size (gradient accumulation); size % n == 0."""
        if n < 1 or self.size % n:
            raise ValueError(f"cannot split a batch of {self.size} into {n} equal parts")
        m = self.size // n
        return [self[i * m : (i + 1) * m] for i in range(n)]


def collate(samples: Sequence[dict[str, Tensor]]) -> Batch:
    """Stack per-sample dicts (keys from FIELDS) into a Batch."""
    keys = samples[0].keys()
    unknown = set(keys) - set(FIELDS)
    if unknown:
        raise KeyError(f"unknown batch fields {sorted(unknown)}; valid: {sorted(FIELDS)}")
    return Batch(**{k: torch.stack([s[k] for s in samples]) for k in keys})


def check_fields(model: str, needs: Iterable[str], data: str, provides: Iterable[str]) -> None:
    """Fail with one line when `model` needs a field that `data` does not provide."""
    provides = tuple(provides)
    missing = [f for f in needs if f not in provides]
    if missing:
        raise FieldMismatchError(
            f"model={model} needs {', '.join(missing)}; data={data} provides {', '.join(provides)}"
        )
