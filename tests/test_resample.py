"""The fast FIR resampling paths equal the plain ones, in values and gradients.

`upfirdn2d` (one depthwise convolution, downsampling as its stride) against
`upfirdn2d_reference` (every image plane on its own, the full result sliced), and
`conv2d_resample`'s fused up/down paths (stride-2 transposed conv then filter, filter then
stride-2 conv, filter-downsample then 1x1 conv) against the generic form: zero-insert and
filter, plain convolution, filter and drop pixels.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from ganzoo.nn.resample import (
    conv2d_resample,
    filter_size,
    setup_filter,
    upfirdn2d,
    upfirdn2d_reference,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def _values_and_grads(fn, *inputs: Tensor) -> list[Tensor]:
    """fn(*inputs) and the gradients of a fixed random projection of it w.r.t. each input."""
    inputs = tuple(t.detach().clone().requires_grad_(True) for t in inputs)
    y = fn(*inputs)
    g = torch.Generator().manual_seed(1)
    probe = torch.randn(y.shape, generator=g)
    return [y.detach(), *torch.autograd.grad((y * probe).sum(), inputs)]


@pytest.mark.parametrize(
    "taps, kwargs",
    [
        ([1, 3, 3, 1], dict(up=2, padding=[2, 1, 2, 1], gain=4)),  # upsample2d
        ([1, 3, 3, 1], dict(down=2, padding=[1, 1, 1, 1])),  # downsample2d
        ([1, 3, 3, 1], dict(padding=[2, 1, 2, 1], gain=4)),  # after a transposed conv
        ([1, 3, 3, 1], dict(padding=[-1, 0, 2, -2], flip_filter=True)),  # crop and pad
        ([1, 2, 3, 4, 4, 3, 2, 1], dict(up=2, padding=[4, 3, 4, 3], gain=4)),  # separable
        ([1, 2, 3, 4, 4, 3, 2, 1], dict(down=2, padding=3)),
        ([1, 3, 3, 1], dict(up=3, down=2, padding=1)),  # both at once
        (None, dict(down=2)),  # no filter: keep every other pixel
    ],
)
def test_depthwise_upfirdn2d_equals_the_per_plane_reference(taps, kwargs) -> None:
    torch.manual_seed(0)
    f = None if taps is None else setup_filter(taps)
    x = torch.randn(2, 5, 9, 7)
    fast = _values_and_grads(lambda x: upfirdn2d(x, f, **kwargs), x)
    plain = _values_and_grads(lambda x: upfirdn2d_reference(x, f, **kwargs), x)
    for a, b in zip(fast, plain, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


def _generic_conv2d_resample(
    x: Tensor, w: Tensor, f: Tensor, up: int, down: int, padding: int, groups: int, flip: bool
) -> Tensor:
    """The general form (conv2d_resample.py's fallback): zero-insert + filter, conv, filter +
    drop pixels, with the padding applied once at the start."""
    fw, fh = filter_size(f)
    p = [padding] * 4
    if up > 1:
        p = [p[0] + (fw + up - 1) // 2, p[1] + (fw - up) // 2, p[2] + (fh + up - 1) // 2,
             p[3] + (fh - up) // 2]  # fmt: skip
    if down > 1:
        p = [p[0] + (fw - down + 1) // 2, p[1] + (fw - down) // 2,
             p[2] + (fh - down + 1) // 2, p[3] + (fh - down) // 2]  # fmt: skip
    x = upfirdn2d_reference(x, f if up > 1 else None, up=up, padding=p, gain=up**2)
    x = F.conv2d(x, w if flip else w.flip([2, 3]), groups=groups)
    return upfirdn2d_reference(x, f, down=down) if down > 1 else x


@pytest.mark.parametrize(
    "kernel, up, down, groups, flip",
    [
        (3, 2, 1, 1, False),  # G's upsampling conv (flip_weight = up == 1)
        (3, 2, 1, 2, False),  # ... fused modconv: one group per sample
        (3, 2, 1, 1, True),
        (3, 1, 2, 1, True),  # D's downsampling conv
        (1, 1, 2, 1, True),  # D's 1x1 skip
        (3, 1, 1, 2, True),  # plain conv, grouped
    ],
)
def test_fused_conv2d_resample_paths_equal_the_generic_form(kernel, up, down, groups, flip):
    torch.manual_seed(0)
    f = setup_filter([1, 3, 3, 1])
    x = torch.randn(2, 4 * groups, 8, 8)
    w = torch.randn(6 * groups, 4, kernel, kernel)
    args = dict(up=up, down=down, padding=kernel // 2, groups=groups)
    fast = _values_and_grads(lambda x, w: conv2d_resample(x, w, f, flip_weight=flip, **args), x, w)
    plain = _values_and_grads(
        lambda x, w: _generic_conv2d_resample(x, w, f, flip=flip, **args), x, w
    )
    for a, b in zip(fast, plain, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-4)  # other summation order
