"""Procedural synthetic scenes: the embedded default dataset, `data=synthetic`.

Every model in ganzoo can train on these scenes without any download. A scene is a
background layout (sky over grass or sand, with water bands or mountain ranges) at day
or night, plus 2-5 objects of a few shapes in several colours and sizes that may occlude
each other. Each sample provides every field of `ganzoo.data.batch.FIELDS` except
`domain_mask`.

Labels (one per region type or shape; colour is appearance, not class):
0 sky, 1 night_sky, 2 cloud, 3 grass, 4 sand, 5 water, 6 mountain, 7 snow (every pixel
is one of these background classes unless an object covers it), 8 circle, 9 square,
10 triangle, 11 diamond, 12 star, 13 cross, 14 ring. No label is reserved for "nothing".

Determinism: sample `i` of split `split` under `seed` draws from its own
`numpy.random.PCG64` stream keyed on (seed, split, i); nothing reads global RNG state.
The scene itself (layout, objects, colours) depends only on the key and the aspect ratio
W/H; only the rasterisation and the pixel noise depend on the resolution. Geometry is in
height units (y in [0, 1] top to bottom, x in [0, W/H]), so shapes keep their proportions
and scale with the resolution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

Split = Literal["train", "val", "test"]
SPLITS: tuple[str, ...] = ("train", "val", "test")

LAYOUTS: tuple[str, ...] = ("meadow", "desert", "beach", "lake", "valley", "canyon")
PLACES: dict[str, str] = {
    "meadow": "in a meadow",
    "desert": "in a desert",
    "beach": "on a beach",
    "lake": "by a lake",
    "valley": "in a valley",
    "canyon": "in a canyon",
}
RELATION_WORDS: tuple[str, ...] = ("left", "right", "of", "above", "below")
PLACE_WORDS: tuple[str, ...] = ("in", "on", "by", *LAYOUTS)
TIME_WORDS: tuple[str, ...] = ("at", "night", "day")
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "diamond", "star", "cross", "ring")
# colour name -> RGB in [0, 1] by day
COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.86, 0.12, 0.10),
    "orange": (0.96, 0.55, 0.10),
    "yellow": (0.96, 0.88, 0.16),
    "green": (0.30, 0.90, 0.30),
    "blue": (0.12, 0.22, 0.92),
    "purple": (0.56, 0.20, 0.76),
    "white": (0.96, 0.96, 0.96),
    "black": (0.08, 0.08, 0.08),
}
# size name -> (probability, circumradius range in height units for a square image)
SIZES: dict[str, tuple[float, tuple[float, float]]] = {
    "small": (0.40, (0.07, 0.10)),
    "medium": (0.35, (0.12, 0.16)),
    "large": (0.25, (0.20, 0.25)),
}

SKY, NIGHT_SKY, CLOUD, GRASS, SAND, WATER, MOUNTAIN, SNOW = range(8)
BACKGROUND_NAMES: tuple[str, ...] = (
    "sky",
    "night_sky",
    "cloud",
    "grass",
    "sand",
    "water",
    "mountain",
    "snow",
)
# background label -> (base RGB by day, vertical gradient per unit of height)
BACKGROUND_COLOURS: dict[int, tuple[tuple[float, ...], tuple[float, ...]]] = {
    SKY: ((0.45, 0.63, 0.90), (0.45, 0.40, 0.10)),
    NIGHT_SKY: ((0.05, 0.06, 0.17), (0.10, 0.10, 0.16)),
    CLOUD: ((0.93, 0.93, 0.95), (0.0, 0.0, 0.0)),
    GRASS: ((0.27, 0.55, 0.20), (-0.10, -0.15, -0.05)),
    SAND: ((0.86, 0.74, 0.50), (-0.10, -0.10, -0.08)),
    WATER: ((0.14, 0.40, 0.66), (-0.10, -0.20, -0.25)),
    MOUNTAIN: ((0.46, 0.41, 0.38), (0.0, 0.0, 0.0)),
    SNOW: ((0.93, 0.94, 0.97), (0.0, 0.0, 0.0)),
}
# label -> (low-frequency, mid-frequency, streak texture amplitude, pixel noise sigma)
TEXTURE: dict[int, tuple[float, float, float, float]] = {
    SKY: (0.03, 0.0, 0.0, 0.012),
    NIGHT_SKY: (0.10, 0.0, 0.0, 0.010),
    CLOUD: (0.05, 0.06, 0.0, 0.015),
    GRASS: (0.10, 0.05, 0.18, 0.035),
    SAND: (0.07, 0.08, 0.0, 0.060),
    WATER: (0.05, 0.05, 0.0, 0.020),
    MOUNTAIN: (0.12, 0.10, 0.0, 0.030),
    SNOW: (0.03, 0.04, 0.0, 0.015),
}
OBJECT_TEXTURE = (0.04, 0.03, 0.0, 0.020)


@dataclass(frozen=True)
class SceneObject:
    """One object as drawn, in height units: centre (x, y), circumradius, rotation."""

    shape: str
    colour: str
    size: str
    x: float
    y: float
    radius: float
    angle: float


@dataclass(frozen=True)
class Scene:
    """Everything drawn for one sample, independent of the resolution."""

    layout: str
    night: bool
    horizon: tuple[float, float, float, float]  # mean y, wave amplitude, frequency, phase
    water: tuple[float, float, float] | None  # top y, bottom y, bottom wave amplitude
    ridge: tuple[tuple[float, ...], tuple[float, ...]] | None  # knot x in [0, 1], heights
    snowline: float | None  # y above which mountain pixels are snow
    clouds: tuple[tuple[float, float, float, float], ...]  # x, y, rx, ry of each puff
    objects: tuple[SceneObject, ...]  # in painting order: later ones occlude earlier ones
    light: tuple[float, float]  # unit vector towards the light, image axes (x, y)
    jitter: tuple[float, ...]  # multiplicative colour jitter, 3 per background label


@dataclass(frozen=True)
class VisibleObject:
    """An object as seen in the rendered sample: its instance id and visible pixels."""

    instance: int
    shape: str
    colour: str
    size: str
    pixels: int
    centroid: tuple[float, float]  # (x, y) in pixels of the visible part


@dataclass(frozen=True)
class SceneInfo:
    """The ground truth of a rendered sample, from which captions and attributes come."""

    scene: Scene
    scene_class: int
    objects: tuple[VisibleObject, ...]  # visible objects by instance id 1..K
    attributes: tuple[float, ...]
    caption: str


class SyntheticScenes(Dataset):
    """Deterministic procedural scenes at any resolution, with every field of FIELDS.

    Sample: image (3, H, W) float32 in [-1, 1]; label_map (H, W) int64 in [0, 15);
    instance_map (H, W) int64, 0 for background and 1..K for visible objects; class_id ()
    int64 in [0, 12) = layout * 2 + night; attributes (6,) float32 0/1; caption_tokens
    (caption_length,) int64 padded with 0; caption_lengths () int64.
    """

    provides: ClassVar[tuple[str, ...]] = (
        "image",
        "label_map",
        "instance_map",
        "class_id",
        "attributes",
        "caption_tokens",
        "caption_lengths",
    )
    label_names: ClassVar[tuple[str, ...]] = BACKGROUND_NAMES + SHAPES
    scene_names: ClassVar[tuple[str, ...]] = tuple(
        f"{layout}_{time}" for layout in LAYOUTS for time in ("day", "night")
    )
    attribute_names: ClassVar[tuple[str, ...]] = (
        "night",
        "has_water",
        "has_mountains",
        "has_red_object",
        "has_large_object",
        "has_circle",
    )
    vocab: ClassVar[tuple[str, ...]] = (
        ("<pad>", "a", *SIZES, *COLOURS, *SHAPES) + RELATION_WORDS + PLACE_WORDS + TIME_WORDS
    )
    num_labels: ClassVar[int] = len(label_names)
    num_scene_classes: ClassVar[int] = len(scene_names)
    num_attributes: ClassVar[int] = len(attribute_names)
    vocab_size: ClassVar[int] = len(vocab)

    def __init__(
        self,
        length: int,  # number of samples in this split
        height: int,  # image height in pixels, e.g. 64
        width: int,  # image width in pixels, e.g. 64 or 128 (any aspect ratio)
        seed: int = 0,  # dataset seed; with split and index it keys each sample's RNG
        split: Split = "train",  # disjoint sample streams: "train", "val" or "test"
        caption_length: int = 18,  # tokens per caption, padded with 0 (longest is 15)
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"split={split!r} is not one of {', '.join(SPLITS)}")
        if min(length, height, width, caption_length) < 1 or seed < 0:
            raise ValueError(
                "SyntheticScenes needs length, height, width, caption_length >= 1 and seed "
                f">= 0; got {length}, {height}, {width}, {caption_length}, seed={seed}"
            )
        self.length = length
        self.height = height
        self.width = width
        self.seed = seed
        self.split = split
        self.caption_length = caption_length
        self._word_ids = {word: i for i, word in enumerate(self.vocab)}
        # bilinear upsampling indices and weights per (pixels, grid points)
        self._interp: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        rgb, label, instance, info = self.render(index)
        words = info.caption.split()[: self.caption_length]
        tokens = np.zeros(self.caption_length, dtype=np.int64)
        tokens[: len(words)] = [self._word_ids[w] for w in words]
        image = np.ascontiguousarray(rgb.transpose(2, 0, 1)) * np.float32(2.0) - np.float32(1.0)
        return {
            "image": torch.from_numpy(image),  # (3, H, W) in [-1, 1]
            "label_map": torch.from_numpy(label),  # (H, W)
            "instance_map": torch.from_numpy(instance),  # (H, W)
            "class_id": torch.tensor(info.scene_class, dtype=torch.int64),
            "attributes": torch.tensor(info.attributes, dtype=torch.float32),  # (A,)
            "caption_tokens": torch.from_numpy(tokens),  # (T,)
            "caption_lengths": torch.tensor(len(words), dtype=torch.int64),
        }

    def caption(self, index: int) -> str:
        """The sentence describing sample `index`, e.g. 'a large red circle left of a small
        blue square in a meadow at night'."""
        return self.render(index)[3].caption

    def describe(self, index: int) -> SceneInfo:
        """The ground truth behind sample `index` (scene, visible objects, caption)."""
        return self.render(index)[3]

    def decode(self, tokens: Tensor) -> str:
        """Words of a (T,) token tensor, without padding."""
        return " ".join(self.vocab[int(t)] for t in tokens if int(t) != 0)

    def render(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, SceneInfo]:
        """Sample `index` as numpy arrays: rgb (H, W, 3) float32 in [0, 1], label (H, W)
        int64, instance (H, W) int64, and its SceneInfo."""
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} samples")
        key = np.random.SeedSequence([self.seed, SPLITS.index(self.split), index])
        scene_rng, pixel_rng = (np.random.Generator(np.random.PCG64(s)) for s in key.spawn(2))
        scene = sample_scene(scene_rng, self.width / self.height)
        label, mountain_shade = paint_background(scene, self.height, self.width)
        instance, shade = paint_objects(scene, label)
        instance, visible = visible_objects(scene, instance)
        colours = tuple(o.colour for o in visible)  # by instance id 1..K
        rgb = self._colour(scene, colours, pixel_rng, label, instance, shade, mountain_shade)
        return rgb, label, instance, describe_scene(scene, label, visible)

    def _noise(self, rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
        """Smooth value noise (H, W) float32: a (rows, cols) Gaussian grid upsampled
        bilinearly. Plain gathers, no BLAS, so results never depend on BLAS threads."""
        grid = rng.standard_normal((rows, cols), dtype=np.float32)
        x_low, x_frac = self._lerp(self.width, cols)
        y_low, y_frac = self._lerp(self.height, rows)
        wide = grid[:, x_low] * (1.0 - x_frac) + grid[:, x_low + 1] * x_frac  # (rows, W)
        return wide[y_low] * (1.0 - y_frac)[:, None] + wide[y_low + 1] * y_frac[:, None]

    def _lerp(self, n_out: int, n_grid: int) -> tuple[np.ndarray, np.ndarray]:
        """Left grid index (n_out,) int64 and weight of the right one (n_out,) float32 for
        bilinear upsampling of `n_grid` points to `n_out` pixels, cached per size."""
        if (n_out, n_grid) not in self._interp:
            pos = (np.arange(n_out) + 0.5) / n_out * (n_grid - 1)
            low = np.minimum(pos.astype(np.int64), n_grid - 2)
            self._interp[(n_out, n_grid)] = (low, (pos - low).astype(np.float32))
        return self._interp[(n_out, n_grid)]

    def _colour(
        self,
        scene: Scene,
        colours: tuple[str, ...],
        rng: np.random.Generator,
        label: np.ndarray,
        instance: np.ndarray,
        shade: np.ndarray,
        mountain_shade: np.ndarray,
    ) -> np.ndarray:
        """Shade the label and instance maps (H, W) into RGB (H, W, 3) in [0, 1]; instance k
        has colour `colours[k - 1]`."""
        height, width = label.shape
        base, gradient = colour_tables(scene, colours)
        index = np.where(instance > 0, self.num_labels + instance, label)  # (H, W)
        rows = (np.arange(height, dtype=np.float32) + 0.5) / height - 0.5  # (H,)
        per_row = base[None] + gradient[None] * rows[:, None, None]  # (H, L + K + 1, 3)
        flat = index + np.arange(height)[:, None] * len(base)  # (H, W) into per_row rows
        rgb = np.take(per_row.reshape(-1, 3), flat, axis=0)  # (H, W, 3)
        low, mid, streak, sigma = texture_table(self.num_labels, len(colours))
        aspect = width / height
        texture = np.take(low, index) * self._noise(rng, 4, max(2, round(4 * aspect)))
        texture += np.take(mid, index) * self._noise(rng, 12, max(2, round(12 * aspect)))
        texture += np.take(streak, index) * self._noise(rng, 5, max(2, round(48 * aspect)))
        water = label == WATER
        if water.any():
            y = np.arange(height, dtype=np.float32)[:, None] / height
            ripples = np.sin(2 * math.pi * 36 * y + 3.0 * self._noise(rng, 6, 6))
            texture += np.where(water, 0.10 * ripples, 0.0).astype(np.float32)
        mountain = (label == MOUNTAIN) | (label == SNOW)
        factor = (1.0 + texture) * shade * np.where(mountain, mountain_shade, 1.0)
        rgb *= factor[..., None]
        # uniform pixel noise in [-sqrt(3), sqrt(3)] * sigma: standard deviation sigma
        noise = rng.random(rgb.shape, dtype=np.float32) - np.float32(0.5)
        rgb += (np.take(sigma, index) * np.float32(2.0 * math.sqrt(3.0)))[..., None] * noise
        if scene.night:
            add_stars(rng, rgb, label)
        return np.clip(rgb, 0.0, 1.0, out=rgb)


def sample_scene(rng: np.random.Generator, aspect: float) -> Scene:
    """Draw a scene for an image of aspect ratio `aspect` = W / H."""
    layout = LAYOUTS[int(rng.integers(len(LAYOUTS)))]
    night = bool(rng.random() < 0.5)
    flat = layout == "beach"  # the sea horizon is flat
    horizon = (
        float(rng.uniform(0.35, 0.52)),
        0.0 if flat else float(rng.uniform(0.0, 0.03)),
        float(rng.uniform(0.5, 2.0)),
        float(rng.uniform(0.0, 2 * math.pi)),
    )
    water = None
    if layout == "beach":
        water = (horizon[0], horizon[0] + float(rng.uniform(0.14, 0.28)), 0.02)
    elif layout == "lake":
        top = horizon[0] + float(rng.uniform(0.04, 0.10))
        water = (top, top + float(rng.uniform(0.12, 0.22)), 0.015)
    ridge, snowline = None, None
    if layout in ("valley", "canyon"):
        knots = int(rng.integers(5, 9))
        heights = rng.uniform(0.08, 0.28, knots) * np.where(np.arange(knots) % 2, 0.45, 1.0)
        ridge = (tuple(np.linspace(0.0, 1.0, knots)), tuple(float(h) for h in heights))
        if layout == "valley" and rng.random() < 0.6:
            snowline = horizon[0] - float(heights.max() * rng.uniform(0.6, 0.78))
    clouds = () if night else sample_clouds(rng, aspect, horizon[0])
    objects = sample_objects(rng, aspect)
    angle = float(rng.uniform(-0.75 * math.pi, -0.25 * math.pi))  # light from above
    jitter = tuple(float(j) for j in rng.uniform(0.9, 1.1, 3 * len(BACKGROUND_NAMES)))
    return Scene(
        layout=layout,
        night=night,
        horizon=horizon,
        water=water,
        ridge=ridge,
        snowline=snowline,
        clouds=clouds,
        objects=objects,
        light=(math.cos(angle), math.sin(angle)),
        jitter=jitter,
    )


def sample_clouds(
    rng: np.random.Generator, aspect: float, horizon: float
) -> tuple[tuple[float, float, float, float], ...]:
    """0-3 clouds of three elliptic puffs each, above the horizon."""
    puffs = []
    for _ in range(int(rng.integers(0, 4))):
        x, y = rng.uniform(0.0, aspect), rng.uniform(0.06, max(0.07, horizon - 0.14))
        size = rng.uniform(0.04, 0.08)
        for dx in (-1.0, 0.0, 1.0):
            rx = size * (1.3 if dx == 0 else rng.uniform(0.8, 1.0))
            puffs.append((float(x + dx * size), float(y + rng.uniform(-0.01, 0.01)), rx, rx * 0.55))
    return tuple(puffs)


def sample_objects(rng: np.random.Generator, aspect: float) -> tuple[SceneObject, ...]:
    """2-5 objects; a new one may overlap an earlier one but never hide most of it."""
    names, probs = list(SIZES), [p for p, _ in SIZES.values()]
    scale = min(1.0, aspect)
    placed: list[SceneObject] = []
    for _ in range(int(rng.integers(2, 6))):
        shape = SHAPES[int(rng.integers(len(SHAPES)))]
        colour = list(COLOURS)[int(rng.integers(len(COLOURS)))]
        size = names[int(rng.choice(len(names), p=probs))]
        radius = float(rng.uniform(*SIZES[size][1])) * scale
        angle = float(rng.uniform(-0.17, 0.17))
        for _ in range(12):  # rejection sampling of the centre
            x = float(rng.uniform(radius, aspect - radius))
            y = float(rng.uniform(radius + 0.02, 1.0 - radius))
            if all(
                math.hypot(x - o.x, y - o.y) >= max(radius, o.radius) + 0.25 * min(radius, o.radius)
                for o in placed
            ):
                placed.append(SceneObject(shape, colour, size, x, y, radius, angle))
                break
    return tuple(placed)


def paint_background(scene: Scene, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Label map (H, W) int64 of the background, and a (1, W) shading of mountain faces."""
    y = ((np.arange(height, dtype=np.float32) + 0.5) / height)[:, None]  # (H, 1)
    x = ((np.arange(width, dtype=np.float32) + 0.5) / width)[None, :]  # (1, W) in [0, 1]
    label = np.full((height, width), NIGHT_SKY if scene.night else SKY, dtype=np.int64)
    paint_ellipses(label, scene.clouds, CLOUD, where=SKY)
    mean, amplitude, frequency, phase = scene.horizon
    horizon = mean + amplitude * np.sin(2 * math.pi * frequency * x + phase)  # (1, W)
    mountain_shade = np.ones((1, width), dtype=np.float32)
    if scene.ridge is not None:
        ridge = mean - np.interp(x, scene.ridge[0], scene.ridge[1]).astype(np.float32)
        label[y > ridge] = MOUNTAIN
        if scene.snowline is not None:
            label[(y > ridge) & (y < scene.snowline)] = SNOW
        slope = np.gradient(ridge[0]) * width  # dy/dx of the ridge, in heights per width
        lit = np.sign(scene.light[0]) * np.tanh(4.0 * slope)  # faces towards the light
        mountain_shade = (1.0 + 0.2 * lit)[None, :].astype(np.float32)
    ground = SAND if scene.layout in ("desert", "beach", "canyon") else GRASS
    label[y > horizon] = ground
    if scene.water is not None:
        top, bottom, wave = scene.water
        shore = bottom + wave * np.sin(2 * math.pi * 3.0 * x + phase)
        label[(y > np.maximum(top, horizon)) & (y < shore)] = WATER
    return label, mountain_shade


def paint_ellipses(
    label: np.ndarray,
    ellipses: tuple[tuple[float, float, float, float], ...],
    value: int,
    where: int,
) -> None:
    """Set `label` (H, W) to `value` inside axis-aligned ellipses where it equals `where`."""
    height, width = label.shape
    for cx, cy, rx, ry in ellipses:
        (y0, y1), (x0, x1) = crop(cy, ry, height, height), crop(cx, rx, height, width)
        if y0 >= y1 or x0 >= x1:
            continue
        dy = ((np.arange(y0, y1) + 0.5) / height - cy)[:, None] / ry
        dx = ((np.arange(x0, x1) + 0.5) / height - cx)[None, :] / rx
        window = label[y0:y1, x0:x1]
        window[(dx * dx + dy * dy <= 1.0) & (window == where)] = value


def crop(centre: float, radius: float, scale: int, size: int) -> tuple[int, int]:
    """Pixel range [start, stop) covering centre +- radius (height units) on an axis."""
    start = max(0, math.floor((centre - 1.05 * radius) * scale) - 1)
    return start, min(size, math.ceil((centre + 1.05 * radius) * scale) + 1)


def paint_objects(scene: Scene, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Paint objects in order over `label` (H, W) in place (later ones occlude earlier
    ones); returns the instance map (H, W) int64 and a lighting factor (H, W) float32."""
    height, width = label.shape
    instance = np.zeros((height, width), dtype=np.int64)
    shade = np.ones((height, width), dtype=np.float32)
    for k, obj in enumerate(scene.objects, start=1):
        (y0, y1), (x0, x1) = (
            crop(obj.y, obj.radius, height, height),
            crop(obj.x, obj.radius, height, width),
        )
        if y0 >= y1 or x0 >= x1:
            continue
        dy = ((np.arange(y0, y1, dtype=np.float32) + 0.5) / height - obj.y)[:, None] / obj.radius
        dx = ((np.arange(x0, x1, dtype=np.float32) + 0.5) / height - obj.x)[None, :] / obj.radius
        cos, sin = math.cos(obj.angle), math.sin(obj.angle)
        mask = shape_mask(obj.shape, cos * dx + sin * dy, cos * dy - sin * dx)
        lighting = 1.0 + 0.22 * (dx * scene.light[0] + dy * scene.light[1])
        label[y0:y1, x0:x1][mask] = len(BACKGROUND_NAMES) + SHAPES.index(obj.shape)
        instance[y0:y1, x0:x1][mask] = k
        shade[y0:y1, x0:x1][mask] = np.broadcast_to(lighting, mask.shape)[mask]
    return instance, shade


def shape_mask(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Inside-test of a shape of circumradius 1 at the origin; u right, v down (broadcast)."""
    if shape == "circle":
        return u * u + v * v <= 1.0
    if shape == "ring":
        r2 = u * u + v * v
        return (r2 <= 1.0) & (r2 >= 0.3)
    if shape == "square":
        return (np.abs(u) <= 0.72) & (np.abs(v) <= 0.72)
    if shape == "diamond":
        return np.abs(u) / 0.62 + np.abs(v) <= 1.0
    if shape == "cross":
        au, av = np.abs(u), np.abs(v)
        return ((au <= 0.3) & (av <= 0.95)) | ((av <= 0.3) & (au <= 0.95))
    if shape == "triangle":
        return triangle(u, v, 1.0)
    if shape == "star":  # hexagram: two overlapping triangles
        return triangle(u, v, 1.0) | triangle(u, v, -1.0)
    raise ValueError(f"unknown shape {shape!r}; valid: {', '.join(SHAPES)}")


def triangle(u: np.ndarray, v: np.ndarray, up: float) -> np.ndarray:
    """Equilateral triangle of circumradius 1 pointing up (up=1) or down (up=-1)."""
    v = v * up
    half = math.sqrt(3.0) / 2.0
    # edges from the apex (0, -1) to the base corners (+-half, 0.5): inside if below both
    return (v <= 0.5) & (1.5 * np.abs(u) - half * v <= half)


def visible_objects(
    scene: Scene, instance: np.ndarray
) -> tuple[np.ndarray, tuple[VisibleObject, ...]]:
    """Drop objects with no visible pixel, renumber instances 1..K, measure what is seen."""
    height, width = instance.shape
    k = len(scene.objects)
    flat = instance.ravel()
    counts = np.bincount(flat, minlength=k + 1)
    rows = np.bincount(flat, weights=np.repeat(np.arange(height), width), minlength=k + 1)
    cols = np.bincount(flat, weights=np.tile(np.arange(width), height), minlength=k + 1)
    kept = [i for i in range(1, k + 1) if counts[i] > 0]
    if len(kept) < k:
        remap = np.zeros(k + 1, dtype=np.int64)
        remap[kept] = np.arange(1, len(kept) + 1)
        instance = remap[instance]
    visible = tuple(
        VisibleObject(
            new,
            scene.objects[old - 1].shape,
            scene.objects[old - 1].colour,
            scene.objects[old - 1].size,
            int(counts[old]),
            (float(cols[old] / counts[old]) + 0.5, float(rows[old] / counts[old]) + 0.5),
        )
        for new, old in enumerate(kept, start=1)
    )
    return instance, visible


def describe_scene(
    scene: Scene, label: np.ndarray, visible: tuple[VisibleObject, ...]
) -> SceneInfo:
    """Scene class, attributes and caption from what is visible in the rendered sample."""
    present = np.bincount(label.ravel(), minlength=len(SyntheticScenes.label_names)) > 0
    attributes = (
        scene.night,
        bool(present[WATER]),
        bool(present[MOUNTAIN] or present[SNOW]),
        any(o.colour == "red" for o in visible),
        any(o.size == "large" for o in visible),
        any(o.shape == "circle" for o in visible),
    )
    scene_class = 2 * LAYOUTS.index(scene.layout) + int(scene.night)
    return SceneInfo(
        scene,
        scene_class,
        visible,
        tuple(float(a) for a in attributes),
        caption_for(scene, visible),
    )


def caption_for(scene: Scene, visible: tuple[VisibleObject, ...]) -> str:
    """'a <size> <colour> <shape> [<relation> a <size> <colour> <shape>] <place> <time>'
    naming the two objects with the most visible pixels, the larger first."""
    ranked = sorted(visible, key=lambda o: (-o.pixels, o.instance))[:2]
    phrases = [f"a {o.size} {o.colour} {o.shape}" for o in ranked]
    if len(ranked) == 2:
        (x1, y1), (x2, y2) = ranked[0].centroid, ranked[1].centroid
        if abs(x1 - x2) >= abs(y1 - y2):
            relation = "left of" if x1 < x2 else "right of"
        else:
            relation = "above" if y1 < y2 else "below"
        phrases.insert(1, relation)
    time = "at night" if scene.night else "by day"
    return " ".join([*phrases, PLACES[scene.layout], time])


def colour_tables(scene: Scene, colours: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Base colour and vertical gradient (L + K + 1, 3) float32, indexed by the label for
    background pixels and by num_labels + instance for object pixels."""
    num_labels = len(SyntheticScenes.label_names)
    base = np.zeros((num_labels + len(colours) + 1, 3), dtype=np.float32)
    gradient = np.zeros_like(base)
    jitter = np.asarray(scene.jitter, dtype=np.float32).reshape(-1, 3)
    for lab, (rgb, grad) in BACKGROUND_COLOURS.items():
        base[lab], gradient[lab] = np.asarray(rgb) * jitter[lab], grad
    for i, colour in enumerate(colours, start=num_labels + 1):
        base[i] = COLOURS[colour]
    if scene.night:  # darker and bluer, except the night sky itself
        night = np.ones(len(base), dtype=bool)
        night[NIGHT_SKY] = False
        base[night] = base[night] * 0.32 + np.asarray([0.01, 0.02, 0.07], dtype=np.float32)
        base[num_labels:] = base[num_labels:] * 1.6  # objects stay brighter than ground
        gradient[night] *= 0.3
    return base, gradient


def texture_table(num_labels: int, k: int) -> np.ndarray:
    """Texture amplitudes (4, L + K + 1) float32: low, mid, streak, pixel noise."""
    table = np.tile(np.asarray(OBJECT_TEXTURE, dtype=np.float32)[:, None], (1, num_labels + k + 1))
    for lab, amps in TEXTURE.items():
        table[:, lab] = amps
    return table


def add_stars(rng: np.random.Generator, rgb: np.ndarray, label: np.ndarray) -> None:
    """Sprinkle single-pixel stars over night-sky pixels of `rgb` (H, W, 3) in place."""
    height, width = label.shape
    count = max(1, height * width // 400)
    ys = rng.integers(0, height, count)
    xs = rng.integers(0, width, count)
    keep = label[ys, xs] == NIGHT_SKY
    rgb[ys[keep], xs[keep]] += rng.uniform(0.3, 0.8, (int(keep.sum()), 1)).astype(np.float32)
