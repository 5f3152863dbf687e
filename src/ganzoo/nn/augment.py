"""Discriminator augmentation: ADA (Karras et al., NeurIPS 2020) and DiffAugment (Zhao et al.,
NeurIPS 2020). Both augment every image D sees, real and generated, with differentiable ops.

ADA's AugmentPipe follows stylegan2-ada-pytorch training/augment.py for the 'bgc' pipeline
(train.py:276): the blit group (x-flip, 90-degree rotations, integer translation), the
geometric group (isotropic scaling, rotation, anisotropic scaling, fractional translation) and
the colour group (brightness, contrast, luma flip, hue rotation, saturation). Each transform of
each image is applied with probability multiplier x p. As in the official code, the blit and
geometric transforms are composed into one inverse 2D matrix per image and executed in one
resampling: reflect-pad, upsample 2x with the sym6 wavelet filter, bilinear `grid_sample`
through `affine_grid`, downsample 2x. The colour transforms are one 4x4 matrix per image.
Not implemented: image-space filtering, additive noise and cutout (pipelines 'bgcf...').
At p == 0 the pipeline returns its input unchanged (the official resamples anyway).

`ada_adjust` is the p update of training_loop.py:311-315: every `ada_interval` iterations
p += sign(r_t - target) * (batch * interval) / (ada_kimg * 1000), floored at 0, where
r_t = E[sign(D(real))] over the interval (Sec. 2.2 of the ADA paper; target 0.6).

DiffAugment ('color,translation,cutout') follows mit-han-lab/data-efficient-gans
DiffAugment_pytorch.py: always applied (no probability), per image random parameters.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganzoo.core.errors import ConfigError
from ganzoo.nn.resample import downsample2d, setup_filter, upsample2d

# sym6 wavelet low-pass (augment.py:35): the anti-aliasing filter of the geometric group
SYM6 = (
    0.015404109327027373, 0.0034907120842174702, -0.11799011114819057, -0.048311742585633,
    0.4910559419267466, 0.787641141030194, 0.3379294217276218, -0.07263752278646252,
    -0.021060292512300564, 0.04472490177066578, 0.0017677118642428036, -0.007800708325034148,
)  # fmt: skip


def ada_adjust(
    p: float,  # current augmentation probability
    rt: float,  # E[sign(D(real))] over the last interval
    target: float,  # ADA target (0.6)
    images: int,  # images seen since the last adjustment (batch * ada_interval)
    ada_kimg: float,  # kimg for p to move by 1 (500)
) -> float:
    """The next p (training_loop.py:314-315): one step of sign(r_t - target), floored at 0."""
    step = math.copysign(1.0, rt - target) if rt != target else 0.0
    return max(p + step * images / (ada_kimg * 1000), 0.0)


# ----- homogeneous matrices, one per image ------------------------------------------------
def _matrix(rows: list[list[Tensor | float]], ref: Tensor) -> Tensor:
    """(N, R, C) from rows of per-image (N,) tensors or constants."""
    elems = [e if isinstance(e, Tensor) else torch.full_like(ref, e) for row in rows for e in row]
    return torch.stack(elems, dim=-1).reshape(ref.shape[0], len(rows), len(rows[0]))


def _translate2d(tx: Tensor, ty: Tensor) -> Tensor:
    return _matrix([[1, 0, tx], [0, 1, ty], [0, 0, 1]], tx)


def _scale2d(sx: Tensor, sy: Tensor) -> Tensor:
    return _matrix([[sx, 0, 0], [0, sy, 0], [0, 0, 1]], sx)


def _rotate2d(theta: Tensor) -> Tensor:
    c, s = torch.cos(theta), torch.sin(theta)
    return _matrix([[c, -s, 0], [s, c, 0], [0, 0, 1]], theta)


def _translate3d(t: Tensor) -> Tensor:
    return _matrix([[1, 0, 0, t], [0, 1, 0, t], [0, 0, 1, t], [0, 0, 0, 1]], t)


def _scale3d(s: Tensor) -> Tensor:
    return _matrix([[s, 0, 0, 0], [0, s, 0, 0], [0, 0, s, 0], [0, 0, 0, 1]], s)


def _rotate3d(v: Tensor, theta: Tensor) -> Tensor:
    """Rotation by theta about the unit axis v (Rodrigues), homogeneous (N, 4, 4)."""
    vx, vy, vz = (float(e) for e in v[:3])
    s, c = torch.sin(theta), torch.cos(theta)
    cc = 1 - c
    rows: list[list[Tensor | float]] = [
        [vx * vx * cc + c, vx * vy * cc - vz * s, vx * vz * cc + vy * s, 0],
        [vy * vx * cc + vz * s, vy * vy * cc + c, vy * vz * cc - vx * s, 0],
        [vz * vx * cc - vy * s, vz * vy * cc + vx * s, vz * vz * cc + c, 0],
        [0, 0, 0, 1],
    ]
    return _matrix(rows, theta)


def _const(m: list[list[float]], n: int, device: torch.device) -> Tensor:
    return torch.tensor(m, dtype=torch.float32, device=device).expand(n, -1, -1)


class AugmentPipe(nn.Module):
    """ADA's differentiable augmentation pipeline (augment.py:116-429), 'bgc' groups.

    Multipliers are per-transform probability factors (1 = on, 0 = off); the overall
    probability p is an argument of forward (the task owns it as a checkpointed buffer).
    """

    filter_geom: Tensor

    def __init__(
        self,
        xflip: float = 1.0,  # blit: horizontal flip
        rotate90: float = 1.0,  # blit: rotation by a multiple of 90 degrees
        xint: float = 1.0,  # blit: integer translation
        scale: float = 1.0,  # geometric: isotropic scaling
        rotate: float = 1.0,  # geometric: arbitrary rotation
        aniso: float = 1.0,  # geometric: anisotropic scaling
        xfrac: float = 1.0,  # geometric: fractional translation
        brightness: float = 1.0,  # colour: additive brightness
        contrast: float = 1.0,  # colour: contrast
        lumaflip: float = 1.0,  # colour: luma flip
        hue: float = 1.0,  # colour: hue rotation
        saturation: float = 1.0,  # colour: saturation
        xint_max: float = 0.125,  # integer translation range, relative to the image size
        scale_std: float = 0.2,  # log2 std of isotropic scaling
        rotate_max: float = 1.0,  # rotation range, 1 = full circle
        aniso_std: float = 0.2,  # log2 std of anisotropic scaling
        xfrac_std: float = 0.125,  # std of fractional translation, relative to the image size
        brightness_std: float = 0.2,  # std of brightness
        contrast_std: float = 0.5,  # log2 std of contrast
        hue_max: float = 1.0,  # hue rotation range, 1 = full circle
        saturation_std: float = 1.0,  # log2 std of saturation
    ) -> None:
        super().__init__()
        self.xflip, self.rotate90, self.xint, self.xint_max = xflip, rotate90, xint, xint_max
        self.scale, self.rotate, self.aniso, self.xfrac = scale, rotate, aniso, xfrac
        self.scale_std, self.rotate_max, self.aniso_std = scale_std, rotate_max, aniso_std
        self.xfrac_std = xfrac_std
        self.brightness, self.contrast, self.lumaflip = brightness, contrast, lumaflip
        self.hue, self.saturation = hue, saturation
        self.brightness_std, self.contrast_std = brightness_std, contrast_std
        self.hue_max, self.saturation_std = hue_max, saturation_std
        self.register_buffer("filter_geom", setup_filter(SYM6), persistent=False)

    def forward(self, images: Tensor, p: Tensor | float) -> Tensor:
        """(N, 3, H, W) in [-1, 1] -> augmented (N, 3, H, W); identity when p == 0."""
        if float(p) == 0:
            return images
        n, _, h, w = images.shape
        p_t = torch.as_tensor(p, dtype=torch.float32, device=images.device)
        if any(m > 0 for m in (self.xflip, self.rotate90, self.xint, self.scale, self.rotate)) or (
            self.aniso > 0 or self.xfrac > 0
        ):
            images = self._resample(images, self._geometric_inverse(n, h, w, p_t))
        if any(m > 0 for m in (self.brightness, self.contrast, self.lumaflip, self.hue)) or (
            self.saturation > 0
        ):
            c = self._colour_matrix(n, p_t)  # (N, 4, 4)
            flat = images.reshape(n, 3, h * w)
            images = (c[:, :3, :3] @ flat + c[:, :3, 3:]).reshape(n, 3, h, w)
        return images

    # ----- parameters ------------------------------------------------------------------
    def _chance(self, shape: tuple[int, ...], prob: Tensor, device: torch.device) -> Tensor:
        """Boolean mask: apply the transform to these images (probability `prob`)."""
        return torch.rand(shape, device=device) < prob

    def _geometric_inverse(self, n: int, h: int, w: int, p: Tensor) -> Tensor:
        """G_inv (N, 3, 3): output pixel -> input pixel, in pixels about the centre."""
        dev = p.device
        g = torch.eye(3, device=dev).expand(n, 3, 3)
        zeros, ones = torch.zeros(n, device=dev), torch.ones(n, device=dev)
        if self.xflip > 0:
            i = torch.floor(torch.rand(n, device=dev) * 2)
            i = torch.where(self._chance((n,), self.xflip * p, dev), i, zeros)
            g = g @ _scale2d(1 - 2 * i, ones)  # its own inverse
        if self.rotate90 > 0:
            i = torch.floor(torch.rand(n, device=dev) * 4)
            i = torch.where(self._chance((n,), self.rotate90 * p, dev), i, zeros)
            g = g @ _rotate2d(math.pi / 2 * i)  # inverse of rotating by -pi/2 * i
        if self.xint > 0:
            t = (torch.rand(n, 2, device=dev) * 2 - 1) * self.xint_max
            t = torch.where(self._chance((n, 1), self.xint * p, dev), t, torch.zeros_like(t))
            g = g @ _translate2d(-torch.round(t[:, 0] * w), -torch.round(t[:, 1] * h))
        if self.scale > 0:
            s = torch.exp2(torch.randn(n, device=dev) * self.scale_std)
            s = torch.where(self._chance((n,), self.scale * p, dev), s, ones)
            g = g @ _scale2d(1 / s, 1 / s)
        p_rot = 1 - torch.sqrt((1 - self.rotate * p).clamp(0, 1))  # P(pre or post) = rotate * p
        if self.rotate > 0:
            theta = (torch.rand(n, device=dev) * 2 - 1) * math.pi * self.rotate_max
            theta = torch.where(self._chance((n,), p_rot, dev), theta, zeros)
            g = g @ _rotate2d(theta)  # before anisotropic scaling
        if self.aniso > 0:
            s = torch.exp2(torch.randn(n, device=dev) * self.aniso_std)
            s = torch.where(self._chance((n,), self.aniso * p, dev), s, ones)
            g = g @ _scale2d(1 / s, s)
        if self.rotate > 0:
            theta = (torch.rand(n, device=dev) * 2 - 1) * math.pi * self.rotate_max
            theta = torch.where(self._chance((n,), p_rot, dev), theta, zeros)
            g = g @ _rotate2d(theta)  # after anisotropic scaling
        if self.xfrac > 0:
            t = torch.randn(n, 2, device=dev) * self.xfrac_std
            t = torch.where(self._chance((n, 1), self.xfrac * p, dev), t, torch.zeros_like(t))
            g = g @ _translate2d(-t[:, 0] * w, -t[:, 1] * h)
        return g

    def _colour_matrix(self, n: int, p: Tensor) -> Tensor:
        """C (N, 4, 4): homogeneous RGB colour transform (augment.py:307-350)."""
        dev = p.device
        eye = torch.eye(4, device=dev)
        c = eye.expand(n, 4, 4)
        zeros, ones = torch.zeros(n, device=dev), torch.ones(n, device=dev)
        v = torch.tensor([1.0, 1.0, 1.0, 0.0], device=dev) / math.sqrt(3)  # luma axis
        vv = torch.outer(v, v)
        if self.brightness > 0:
            b = torch.randn(n, device=dev) * self.brightness_std
            b = torch.where(self._chance((n,), self.brightness * p, dev), b, zeros)
            c = _translate3d(b) @ c
        if self.contrast > 0:
            s = torch.exp2(torch.randn(n, device=dev) * self.contrast_std)
            s = torch.where(self._chance((n,), self.contrast * p, dev), s, ones)
            c = _scale3d(s) @ c
        if self.lumaflip > 0:
            i = torch.floor(torch.rand(n, 1, 1, device=dev) * 2)
            i = torch.where(self._chance((n, 1, 1), self.lumaflip * p, dev), i, torch.zeros_like(i))
            c = (eye - 2 * vv * i) @ c  # Householder reflection of the luma axis
        if self.hue > 0:
            theta = (torch.rand(n, device=dev) * 2 - 1) * math.pi * self.hue_max
            theta = torch.where(self._chance((n,), self.hue * p, dev), theta, zeros)
            c = _rotate3d(v, theta) @ c  # rotation about the luma axis
        if self.saturation > 0:
            s = torch.exp2(torch.randn(n, 1, 1, device=dev) * self.saturation_std)
            keep = self._chance((n, 1, 1), self.saturation * p, dev)
            s = torch.where(keep, s, torch.ones_like(s))
            c = (vv + (eye - vv) * s) @ c
        return c

    # ----- execution -------------------------------------------------------------------
    def _resample(self, images: Tensor, g_inv: Tensor) -> Tensor:
        """Apply the inverse transforms g_inv (N, 3, 3) in one pass (augment.py:269-301)."""
        n, c, h, w = images.shape
        dev = images.device
        ones = torch.ones(n, device=dev)
        cx, cy = (w - 1) / 2, (h - 1) / 2
        corners = torch.tensor(
            [[-cx, -cy, 1], [cx, -cy, 1], [cx, cy, 1], [-cx, cy, 1]], device=dev
        )  # (4, xyz)
        cp = g_inv @ corners.t()  # (N, xyz, 4): where the output corners come from
        pad = self.filter_geom.shape[0] // 4
        margin = cp[:, :2, :].permute(1, 0, 2).flatten(1)  # (xy, N * 4)
        margin = torch.cat([-margin, margin]).max(dim=1).values  # (x0, y0, x1, y1)
        margin = margin + torch.tensor([pad * 2 - cx, pad * 2 - cy] * 2, device=dev)
        margin = margin.clamp(min=0)
        margin = torch.minimum(margin, torch.tensor([w - 1, h - 1] * 2, device=dev))
        mx0, my0, mx1, my1 = (int(v) for v in margin.ceil().tolist())
        images = F.pad(images, [mx0, mx1, my0, my1], mode="reflect")
        g_inv = _translate2d((mx0 - mx1) / 2 * ones, (my0 - my1) / 2 * ones) @ g_inv
        images = upsample2d(images, self.filter_geom, up=2)
        two, half = 2 * ones, 0.5 * ones
        g_inv = _scale2d(two, two) @ g_inv @ _scale2d(half, half)
        g_inv = _translate2d(-half, -half) @ g_inv @ _translate2d(half, half)
        shape = [n, c, (h + pad * 2) * 2, (w + pad * 2) * 2]
        to_unit = _scale2d(2 / images.shape[3] * ones, 2 / images.shape[2] * ones)
        from_unit = _scale2d(shape[3] / 2 * ones, shape[2] / 2 * ones)
        g_inv = to_unit @ g_inv @ from_unit  # in affine_grid's [-1, 1] coordinates
        grid = F.affine_grid(g_inv[:, :2, :], shape, align_corners=False)
        images = F.grid_sample(
            images, grid, mode="bilinear", padding_mode="zeros", align_corners=False
        )
        return downsample2d(images, self.filter_geom, down=2, padding=-pad * 2, flip_filter=True)


# ----- DiffAugment ----------------------------------------------------------------------
def _rand(x: Tensor) -> Tensor:
    return torch.rand(x.shape[0], 1, 1, 1, dtype=x.dtype, device=x.device)


def diff_brightness(x: Tensor) -> Tensor:
    """Add U(-0.5, 0.5) per image."""
    return x + (_rand(x) - 0.5)


def diff_saturation(x: Tensor) -> Tensor:
    """Scale the deviation from the per-pixel channel mean by U(0, 2)."""
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * (_rand(x) * 2) + mean


def diff_contrast(x: Tensor) -> Tensor:
    """Scale the deviation from the image mean by U(0.5, 1.5)."""
    mean = x.mean(dim=[1, 2, 3], keepdim=True)
    return (x - mean) * (_rand(x) + 0.5) + mean


def diff_translation(x: Tensor, ratio: float = 0.125) -> Tensor:
    """Shift by integers in [-ratio * size, ratio * size], filling with zeros."""
    n, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ty = torch.randint(-sh, sh + 1, (n, 1, 1), device=x.device)
    tx = torch.randint(-sw, sw + 1, (n, 1, 1), device=x.device)
    rows = (torch.arange(h, device=x.device).view(1, -1, 1) + ty + 1).clamp(0, h + 1)
    cols = (torch.arange(w, device=x.device).view(1, 1, -1) + tx + 1).clamp(0, w + 1)
    padded = F.pad(x, [1, 1, 1, 1]).permute(0, 2, 3, 1)  # (N, H+2, W+2, C), zero border
    batch = torch.arange(n, device=x.device).view(-1, 1, 1)
    return padded[batch, rows, cols].permute(0, 3, 1, 2)  # reads the zero border when out


def diff_cutout(x: Tensor, ratio: float = 0.5) -> Tensor:
    """Zero one (ratio * H) x (ratio * W) rectangle per image at a random centre."""
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    oy = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), device=x.device) - ch // 2
    ox = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), device=x.device) - cw // 2
    ys = torch.arange(h, device=x.device).view(1, -1, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, -1)
    inside = (ys >= oy) & (ys < oy + ch) & (xs >= ox) & (xs < ox + cw)  # (N, H, W)
    return x * (~inside).to(x.dtype).unsqueeze(1)


DIFF_AUGMENT = {
    "color": (diff_brightness, diff_saturation, diff_contrast),
    "translation": (diff_translation,),
    "cutout": (diff_cutout,),
}


def diff_augment(x: Tensor, policy: str) -> Tensor:
    """DiffAugment with a comma-separated policy, e.g. 'color,translation,cutout'."""
    for name in [p for p in policy.split(",") if p]:
        if name not in DIFF_AUGMENT:
            valid = ", ".join(DIFF_AUGMENT)
            raise ConfigError(f"unknown DiffAugment policy {name!r}; valid: {valid}")
        for fn in DIFF_AUGMENT[name]:
            x = fn(x)
    return x
