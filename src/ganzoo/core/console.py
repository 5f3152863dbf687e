"""What a person at the terminal sees: progress bars of long steps and notes said once.

Both write to stderr (stdout stays for the JSON that `ganzoo.evaluate` and `ganzoo.info`
print) and only in the first process of a multi-process run (`RANK` / `LOCAL_RANK` unset or 0).

- `progress(total, desc, unit)`: a tqdm bar with the count, rate and time left, for the steps
  that take minutes outside the training loop (generating images for metrics, extracting
  features, training an evaluator). It leaves no bar behind once done.
- `note(message)`: prints ``ganzoo: note: <message>`` the first time a message is given in
  this process, and never again (e.g. "FID from 3 samples is not meaningful").
"""

from __future__ import annotations

import os
import sys
from typing import Any

from tqdm import tqdm

_SAID: set[str] = set()


def first_process() -> bool:
    """True outside multi-process runs and in the process of rank 0."""
    return all(os.environ.get(k, "0") == "0" for k in ("RANK", "LOCAL_RANK"))


def progress(total: int, desc: str, unit: str = "it") -> Any:
    """A progress bar of `total` units (call .update(n), then .close(), or use `with`)."""
    return tqdm(
        total=total,
        desc=f"ganzoo: {desc}",
        unit=unit,
        file=sys.stderr,
        leave=False,
        dynamic_ncols=True,
        mininterval=0.5,
        disable=not first_process(),
    )


def note(message: str, key: str | None = None) -> None:
    """Say `message` once per process (on stderr, rank 0 only); with `key`, once per key (for
    messages that name the first of many files)."""
    key = message if key is None else key
    if key in _SAID:
        return
    _SAID.add(key)
    if first_process():
        print(f"ganzoo: note: {message}", file=sys.stderr, flush=True)


def forget_notes() -> None:
    """Tests: let every note be said again."""
    _SAID.clear()
