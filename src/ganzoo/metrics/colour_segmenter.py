"""A tiny colour-and-texture segmenter: label agreement without a pretrained network.

pix2pixHD (Wang et al. 2018, Sec. 4) and SPADE (Park et al. 2019, Sec. 4) score a
label-to-image model by segmenting its outputs with a pretrained network and comparing
with the input label map (pixel accuracy, mIoU). No pretrained network can be
downloaded here, so for the synthetic scenes this module fits the simplest model that
works: one Gaussian per class over seven per-pixel features (RGB, the 3x3 mean RGB and
the 3x3 local standard deviation), i.e. quadratic discriminant analysis, with each
class covariance shrunk towards the pooled one. It sees colour and texture only, not
position, so it cannot agree with a label map by chance of layout; object shapes of
the same colours are confused with each other, background regions are not.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

NUM_FEATURES = 7


def pixel_features(images: Tensor) -> Tensor:
    """Per-pixel features (N, H, W, 7): RGB, 3x3 mean RGB, 3x3 std summed over channels.

    images: (N, 3, H, W) in [-1, 1].
    """
    assert images.ndim == 4 and images.shape[1] == 3, f"expected (N, 3, H, W), got {images.shape}"
    x = images.float()
    mean = F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)  # (N, 3, H, W)
    square = F.avg_pool2d(x * x, 3, stride=1, padding=1, count_include_pad=False)
    std = (square - mean * mean).clamp_min(0.0).sum(1, keepdim=True).sqrt()  # (N, 1, H, W)
    return torch.cat([x, mean, std], dim=1).permute(0, 2, 3, 1)  # (N, H, W, 7)


class ColourSegmenter:
    """Gaussian class-conditional pixel classifier; `fit` then `predict`."""

    def __init__(
        self,
        shrinkage: float = 50.0,  # pixels' worth of pooled covariance mixed into each class's
        ridge: float = 1e-4,  # added to covariance diagonals for stability
    ) -> None:
        self.shrinkage = shrinkage
        self.ridge = ridge
        self.means: Tensor | None = None  # (L, D)
        self.whiten: Tensor | None = None  # (L, D, D) inverse Cholesky factors
        self.log_norm: Tensor | None = None  # (L,) log prior - 0.5 log det; -inf if absent

    def fit(self, images: Tensor, label_maps: Tensor, num_labels: int) -> ColourSegmenter:
        """Fit per-class statistics. images (N, 3, H, W) in [-1, 1]; label_maps (N, H, W)
        long in [0, num_labels)."""
        assert images.shape[0] == label_maps.shape[0] and images.shape[2:] == label_maps.shape[1:]
        feats = pixel_features(images).reshape(-1, NUM_FEATURES).double()  # (P, D)
        labels = label_maps.reshape(-1).to(feats.device)  # (P,)
        counts = torch.bincount(labels, minlength=num_labels).double()  # (L,)
        sums = torch.zeros(num_labels, NUM_FEATURES, dtype=torch.float64, device=feats.device)
        sums.index_add_(0, labels, feats)
        means = sums / counts.clamp_min(1.0)[:, None]  # (L, D)
        scatter = torch.zeros(num_labels, NUM_FEATURES, NUM_FEATURES, dtype=torch.float64)
        for c in torch.nonzero(counts).flatten().tolist():
            centred = feats[labels == c] - means[c]
            scatter[c] = centred.T @ centred  # (D, D)
        pooled = scatter.sum(0) / counts.sum()
        cov = (scatter + self.shrinkage * pooled) / (counts + self.shrinkage)[:, None, None]
        cov = cov + self.ridge * torch.eye(NUM_FEATURES, dtype=torch.float64)
        chol = torch.linalg.cholesky(cov)  # (L, D, D)
        eye = torch.eye(NUM_FEATURES, dtype=torch.float64).expand_as(chol)
        self.whiten = torch.linalg.solve_triangular(chol, eye, upper=False).float()
        log_det = 2.0 * torch.diagonal(chol, dim1=1, dim2=2).log().sum(1)  # (L,)
        log_prior = (counts / counts.sum()).log()  # -inf for classes never seen
        self.log_norm = (log_prior - 0.5 * log_det).float()
        self.means = means.float()
        return self

    @torch.no_grad()
    def predict(self, images: Tensor, chunk: int = 16) -> Tensor:
        """Most likely label per pixel (N, H, W) long for images (N, 3, H, W) in [-1, 1]."""
        if self.means is None or self.whiten is None or self.log_norm is None:
            raise RuntimeError("ColourSegmenter.predict called before fit")
        means, whiten = self.means.to(images.device), self.whiten.to(images.device)
        log_norm = self.log_norm.to(images.device)
        out = []
        for part in images.split(chunk):
            feats = pixel_features(part)  # (n, H, W, D)
            score = torch.empty(*feats.shape[:3], len(means), device=feats.device)
            for c in range(len(means)):  # one class at a time keeps memory at (n, H, W, D)
                z = (feats - means[c]) @ whiten[c].T  # whitened features, (n, H, W, D)
                score[..., c] = log_norm[c] - 0.5 * z.square().sum(-1)
            out.append(score.argmax(-1))  # (n, H, W)
        return torch.cat(out)


def pixel_accuracy(pred: Tensor, target: Tensor) -> float:
    """Fraction of pixels where pred (N, H, W) equals target (N, H, W)."""
    assert pred.shape == target.shape, f"{pred.shape} != {target.shape}"
    return float((pred == target.to(pred.device)).float().mean())


def confusion_matrix(pred: Tensor, target: Tensor, num_labels: int) -> Tensor:
    """Counts (L, L) long, rows = target class, columns = predicted class."""
    assert pred.shape == target.shape, f"{pred.shape} != {target.shape}"
    flat = target.reshape(-1).to(pred.device) * num_labels + pred.reshape(-1)
    return torch.bincount(flat, minlength=num_labels * num_labels).reshape(num_labels, -1)


def mean_iou(pred: Tensor, target: Tensor, num_labels: int) -> float:
    """Mean intersection over union over classes present in pred or target (N, H, W)."""
    confusion = confusion_matrix(pred, target, num_labels).double()
    intersection = confusion.diagonal()
    union = confusion.sum(0) + confusion.sum(1) - intersection
    present = union > 0
    return float((intersection[present] / union[present]).mean()) if present.any() else 0.0
