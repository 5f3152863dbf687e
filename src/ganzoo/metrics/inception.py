"""The FID / IS Inception-v3, from its weight file, with a named resize policy.

The network is torch-fidelity's ``FeatureExtractorInceptionV3``: the TensorFlow 2015-12-05
Inception graph that the original FID (bioinf-jku/TTUR) and Inception-score code use, ported to
PyTorch with TF's quirks (average pools without the padded zeros, max pool in the last block,
1008 logits). Its weights come only from ``weights.inception`` through
``ganzoo.core.weights.resolve``: the published file in ``paths.weights_dir`` (checksum checked) or
a path the user gives (its hash recorded). torch-fidelity is never asked to download.

Images enter as ganzoo makes them, float (N, 3, H, W) in [-1, 1], and are first quantised to
uint8 exactly as a PNG of them would be (``round((x + 1) * 127.5)``), so evaluating a model
directly and evaluating its saved images give the same features. Then the resize policy:

- ``tf_bilinear`` (default, the standard protocol of TTUR / torch-fidelity / StyleGAN2-ADA):
  torch-fidelity's forward, which resizes the uint8 image to 299x299 with a TensorFlow-1.x-exact
  bilinear interpolation (align_corners=False, no antialiasing) inside the network.
- ``clean`` (clean-fid, Parmar et al. 2022, "On Aliased Resizing and Surprising Subtleties in
  GAN Evaluation"): each channel of the uint8 image is resized to 299x299 with PIL's bicubic
  filter in float mode (antialiased), clipped to [0, 255] and fed unquantised to the same
  network, whose own resize is then the identity.

Outputs: ``pool`` (N, 2048) pool3 features (FID, KID, precision / recall) and ``logits``
(N, 1008) logits without the bias (Inception score, as torch-fidelity's ``logits_unbiased``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

from ganzoo.core import weights
from ganzoo.core.errors import ConfigError, WeightsError

ResizePolicy = Literal["tf_bilinear", "clean"]
RESIZE_POLICIES: tuple[str, ...] = get_args(ResizePolicy)
INPUT_SIZE = 299  # the Inception's input resolution
_FIDELITY_NAME = "inception-v3-compat"  # torch-fidelity's registry name of this network
# torch-fidelity's feature names for pool3 and the logits without bias
_POOL, _LOGITS = "2048", "logits_unbiased"
# the layers of torch-fidelity's network from the 299x299 input to pool3, in order
_TRUNK = (
    "Conv2d_1a_3x3",
    "Conv2d_2a_3x3",
    "Conv2d_2b_3x3",
    "MaxPool_1",
    "Conv2d_3b_1x1",
    "Conv2d_4a_3x3",
    "MaxPool_2",
    "Mixed_5b",
    "Mixed_5c",
    "Mixed_5d",
    "Mixed_6a",
    "Mixed_6b",
    "Mixed_6c",
    "Mixed_6d",
    "Mixed_6e",
    "Mixed_7a",
    "Mixed_7b",
    "Mixed_7c",
    "AvgPool",
)


def check_resize(policy: str) -> ResizePolicy:
    """The policy if valid; a ConfigError listing the valid ones otherwise."""
    if policy not in RESIZE_POLICIES:
        raise ConfigError(
            f"unknown metrics.resize={policy}; valid choices: {', '.join(RESIZE_POLICIES)}"
        )
    return policy  # type: ignore[return-value]


def quantize(images: Tensor) -> Tensor:
    """(N, 3, H, W) float in [-1, 1] -> uint8 in [0, 255], as saving a PNG rounds them."""
    return ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def clean_resize(images: Tensor, size: int = INPUT_SIZE) -> Tensor:
    """clean-fid's resize: uint8 (N, 3, H, W) -> float32 (N, 3, size, size) in [0, 255].

    Each channel is a float32 PIL image ("F" mode) resized with the bicubic filter, which PIL
    antialiases when downsampling, then clipped to [0, 255]; no quantisation after the resize.
    """
    if images.dtype != torch.uint8:
        raise ValueError(f"clean_resize expects uint8 images, got {images.dtype}")
    array = images.cpu().numpy().astype(np.float32)  # (N, 3, H, W)
    out = np.empty((*array.shape[:2], size, size), dtype=np.float32)
    for i in range(array.shape[0]):
        for c in range(array.shape[1]):
            channel = Image.fromarray(array[i, c])  # mode "F"
            resized = channel.resize((size, size), resample=Image.Resampling.BICUBIC)
            out[i, c] = np.clip(np.asarray(resized), 0.0, 255.0)
    return torch.from_numpy(out).to(images.device)


class InceptionFeatures(nn.Module):
    """Frozen FID Inception: images in [-1, 1] -> {"pool": (N, 2048), "logits": (N, 1008)}."""

    def __init__(
        self,
        network: FeatureExtractorInceptionV3,  # torch-fidelity's network, weights loaded
        resize: ResizePolicy,  # "tf_bilinear" (standard) or "clean"
        source: weights.ResolvedWeights,  # the weight file, its hash recorded with every number
    ) -> None:
        super().__init__()
        self.network = network
        self.resize = check_resize(resize)
        self.source = source
        self.requires_grad_(False)
        self.eval()

    @classmethod
    def from_file(
        cls, path: str | Path | None, weights_dir: str | Path, resize: str
    ) -> InceptionFeatures:
        """Build from ``weights.inception`` (None: the published file in weights_dir).

        Raises:
            WeightsError: the file is missing, fails its checksum, or is not this network's
                state dict (one line naming the file, where to put it and its checksum).
        """
        check_resize(resize)
        resolved = weights.resolve("inception", path, weights_dir)
        weights.load_state_dict(resolved)  # weights_only=True: refuses anything but tensors
        try:
            # torch-fidelity loads the (now known to be plain) file itself; never with path None
            network = FeatureExtractorInceptionV3(
                _FIDELITY_NAME, [_POOL, _LOGITS], feature_extractor_weights_path=str(resolved.path)
            )
        except RuntimeError as error:
            first = str(error).strip().splitlines()[0]
            raise WeightsError(
                f"weights.inception: file {resolved.path} is not the FID Inception state dict "
                f"(pt_inception-2015-12-05-6726825d.pth layout): {first}"
            ) from None
        return cls(network, check_resize(resize), resolved)

    def train(self, mode: bool = True) -> InceptionFeatures:
        """Stays in eval mode (batch norm with the file's statistics)."""
        return super().train(False)

    def provenance(self) -> dict[str, Any]:
        """What produced the features: network, weight file and hash, resize policy."""
        return {
            "extractor": f"torch-fidelity {_FIDELITY_NAME} (TF Inception-v3 2015-12-05)",
            "weights": str(self.source.path),
            "weights_sha256": self.source.sha256,
            "weights_published": self.source.published,
            "resize": self.resize,
        }

    @torch.no_grad()
    def forward(self, images: Tensor) -> dict[str, Tensor]:
        """images: (N, 3, H, W) float in [-1, 1] -> pool (N, 2048), logits (N, 1008), float32."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images (N, 3, H, W), got {tuple(images.shape)}")
        pixels = quantize(images)  # (N, 3, H, W) uint8
        if self.resize == "tf_bilinear":
            pool, logits = self.network(pixels)
            return {"pool": pool, "logits": logits}
        return self._forward_resized(clean_resize(pixels))

    def _forward_resized(self, x: Tensor) -> dict[str, Tensor]:
        """The network on float images already at 299x299 in [0, 255] (clean-fid's input).

        The same layers as torch-fidelity's forward, without its uint8 check and resize (which
        is the identity at 299x299: tested).
        """
        assert x.shape[-2:] == (INPUT_SIZE, INPUT_SIZE), f"expected 299x299, got {x.shape}"
        net = self.network
        x = (x.to(net.feature_extractor_internal_dtype) - 128) / 128  # as torch-fidelity
        for name in _TRUNK:
            x = getattr(net, name)(x)
        pool = torch.flatten(x, 1)  # (N, 2048)
        logits = pool.mm(net.fc.weight.T)  # (N, 1008), no bias
        return {"pool": pool.float(), "logits": logits.float()}
