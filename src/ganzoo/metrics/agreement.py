"""Agreement of generated images with their inputs: mIoU, pixel accuracy, class accuracy.

pix2pixHD (Wang et al. 2018, Sec. 4.1) and SPADE (Park et al. 2019, Sec. 4) segment the images a
label-to-image model makes from the validation label maps with a pretrained segmenter and score
the prediction against the input map. As the segmenters' own evaluation code (e.g. fyu/drn
segment.py, CSAILVision semantic-segmentation-pytorch eval.py), one confusion matrix is
accumulated over the whole set; IoU per class = TP / (TP + FP + FN), mIoU = mean over the classes
that occur in the target or the prediction; pixel accuracy = TP / labelled pixels. Target pixels
outside [0, num_labels) (e.g. 255, "ignore") are not counted.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric


def confusion_matrix(pred: Tensor, target: Tensor, num_labels: int) -> Tensor:
    """Counts (L, L) int64, rows = target class, columns = predicted class.

    pred: (N, H, W) predicted classes in [0, L); target: (N, H, W) label maps, pixels outside
    [0, L) (e.g. 255 "ignore") are not counted.
    """
    if pred.shape != target.shape:
        raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    pred = pred.long().reshape(-1)
    target = target.to(pred.device).long().reshape(-1)
    if pred.numel() and (int(pred.min()) < 0 or int(pred.max()) >= num_labels):
        raise ValueError(f"predicted classes must lie in [0, {num_labels})")
    keep = (target >= 0) & (target < num_labels)
    flat = target[keep] * num_labels + pred[keep]
    return torch.bincount(flat, minlength=num_labels * num_labels).reshape(num_labels, num_labels)


def scores_from_confusion(confusion: Tensor) -> dict[str, float]:
    """mIoU (classes present in target or prediction) and pixel accuracy of a confusion matrix."""
    c = confusion.double()
    tp = c.diagonal()
    union = c.sum(0) + c.sum(1) - tp
    present = union > 0
    miou = float((tp[present] / union[present]).mean()) if bool(present.any()) else 0.0
    total = c.sum()
    accuracy = float(tp.sum() / total) if total > 0 else 0.0
    return {"miou": miou, "pixel_accuracy": accuracy}


class SegmentationAgreement(Metric):
    """Accumulated confusion matrix of segmented generated images against their label maps."""

    full_state_update = False
    is_differentiable = False
    higher_is_better = True
    confusion: Tensor

    def __init__(self, num_labels: int, **kwargs: Any) -> None:  # classes of the segmenter
        super().__init__(**kwargs)
        self.num_labels = num_labels
        zeros = torch.zeros(num_labels, num_labels, dtype=torch.long)
        self.add_state("confusion", default=zeros, dist_reduce_fx="sum")

    def update(self, pred: Tensor, target: Tensor) -> None:
        """pred: segmentation of generated images (N, H, W); target: input label maps (N, H, W)."""
        self.confusion += confusion_matrix(pred, target, self.num_labels).to(self.confusion.device)

    def compute(self) -> dict[str, Tensor]:
        return {k: torch.tensor(v) for k, v in scores_from_confusion(self.confusion).items()}


class ClassAccuracy(Metric):
    """Fraction of generated images a classifier assigns to the class they were made for."""

    full_state_update = False
    is_differentiable = False
    higher_is_better = True
    correct: Tensor
    total: Tensor

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("correct", default=torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("total", default=torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, logits: Tensor, target: Tensor) -> None:
        """logits (N, C) of the generated images; target (N,) the classes they should show."""
        self.correct += (logits.argmax(dim=1) == target.to(logits.device)).sum().to(self.correct)
        self.total += target.numel()

    def compute(self) -> Tensor:
        return self.correct.double() / self.total.clamp_min(1)
