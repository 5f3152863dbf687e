"""Label-map inputs shared by the label-to-image models (SPADE, pix2pixHD)."""

from __future__ import annotations

import torch
from torch import Tensor


def one_hot_labels(label_map: Tensor, num_channels: int) -> Tensor:
    """(N, H, W) long in [0, num_channels) -> (N, num_channels, H, W) float one-hot."""
    if not label_map.is_meta and (label_map.min() < 0 or label_map.max() >= num_channels):
        raise ValueError(
            f"label ids must lie in [0, {num_channels}); got [{int(label_map.min())}, "
            f"{int(label_map.max())}] (check data.label_nc and data.contain_dontcare_label)"
        )
    n, h, w = label_map.shape
    out = torch.zeros(n, num_channels, h, w, device=label_map.device)
    return out.scatter_(1, label_map.unsqueeze(1), 1.0)


def instance_edges(instance_map: Tensor) -> Tensor:
    """Boundary map of an instance map: 1 where any 4-neighbour has another id.

    (N, H, W) -> (N, 1, H, W) float; pix2pixHD get_edges / SPADE get_edges.
    """
    t = instance_map
    edge = torch.zeros_like(t, dtype=torch.bool)
    horizontal = t[:, :, 1:] != t[:, :, :-1]
    vertical = t[:, 1:, :] != t[:, :-1, :]
    edge[:, :, 1:] |= horizontal
    edge[:, :, :-1] |= horizontal
    edge[:, 1:, :] |= vertical
    edge[:, :-1, :] |= vertical
    return edge.unsqueeze(1).float()
