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


def inception_v3_state(path: str | None, weights_dir: str) -> tuple[dict, weights.ResolvedWeights]:
    """Inception-v3 ImageNet weights from weights.inception_v3 (DAMSM image encoder):
    (state dict, the resolved file with its hash)."""
    resolved = weights.resolve("inception_v3", path, Path(weights_dir))
    return weights.load_state_dict(resolved), resolved
