"""The stand-in Inception-v3 weights of the AttnGAN golden fixtures (not a released file).

The official CNN_ENCODER loads torchvision's ImageNet Inception-v3 from a URL (90 MB); the
fixtures replace it by weights that are a pure function of each tensor's name, so that neither
the fixture (kept under 1 MB) nor the test needs the download: experiments/parity/attngan.py
hands them to the official code in place of `model_zoo.load_url`, the tests rebuild them to
re-create the official-format image_encoder200.pth. Convolution and linear weights are
N(0, 2 / fan_in) (activations keep their scale through the 94 BatchNorm-ReLU layers), BatchNorm
weights 1 + 0.1 N, biases and running means 0.1 N, running variances 1 + U(0, 0.1), fc bias 0;
each drawn from a CPU generator seeded with the CRC-32 of the key.
"""

from __future__ import annotations

import zlib

import torch
from torch import Tensor
from torchvision.models import inception_v3


def stand_in_inception() -> dict[str, Tensor]:
    """torchvision inception_v3 (aux_logits, fc) state dict of the stand-in weights."""
    with torch.device("meta"):  # shapes only
        net = inception_v3(weights=None, aux_logits=True, init_weights=False)
    shapes = {k: v.shape for k, v in net.state_dict().items()}
    state: dict[str, Tensor] = {}
    for key, shape in shapes.items():
        g = torch.Generator().manual_seed(zlib.crc32(key.encode()))
        if key.endswith("num_batches_tracked"):
            state[key] = torch.zeros((), dtype=torch.long)
        elif key.endswith("running_var"):
            state[key] = 1.0 + 0.1 * torch.rand(shape, generator=g)
        elif key.endswith("running_mean") or (key.endswith("bias") and key != "fc.bias"):
            state[key] = 0.1 * torch.randn(shape, generator=g)
        elif key == "fc.bias":
            state[key] = torch.zeros(shape)
        elif len(shape) >= 2:
            fan_in = int(torch.tensor(shape[1:]).prod())
            state[key] = torch.randn(shape, generator=g) * (2.0 / fan_in) ** 0.5
        else:  # BatchNorm weight
            state[key] = 1.0 + 0.1 * torch.randn(shape, generator=g)
    return state
