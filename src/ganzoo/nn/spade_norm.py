"""Spatially-adaptive denormalization, SPADE (Park et al., CVPR 2019, Sec. 3, Fig. 2).

Follows NVlabs/SPADE models/networks/normalization.py (class SPADE): a parameter-free
normalization of x, then a per-pixel scale and shift predicted from the label map by a
small conv net, out = norm(x) * (1 + gamma) + beta.
"""

from __future__ import annotations

from typing import Literal

import torch.nn.functional as F
from torch import Tensor, nn


class SPADE(nn.Module):
    """SPADE normalization layer.

    The official parameter-free norm is SyncBatchNorm (norm_G 'spectralspadesyncbatch3x3');
    this uses nn.BatchNorm2d, which multi-GPU training converts with
    nn.SyncBatchNorm.convert_sync_batchnorm. No spectral norm on these convs (as official).
    """

    def __init__(
        self,
        norm_nc: int,  # channels of the activations x being normalized (= output channels)
        label_nc: int,  # channels of the semantic map (semantic_nc; ADE20K 151)
        hidden: int = 128,  # channels of the shared embedding (official: hard-coded 128)
        kernel_size: int = 3,  # kernel of the three convs (the '3x3' in norm_G)
        param_free_norm: Literal["batch", "instance"] = "batch",  # official: sync batch norm
    ) -> None:
        super().__init__()
        if param_free_norm == "batch":
            self.param_free_norm: nn.Module = nn.BatchNorm2d(norm_nc, affine=False)
        elif param_free_norm == "instance":
            self.param_free_norm = nn.InstanceNorm2d(norm_nc, affine=False)
        else:
            raise ValueError(
                f"param_free_norm must be one of 'batch', 'instance'; got {param_free_norm!r}"
            )
        pad = kernel_size // 2
        self.mlp_shared = nn.Sequential(
            nn.Conv2d(label_nc, hidden, kernel_size, padding=pad),
            nn.ReLU(),
        )
        self.mlp_gamma = nn.Conv2d(hidden, norm_nc, kernel_size, padding=pad)
        self.mlp_beta = nn.Conv2d(hidden, norm_nc, kernel_size, padding=pad)

    def forward(self, x: Tensor, segmap: Tensor) -> Tensor:
        """x: (N, norm_nc, h, w); segmap: (N, label_nc, H, W) float -> (N, norm_nc, h, w)."""
        normalized = self.param_free_norm(x)
        # Nearest resize of the label map to x's spatial size: (N, label_nc, h, w).
        segmap = F.interpolate(segmap, size=x.shape[2:], mode="nearest")
        actv = self.mlp_shared(segmap)  # (N, hidden, h, w)
        gamma = self.mlp_gamma(actv)  # (N, norm_nc, h, w)
        beta = self.mlp_beta(actv)  # (N, norm_nc, h, w)
        return normalized * (1 + gamma) + beta
