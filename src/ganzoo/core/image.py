"""Image I/O: label-map colours and sample grids written as PNG (atomically)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor


def palette(n: int) -> Tensor:
    """A fixed, distinct colour per label id: (n, 3) uint8 (the PASCAL VOC bit pattern)."""
    ids = torch.arange(n)
    colours = torch.zeros(n, 3, dtype=torch.int64)
    for shift in range(8):
        for c in range(3):
            bit = (ids >> (3 * shift + c)) & 1
            colours[:, c] |= bit << (7 - shift)
    return colours.to(torch.uint8)


def colorize_labels(label_map: Tensor, num_labels: int) -> Tensor:
    """(N, H, W) long -> (N, 3, H, W) float in [-1, 1] with palette colours."""
    colours = palette(max(num_labels, int(label_map.max()) + 1)).to(label_map.device)
    rgb = colours[label_map].permute(0, 3, 1, 2).float()
    return rgb / 127.5 - 1.0


def to_uint8(images: Tensor) -> np.ndarray:
    """(N, 3, H, W) float in [-1, 1] -> (N, H, W, 3) uint8."""
    x = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).numpy()


def grid(columns: Sequence[Tensor], pad: int = 2) -> np.ndarray:
    """Rows = samples, one column per tensor (each (N, 3, H, W) in [-1, 1]); white padding."""
    n, _, h, w = columns[0].shape
    out = np.full((n * (h + pad) + pad, len(columns) * (w + pad) + pad, 3), 255, np.uint8)
    for j, col in enumerate(columns):
        imgs = to_uint8(col)
        for i in range(n):
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            out[y : y + h, x : x + w] = imgs[i]
    return out


def save_png(array: np.ndarray, path: str | Path) -> Path:
    """Write an (H, W, 3) uint8 array as PNG via a temporary file and rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    Image.fromarray(array).save(tmp, format="PNG")
    os.replace(tmp, path)
    return path


def with_headers(array: np.ndarray, headers: Sequence[str], pad: int = 2) -> np.ndarray:
    """A `grid` of len(headers) equal columns with a white strip on top naming each column."""
    height = 12
    columns = len(headers)
    width = (array.shape[1] - pad) // columns - pad  # one cell of `grid`
    strip = Image.new("RGB", (array.shape[1], height), "white")
    draw = ImageDraw.Draw(strip)
    font = ImageFont.load_default()
    for j, text in enumerate(headers):
        label = str(text)
        while label and draw.textlength(label, font=font) > width:  # clip to the cell
            label = label[:-1]
        draw.text((pad + j * (width + pad), 1), label, fill="black", font=font)
    return np.concatenate([np.asarray(strip), array], axis=0)
