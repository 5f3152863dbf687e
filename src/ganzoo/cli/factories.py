"""Builders the configs name for objects that need files (weights with checksums)."""

from __future__ import annotations

from pathlib import Path

from ganzoo.core import weights
from ganzoo.losses.perceptual import VGG19Features, VGGLoss


def vgg19_loss(path: str | None, weights_dir: str) -> VGGLoss:
    """The VGG19 perceptual loss from weights.vgg19 (default: the published file, checked)."""
    resolved = weights.resolve("vgg19", path, Path(weights_dir))
    features = VGG19Features.from_state_dict(weights.load_state_dict(resolved))
    loss = VGGLoss(features)
    loss.weights_provenance = resolved
    return loss
