"""FIR up- and down-sampling (upfirdn2d) and convolution with resampling, in plain PyTorch.

StyleGAN2 (Karras et al., CVPR 2020, Sec. 2 and Appendix B) replaces nearest/bilinear resampling
by a low-pass FIR filter, [1, 3, 3, 1] by default (its outer product, normalised to sum 1).
The operations follow stylegan2-ada-pytorch torch_utils/ops/upfirdn2d.py (its `_upfirdn2d_ref`:
one depthwise convolution for all channels) and conv2d_resample.py (its fused paths: stride-2
transposed conv then filter, filter then stride-2 conv); the compiled CUDA plugins are not used.

`upfirdn2d(x, f, up, down, padding)` for each channel: insert up - 1 zeros after every pixel,
pad (negative = crop), convolve with f so that output pixels see only the padded input, keep
every down-th pixel. Padding is (x0, x1, y0, y1) in the upsampled image. A filter is 2D
(fh, fw) or separable 1D (taps,) applied along x then y (setup_filter: 1D with >= 8 taps).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

Padding = int | Sequence[int]


def setup_filter(
    taps: Sequence[float],  # 1D taps, e.g. [1, 3, 3, 1]
    normalize: bool = True,  # scale to sum 1, so a constant image keeps its value
    separable: bool | None = None,  # None: separable when there are >= 8 taps (as the official)
) -> Tensor:
    """The FIR filter: the outer product (fh, fw) of `taps`, or `taps` itself if separable."""
    f = torch.as_tensor(list(taps), dtype=torch.float32)
    if separable is None:
        separable = f.numel() >= 8
    if not separable:
        f = torch.outer(f, f)
    if normalize:
        f = f / f.sum()
    return f


def _pad4(padding: Padding) -> tuple[int, int, int, int]:
    if isinstance(padding, int):
        return padding, padding, padding, padding
    p = [int(v) for v in padding]
    return (p[0], p[0], p[1], p[1]) if len(p) == 2 else (p[0], p[1], p[2], p[3])


def filter_size(f: Tensor | None) -> tuple[int, int]:
    """(fw, fh) of a 2D or separable filter (1, 1 for None)."""
    if f is None:
        return 1, 1
    return int(f.shape[-1]), int(f.shape[0])


def upfirdn2d(
    x: Tensor,  # (N, C, H, W)
    f: Tensor | None,  # FIR filter from setup_filter (None = identity)
    up: int = 1,  # upsampling factor
    down: int = 1,  # downsampling factor
    padding: Padding = 0,  # (x0, x1, y0, y1) w.r.t. the upsampled image; negative crops
    flip_filter: bool = False,  # False = convolution, True = correlation
    gain: float = 1.0,  # overall signal gain (upsampling by k needs k**2)
) -> Tensor:
    """Upsample, pad, FIR-filter and downsample every channel of x (upfirdn2d.py:169-208).

    One depthwise convolution (groups = C) filters all channels at once, as the official
    reference path does; downsampling is the convolution's stride (the same output pixels as
    filtering everything and keeping every down-th one, without computing the others).
    `upfirdn2d_reference` is the plain per-plane version this one is tested against.
    """
    c = x.shape[1]
    x = _upsample_zeros_and_pad(x, up, _pad4(padding))
    f = _prepare_filter(f, x, flip_filter, gain)
    if f.ndim == 2:  # (C, 1, fh, fw)
        return F.conv2d(x, f[None, None].expand(c, 1, -1, -1), stride=down, groups=c)
    x = F.conv2d(x, f[None, None, None, :].expand(c, 1, 1, -1), stride=(1, down), groups=c)
    return F.conv2d(x, f[None, None, :, None].expand(c, 1, -1, 1), stride=(down, 1), groups=c)


def upfirdn2d_reference(
    x: Tensor,
    f: Tensor | None,
    up: int = 1,
    down: int = 1,
    padding: Padding = 0,
    flip_filter: bool = False,
    gain: float = 1.0,
) -> Tensor:
    """The plain form of `upfirdn2d` (same arguments): every image plane as its own
    single-channel image, the full-resolution result sliced to keep every down-th pixel."""
    n, c = x.shape[:2]
    x = _upsample_zeros_and_pad(x, up, _pad4(padding))
    f = _prepare_filter(f, x, flip_filter, gain)
    x = x.reshape(n * c, 1, x.shape[2], x.shape[3])  # one channel per image plane
    if f.ndim == 2:
        x = F.conv2d(x, f[None, None])
    else:
        x = F.conv2d(x, f[None, None, None, :])  # along x
        x = F.conv2d(x, f[None, None, :, None])  # along y
    x = x.reshape(n, c, x.shape[2], x.shape[3])
    return x[:, :, ::down, ::down] if down > 1 else x


def _upsample_zeros_and_pad(x: Tensor, up: int, pad: tuple[int, int, int, int]) -> Tensor:
    """Insert up - 1 zeros after each pixel, then pad (x0, x1, y0, y1); negative crops."""
    n, c, h, w = x.shape
    px0, px1, py0, py1 = pad
    if up > 1:  # (N, C, H, 1, W, 1) -> (N, C, H*up, W*up)
        x = x.reshape(n, c, h, 1, w, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(n, c, h * up, w * up)
    if max(px0, px1, py0, py1) > 0:
        x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    if min(px0, px1, py0, py1) < 0:
        x = x[
            :, :, max(-py0, 0) : x.shape[2] - max(-py1, 0), max(-px0, 0) : x.shape[3] - max(-px1, 0)
        ]
    return x


def _prepare_filter(f: Tensor | None, x: Tensor, flip_filter: bool, gain: float) -> Tensor:
    """The filter in x's dtype, times gain**(ndim / 2), flipped for a true convolution."""
    if f is None:
        f = torch.ones(1, 1, dtype=x.dtype, device=x.device)
    f = (f * gain ** (f.ndim / 2)).to(x.dtype)
    return f if flip_filter else f.flip(list(range(f.ndim)))  # conv2d correlates


def upsample2d(x: Tensor, f: Tensor, up: int = 2, padding: Padding = 0, gain: float = 1) -> Tensor:
    """(N, C, H, W) -> (N, C, H*up, W*up) with the FIR filter (upfirdn2d.py:308-343)."""
    fw, fh = filter_size(f)
    px0, px1, py0, py1 = _pad4(padding)
    p = [
        px0 + (fw + up - 1) // 2,
        px1 + (fw - up) // 2,
        py0 + (fh + up - 1) // 2,
        py1 + (fh - up) // 2,
    ]
    return upfirdn2d(x, f, up=up, padding=p, gain=gain * up * up)


def downsample2d(
    x: Tensor, f: Tensor, down: int = 2, padding: Padding = 0, flip_filter: bool = False
) -> Tensor:
    """(N, C, H, W) -> (N, C, H/down, W/down) with the FIR filter (upfirdn2d.py:347-382)."""
    fw, fh = filter_size(f)
    px0, px1, py0, py1 = _pad4(padding)
    p = [
        px0 + (fw - down + 1) // 2,
        px1 + (fw - down) // 2,
        py0 + (fh - down + 1) // 2,
        py1 + (fh - down) // 2,
    ]
    return upfirdn2d(x, f, down=down, padding=p, flip_filter=flip_filter)


def conv2d_resample(
    x: Tensor,  # (N, C_in, H, W)
    w: Tensor,  # (C_out, C_in / groups, kh, kw)
    f: Tensor | None = None,  # FIR filter for up/down (None only without resampling)
    up: int = 1,  # 1 or 2: transposed conv, then FIR filter
    down: int = 1,  # 1 or 2: FIR filter, then strided conv
    padding: int = 0,  # padding of the conv w.r.t. the upsampled image (kernel_size // 2)
    groups: int = 1,  # grouped conv (StyleGAN2's fused modulated conv: one group per sample)
    flip_weight: bool = True,  # True = correlation (F.conv2d), False = convolution
) -> Tensor:
    """Convolution with optional 2x FIR up/down-sampling (conv2d_resample.py:58-154).

    The paths the StyleGAN2 networks use: plain conv; k x k conv with down 2 (filter then
    stride-2 conv); 1 x 1 conv with down 2 (filter-downsample then conv); k x k conv with up 2
    (stride-2 transposed conv then filter, gain up**2).
    """
    assert up in (1, 2) and down in (1, 2) and not (up > 1 and down > 1)
    c_out, c_in_g, kh, kw = w.shape
    fw, fh = filter_size(f)
    px0 = px1 = py0 = py1 = padding
    if up > 1:
        px0, px1 = px0 + (fw + up - 1) // 2, px1 + (fw - up) // 2
        py0, py1 = py0 + (fh + up - 1) // 2, py1 + (fh - up) // 2
    if down > 1:
        px0, px1 = px0 + (fw - down + 1) // 2, px1 + (fw - down) // 2
        py0, py1 = py0 + (fh - down + 1) // 2, py1 + (fh - down) // 2
    if not flip_weight and up == 1:
        w = w.flip([2, 3])
    if down > 1 and kw == 1 and kh == 1:  # downsample first, then the 1x1 conv
        x = upfirdn2d(x, f, down=down, padding=[px0, px1, py0, py1])
        return F.conv2d(x, w, groups=groups)
    if down > 1:  # blur, then strided conv
        x = upfirdn2d(x, f, padding=[px0, px1, py0, py1])
        return F.conv2d(x, w, stride=down, groups=groups)
    if up > 1:  # transposed strided conv, then blur
        if groups == 1:
            wt = w.transpose(0, 1)
        else:  # (G * O/G, I, k, k) -> (G * I, O/G, k, k)
            wt = w.reshape(groups, c_out // groups, c_in_g, kh, kw).transpose(1, 2)
            wt = wt.reshape(groups * c_in_g, c_out // groups, kh, kw)
        if flip_weight:  # the transposed conv convolves: flip to correlate
            wt = wt.flip([2, 3])
        px0, px1, py0, py1 = px0 - (kw - 1), px1 - (kw - up), py0 - (kh - 1), py1 - (kh - up)
        pxt, pyt = max(min(-px0, -px1), 0), max(min(-py0, -py1), 0)
        x = F.conv_transpose2d(x, wt, stride=up, padding=[pyt, pxt], groups=groups)
        pad = [px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt]
        return upfirdn2d(x, f, padding=pad, gain=up * up)
    return F.conv2d(x, w, padding=[py0, px0], groups=groups)
