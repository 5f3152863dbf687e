"""Builders the configs name for objects that need files (weights with checksums)."""

from __future__ import annotations

from pathlib import Path

from ganzoo.core import weights
from ganzoo.losses.lpips import LPIPS, random_lpips
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


def lpips_vgg(
    vgg16: str | None, lpips_vgg: str | None, weights_dir: str, untrained_stand_in: bool
) -> LPIPS:
    """LPIPS (VGG16, v0.1) from weights.vgg16 and weights.lpips_vgg (defaults: the published
    files, checked); the two resolved files are recorded on the module. With
    `untrained_stand_in` a random VGG16 that is NOT LPIPS (tests and offline demos)."""
    if untrained_stand_in:
        print("ganzoo: LPIPS is an untrained stand-in (model.lpips.untrained_stand_in=true)")
        return random_lpips()
    backbone = weights.resolve("vgg16", vgg16, Path(weights_dir))
    lin = weights.resolve("lpips_vgg", lpips_vgg, Path(weights_dir))
    model = LPIPS.from_state_dicts(weights.load_state_dict(backbone), weights.load_state_dict(lin))
    model.weights_provenance = {
        r.key: {"path": str(r.path), "sha256": r.sha256, "published": r.published}
        for r in (backbone, lin)
    }
    return model
