"""Embedded, procedurally generated default datasets: one labelled object per image on clutter.

Every image holds exactly one object, drawn at a random position, scale and rotation on a
cluttered background (smooth colour noise, gradients, thin line segments) with small distractors.
Two labelling rules (``SyntheticConfig.label_by``):

- ``"shape"``: the class is the object's SHAPE (disc, square, star, ...); colour and texture are
  random. A tiny ViT trained from scratch learns this slowly (see the calibration notebook).
- ``"colour"``: the class is the object's HUE (10 hue bands); its shape is random. Smaller
  *confusers* -- objects coloured like other classes -- sit elsewhere in the image, so the label is
  the colour of the main object, not the image's dominant colour.

Either way the label lives in one region and everything else is noise: a model whose [CLS]
attention concentrates on the object should generalize better than one that spreads attention over
the clutter -- the inductive bias (low spatial entropy) under test. Object pixel masks are
returned so attention maps can be scored as segmentations.

Nothing is ever downloaded. Generation is seeded and deterministic (numpy SeedSequence
streams; PIL rasterization), and results are cached on disk, written atomically.
"""

from __future__ import annotations

import colorsys
import dataclasses
import hashlib
import json
import math
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from ...utils.files import atomic_write, human_bytes, sarlib_cache
from ...utils.memory import physical_memory

__all__ = [
    "check_fits",
    "GENERATOR_VERSION",
    "SHAPE_NAMES",
    "SYNTHETIC_PRESETS",
    "SyntheticConfig",
    "SyntheticObjects",
    "generate",
    "make_preview",
    "normalize_uint8",
    "resolve_config",
]

# Bump whenever drawing code changes, so stale on-disk caches are not reused.
GENERATOR_VERSION = 3

_SPLIT_KEYS = {"train": 0, "test": 1}

Polygon = np.ndarray  # (K, 2) float64 vertices in unit-circle coordinates, y pointing down
Shape = list[tuple[Polygon, bool]]  # drawn in order; False = cut a hole


def _regular(n: int, radius: float = 1.0, phase_deg: float = -90.0,
             center: tuple[float, float] = (0.0, 0.0)) -> Polygon:
    t = np.deg2rad(phase_deg) + 2 * np.pi * np.arange(n) / n
    return np.stack([center[0] + radius * np.cos(t), center[1] + radius * np.sin(t)], axis=1)


def _rect(x0: float, y0: float, x1: float, y1: float) -> Polygon:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)


def _star(points: int, inner: float) -> Polygon:
    radii = np.where(np.arange(2 * points) % 2 == 0, 1.0, inner)
    t = np.deg2rad(-90.0) + np.pi * np.arange(2 * points) / points
    return np.stack([radii * np.cos(t), radii * np.sin(t)], axis=1)


def _normalize(shape: Shape) -> Shape:
    """Centre on the bounding box and fit in the unit circle, so `scale` means the same
    thing (bounding-circle diameter) for every class and rotation never leaves the frame."""
    pts = np.concatenate([p for p, fill in shape if fill])  # holes never extend the outline
    center = (pts.min(axis=0) + pts.max(axis=0)) / 2
    radius = np.linalg.norm(pts - center, axis=1).max()
    return [((p - center) / radius, fill) for p, fill in shape]


# Bars are ~30% of the object's extent thick, so every class keeps a visible hole, arm or
# notch at the smallest size (0.35 * 32 px ~ 11 px) and stays distinct under any rotation.
# Mirror-image pairs and rotation-equivalent pairs (plus vs X) are deliberately absent.
_SHAPES: dict[str, Shape] = {
    name: _normalize(shape)
    for name, shape in {
        "disc": [(_regular(64), True)],
        "square": [(_rect(-1, -1, 1, 1), True)],
        "triangle": [(_regular(3), True)],
        "plus": [(_rect(-1, -0.3, 1, 0.3), True), (_rect(-0.3, -1, 0.3, 1), True)],
        "ring": [(_regular(64), True), (_regular(64, 0.55), False)],
        "star": [(_star(5, 0.45), True)],
        "L": [(_rect(-0.7, -1, -0.1, 1), True), (_rect(-0.7, 0.4, 0.7, 1), True)],
        "H": [(_rect(-0.9, -1, -0.35, 1), True), (_rect(0.35, -1, 0.9, 1), True),
              (_rect(-0.9, -0.25, 0.9, 0.25), True)],
        "T": [(_rect(-1, -1, 1, -0.4), True), (_rect(-0.3, -1, 0.3, 1), True)],
        "crescent": [(_regular(64), True), (_regular(64, 0.85, center=(0.45, 0.0)), False)],
        "arrow": [(_rect(-0.22, -0.1, 0.22, 1), True),
                  (np.array([[-0.8, 0.05], [0.8, 0.05], [0.0, -1.0]]), True)],
        "U": [(_rect(-0.9, -1, -0.35, 1), True), (_rect(0.35, -1, 0.9, 1), True),
              (_rect(-0.9, 0.45, 0.9, 1), True)],
    }.items()
}
SHAPE_NAMES: tuple[str, ...] = tuple(_SHAPES)


@dataclass(frozen=True)
class SyntheticConfig:
    num_train: int
    num_test: int
    img_size: int = 32  # square images; must be >= 16
    num_classes: int = 10
    min_scale: float = 0.35  # object bounding-circle diameter as a fraction of img_size
    max_scale: float = 0.6
    num_distractors: int = 4
    clutter: float = 0.5  # 0 = plain background, 1 = heavy clutter
    max_rotation: float = 180.0  # object rotation drawn uniformly in +-max_rotation degrees
    label_by: str = "shape"  # "shape": class = the object's shape; "colour": class = its hue band
    num_confusers: int = 0  # smaller objects in other classes' colours (label_by="colour")
    seed: int = 0

    def __post_init__(self) -> None:
        if self.num_train < 0 or self.num_test < 0:
            raise ValueError("num_train and num_test must be >= 0")
        if self.img_size < 16:
            raise ValueError(f"img_size must be >= 16, got {self.img_size}")
        if not 2 <= self.num_classes <= len(SHAPE_NAMES):
            raise ValueError(
                f"num_classes must be between 2 and {len(SHAPE_NAMES)} (the number of "
                f"implemented shapes: {', '.join(SHAPE_NAMES)}), got {self.num_classes}")
        if not 0 < self.min_scale <= self.max_scale <= 1:
            raise ValueError("need 0 < min_scale <= max_scale <= 1, got "
                             f"min_scale={self.min_scale}, max_scale={self.max_scale}")
        if self.num_distractors < 0:
            raise ValueError("num_distractors must be >= 0")
        if not 0 <= self.clutter <= 1:
            raise ValueError(f"clutter must be in [0, 1], got {self.clutter}")
        if not 0 <= self.max_rotation <= 180:
            raise ValueError(f"max_rotation must be in [0, 180] degrees, got {self.max_rotation}")
        if self.seed < 0:
            raise ValueError("seed must be >= 0 (numpy SeedSequence entropy)")
        if self.label_by not in ("shape", "colour"):
            raise ValueError(f"label_by must be 'shape' or 'colour', got {self.label_by!r}")
        if self.num_confusers < 0 or (self.num_confusers and self.label_by != "colour"):
            raise ValueError("num_confusers must be >= 0, and only label_by='colour' draws confusers")

    @property
    def classes(self) -> list[str]:
        if self.label_by == "colour":
            return [f"hue{k * 360 // self.num_classes:03d}" for k in range(self.num_classes)]
        return list(SHAPE_NAMES[: self.num_classes])


SYNTHETIC_PRESETS: dict[str, SyntheticConfig] = {
    "synthetic-tiny": SyntheticConfig(num_train=200, num_test=100),
    # colour-labelled sets with confusers: the cpu profile's calibrated task (see the calibration notebook)
    "synthetic-colour-tiny": SyntheticConfig(num_train=200, num_test=100, label_by="colour", num_confusers=2),
    "synthetic-colour-1k": SyntheticConfig(num_train=1000, num_test=1000, label_by="colour", num_confusers=2),
    "synthetic-colour-2k": SyntheticConfig(num_train=2000, num_test=1000, label_by="colour", num_confusers=2),
    "synthetic-1k": SyntheticConfig(num_train=1000, num_test=1000),
    "synthetic-5k": SyntheticConfig(num_train=5000, num_test=1000),
    "synthetic-20k": SyntheticConfig(num_train=20000, num_test=2000),
}


def resolve_config(config: str | SyntheticConfig) -> SyntheticConfig:
    if isinstance(config, SyntheticConfig):
        return config
    try:
        return SYNTHETIC_PRESETS[config]
    except KeyError:
        raise ValueError(f"unknown synthetic preset {config!r}; known presets: "
                         f"{', '.join(sorted(SYNTHETIC_PRESETS))}") from None


def _check_split(split: str) -> None:
    if split not in _SPLIT_KEYS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")


# ----------------------------------------------------------------------------- drawing


def _supersampling(img_size: int) -> int:
    # 4x anti-aliasing is affordable at small sizes; at >= 64 px 2x keeps generation fast.
    return 4 if img_size < 64 else 2


def _xy(points: np.ndarray) -> list[float]:
    # Quantizing to 1/16 px makes PIL's integer rounding immune to last-bit differences in
    # libm sin/cos between machines, which keeps the output bit-identical everywhere.
    return (np.round(points * 16.0) / 16.0).ravel().tolist()


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(0, 255, size=3)


def _random_fill(rng: np.random.Generator) -> tuple[int, ...]:
    return tuple(rng.integers(0, 256, size=3).tolist())


def _background(rng: np.random.Generator, size: int, ss: int, clutter: float) -> Image.Image:
    """Smooth noise plus a linear colour gradient, built on a tiny grid and upsampled in one
    resize: bicubic interpolation reproduces the gradient and smooths the noise. It is smooth
    at the final resolution already, so supersampling it would only cost time."""
    k = int(rng.integers(3, 7))
    base = _random_colour(rng)
    direction = rng.uniform(0, 2 * np.pi)
    g = np.linspace(-1, 1, k)
    t = np.cos(direction) * g[None, :] + np.sin(direction) * g[:, None]
    gradient = t[..., None] * (rng.uniform(-1, 1, size=3) * 90.0)
    noise = rng.normal(0.0, 45.0, size=(k, k, 3))
    grid = base + clutter * (gradient + noise)
    grid = np.clip(np.round(grid), 0, 255).astype(np.uint8)
    small = Image.fromarray(grid, "RGB").resize((size, size), Image.BICUBIC)
    return small.resize((size * ss, size * ss), Image.NEAREST)


_LUMA = np.array([0.299, 0.587, 0.114])


def _far_colour(rng: np.random.Generator, reference: np.ndarray) -> np.ndarray:
    """A uniform random colour, redrawn until it differs from `reference` in both RGB and
    brightness. The acceptance test never looks at the label, so colour stays uninformative
    while the object stays visible (RGB distance alone passes e.g. yellow on pale green)."""
    best, best_score = reference, -1.0
    for _ in range(16):
        c = _random_colour(rng)
        score = min(math.dist(c, reference) / 120.0, abs(float((c - reference) @ _LUMA)) / 40.0)
        if score >= 1.0:
            return c
        if score > best_score:
            best, best_score = c, score
    return best


def _texture(rng: np.random.Generator, width: int, height: int, ss: int, c1: np.ndarray,
             c2: np.ndarray, kind: str) -> Image.Image:
    period = rng.uniform(3.0, 4.5) * ss
    angle = rng.uniform(0, np.pi)
    cos, sin = math.cos(angle) / period, math.sin(angle) / period
    xs = np.arange(width, dtype=np.float32)[None, :]
    ys = np.arange(height, dtype=np.float32)[:, None]
    parity = np.floor(xs * cos + ys * sin).astype(np.int32)
    if kind == "checker":
        parity += np.floor(ys * cos - xs * sin).astype(np.int32)
    palette = np.round(np.stack([c1, c2])).astype(np.uint8)
    return Image.fromarray(palette[parity & 1], "RGB")


def _draw_distractor(draw: ImageDraw.ImageDraw, rng: np.random.Generator, size: float,
                     ss: int, obj_x: float, obj_y: float, obj_r: float) -> None:
    # All distractors are much smaller than the smallest object, thin or irregular, so none
    # of them can pass for a class shape; colours are uniform like the object's, so a
    # salient colour never marks the object. One batched draw of uniforms per distractor
    # (plain-float maths below) keeps the per-image Python overhead low.
    u = rng.random(40).tolist()
    kind = int(u[0] * 3)
    colour = (int(u[1] * 256), int(u[2] * 256), int(u[3] * 256))
    lo, hi = {0: (0.08, 0.16), 1: (0.03, 0.055), 2: (0.06, 0.12)}[kind]
    extent = (lo + (hi - lo) * u[4]) * size
    # Rejection sampling from 8 candidate centres: it may touch the object's rim, not cover it.
    for j in range(5, 21, 2):
        cx = extent + (size - 2 * extent) * u[j]
        cy = extent + (size - 2 * extent) * u[j + 1]
        if math.hypot(cx - obj_x, cy - obj_y) >= obj_r + 0.5 * extent:
            break
    else:
        return
    if kind == 0:  # short stroke or bent 2-segment scribble, 1 px wide
        n = 2 + int(u[21] * 2)
        pts = [(cx + extent * (2 * u[22 + 2 * i] - 1), cy + extent * (2 * u[23 + 2 * i] - 1))
               for i in range(n)]
        draw.line(_xy(np.array(pts)), fill=colour, width=ss)
    elif kind == 1:  # dot, 1-2 px across
        draw.ellipse(_xy(np.array([[cx - extent, cy - extent], [cx + extent, cy + extent]])),
                     fill=colour)
    else:  # small irregular, non-convex blob
        n = 6 + int(u[21] * 4)
        angles = sorted(2 * math.pi * a for a in u[22:22 + n])
        radii = [extent * (0.3 + 0.7 * r) for r in u[31:31 + n]]
        pts = [(cx + r * math.cos(a), cy + r * math.sin(a)) for a, r in zip(angles, radii)]
        draw.polygon(_xy(np.array(pts)), fill=colour)


def _shape_mask(name: str, center: np.ndarray, radius: float, angle: float, big: int, ss: int) -> Image.Image:
    """The supersampled 'L' mask of one rotated, scaled shape."""
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    mask = Image.new("L", (big, big), 0)
    mask_draw = ImageDraw.Draw(mask)
    for poly, fill in _SHAPES[name]:
        pts = (poly @ rot.T) * (radius * ss) + center * ss
        mask_draw.polygon(_xy(pts), fill=255 if fill else 0)
    return mask


def _paint_shape_object(canvas: Image.Image, rng: np.random.Generator, label: int, center: np.ndarray,
                        radius: float, angle: float, big: int, ss: int) -> Image.Image:
    """label_by="shape": the class's shape in a random colour far from the local background, solid or
    textured. Drawn last so it occludes clutter and its mask is exactly what is visible."""
    obj = _shape_mask(SHAPE_NAMES[label], center, radius, angle, big, ss)
    box = tuple(int(v) for v in np.concatenate([np.floor((center - radius) * ss),
                                                np.ceil((center + radius) * ss)]).clip(0, big))
    local = np.asarray(canvas.crop(box))[::ss, ::ss].reshape(-1, 3).mean(axis=0)
    c1 = _far_colour(rng, local)
    style = ("solid", "solid", "stripes", "checker")[int(rng.integers(4))]
    if style == "solid":
        canvas.paste(tuple(int(v) for v in np.round(c1)), None, obj)
    else:
        # A mild second colour: texture must not cut the silhouette into fragments.
        c2 = c1 + 0.4 * (_random_colour(rng) - c1)
        if math.dist(c2, local) < 70.0:  # a texture half that vanishes breaks the shape
            c2 = c1 + 0.6 * (c1 - local)
        c2 = np.clip(c2, 0, 255)
        tex = _texture(rng, box[2] - box[0], box[3] - box[1], ss, c1, c2, style)
        canvas.paste(tex, box, obj.crop(box))
    return obj


def _hue_colour(rng: np.random.Generator, label: int, num_classes: int) -> np.ndarray:
    """An RGB colour in hue band `label`: the band's centre +-20% of the band spacing, saturated and
    bright enough that the band is visible on any background."""
    hue = ((label + rng.uniform(-0.2, 0.2)) / num_classes) % 1.0
    return np.array(colorsys.hsv_to_rgb(hue, rng.uniform(0.6, 1.0), rng.uniform(0.6, 1.0))) * 255.0


# Confusers are 12-20% of the image across: always smaller than the smallest legal object (35%).
_CONFUSER_SCALE = (0.12, 0.2)


def _draw_confuser(canvas: Image.Image, rng: np.random.Generator, cfg: SyntheticConfig, label: int,
                   obj_center: np.ndarray, obj_radius: float) -> None:
    """A small random shape in ANOTHER class's hue, placed clear of the object (8 tries, else skipped)."""
    s, ss = cfg.img_size, _supersampling(cfg.img_size)
    radius = rng.uniform(*_CONFUSER_SCALE) * s / 2
    other = (label + 1 + int(rng.integers(cfg.num_classes - 1))) % cfg.num_classes
    shape = SHAPE_NAMES[int(rng.integers(len(SHAPE_NAMES)))]
    angle = math.radians(cfg.max_rotation) * rng.uniform(-1.0, 1.0)
    colour = tuple(int(v) for v in np.round(_hue_colour(rng, other, cfg.num_classes)))
    for _ in range(8):
        center = rng.uniform(radius + 0.5, s - radius - 0.5, size=2)
        if math.dist(center, obj_center) >= obj_radius + radius:
            canvas.paste(colour, None, _shape_mask(shape, center, radius, angle, s * ss, ss))
            return


def _render_one(rng: np.random.Generator, cfg: SyntheticConfig, label: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """One (S,S,3) uint8 image and its (S,S) bool object mask."""
    s, ss = cfg.img_size, _supersampling(cfg.img_size)
    big = s * ss

    canvas = _background(rng, s, ss, cfg.clutter)
    draw = ImageDraw.Draw(canvas)

    radius = rng.uniform(cfg.min_scale, cfg.max_scale) * s / 2
    margin = radius + 0.5
    center = rng.uniform(margin, s - margin, size=2) if s - margin > margin else np.full(2, s / 2)
    angle = math.radians(cfg.max_rotation) * rng.uniform(-1.0, 1.0)

    n_lines = int(round(cfg.clutter * rng.uniform(1, 8)))
    for _ in range(n_lines):
        pts = rng.uniform(-0.1 * big, 1.1 * big, size=(2, 2))
        draw.line(_xy(pts), fill=_random_fill(rng), width=ss)
    for _ in range(cfg.num_distractors):
        _draw_distractor(draw, rng, big, ss, center[0] * ss, center[1] * ss, radius * ss)

    if cfg.label_by == "colour":
        for _ in range(cfg.num_confusers):
            _draw_confuser(canvas, rng, cfg, label, center, radius)
        # the class is the hue; the shape carries no information
        obj = _shape_mask(SHAPE_NAMES[int(rng.integers(len(SHAPE_NAMES)))], center, radius, angle, big, ss)
        canvas.paste(tuple(int(v) for v in np.round(_hue_colour(rng, label, cfg.num_classes))), None, obj)
    else:
        obj = _paint_shape_object(canvas, rng, label, center, radius, angle, big, ss)

    image = np.asarray(canvas.reduce(ss))
    coverage = np.asarray(obj.reduce(ss))
    mask = coverage >= 128
    if not mask.any():  # cannot happen at legal scales; guarantees a non-empty mask anyway
        mask.flat[int(np.argmax(coverage))] = True
    return image, mask


def _add_grain(images: np.ndarray, rng: np.random.Generator, clutter: float,
               chunk: int = 1024) -> None:
    """In-place per-pixel noise so flat regions are never trivially clean; done in batched
    chunks because per-image noise calls would cost as much as drawing the image."""
    amp = int(round(14 * clutter))
    if amp == 0:
        return
    for start in range(0, len(images), chunk):
        block = images[start:start + chunk]
        noise = rng.integers(-amp, amp + 1, size=block.shape, dtype=np.int16)
        block[...] = np.clip(block.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def check_fits(cfg: SyntheticConfig, n: int) -> None:
    """Refuse, before allocating, a split whose arrays (uint8 images, bool masks) and one supersampled
    float64 render exceed this machine's memory."""
    s, ss = cfg.img_size, _supersampling(cfg.img_size)
    need = n * s * s * 4 + (s * ss) ** 2 * 3 * 8
    have = physical_memory()
    if have is not None and need > have:
        raise ValueError(f"{n} synthetic images of {s} px need at least {human_bytes(need)}, more than this "
                         f"machine's {human_bytes(have)}; choose a smaller --size or fewer images")


def generate(cfg: SyntheticConfig, split: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """images uint8 (N,3,S,S), labels int64 (N,), masks bool (N,S,S); N = num_train/num_test.

    Deterministic: identical cfg + split give bit-identical tensors. Train and test use
    disjoint SeedSequence streams (spawn key = split); each image draws from its own child
    stream, so one image's random draws never shift another's. Classes are balanced
    (label = i % num_classes, then shuffled).
    """
    _check_split(split)
    n = cfg.num_train if split == "train" else cfg.num_test
    check_fits(cfg, n)
    root = np.random.SeedSequence(entropy=cfg.seed, spawn_key=(_SPLIT_KEYS[split],))
    label_seq, image_seq, grain_seq = root.spawn(3)
    labels = np.random.default_rng(label_seq).permutation(np.arange(n) % cfg.num_classes)

    s = cfg.img_size
    images = np.empty((n, s, s, 3), dtype=np.uint8)
    masks = np.empty((n, s, s), dtype=bool)
    for i, child in enumerate(image_seq.spawn(n)):
        images[i], masks[i] = _render_one(np.random.default_rng(child), cfg, int(labels[i]))
    _add_grain(images, np.random.default_rng(grain_seq), cfg.clutter)
    return (torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))),
            torch.from_numpy(labels.astype(np.int64)),
            torch.from_numpy(masks))


# ----------------------------------------------------------------------------- caching


def _config_hash(cfg: SyntheticConfig) -> str:
    payload = {**dataclasses.asdict(cfg), "generator_version": GENERATOR_VERSION}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _default_cache_dir() -> Path:
    return sarlib_cache() / "synthetic"


def _cache_path(cache_dir: Path, cfg: SyntheticConfig, split: str) -> Path:
    name = next((k for k, v in SYNTHETIC_PRESETS.items() if v == cfg), "custom")
    return cache_dir / f"{name}-{split}-s{cfg.img_size}-{_config_hash(cfg)}.npz"


def _load_cache(path: Path, cfg: SyntheticConfig, split: str
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """Cached tensors, or None for a missing, truncated, corrupt or mismatched file."""
    n = cfg.num_train if split == "train" else cfg.num_test
    s = cfg.img_size
    try:
        with np.load(path, allow_pickle=False) as f:
            if str(f["config_hash"]) != _config_hash(cfg):
                return None
            images, labels, masks = f["images"], f["labels"], f["masks"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    if (images.shape != (n, 3, s, s) or images.dtype != np.uint8
            or labels.shape != (n,) or labels.dtype != np.int64
            or masks.shape != (n, s, s) or masks.dtype != np.bool_):
        return None
    return torch.from_numpy(images), torch.from_numpy(labels), torch.from_numpy(masks)


def _save_cache(path: Path, cfg: SyntheticConfig, images: torch.Tensor, labels: torch.Tensor,
                masks: torch.Tensor) -> None:
    # atomic: readers never see a half-written file, and concurrent writers of the same config simply race
    # to an identical result
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:  # a file object: np.savez would append .npz to a path
            np.savez(f, images=images.numpy(), labels=labels.numpy(), masks=masks.numpy(),
                     config_hash=np.array(_config_hash(cfg)))

    atomic_write(path, write)


def normalize_uint8(images: torch.Tensor) -> torch.Tensor:
    """uint8 pixels (..., 3, S, S) -> the float32 model input of every synthetic set, (x/255 - 0.5)/0.5."""
    return (images.float() / 255.0 - 0.5) / 0.5


class SyntheticObjects(torch.utils.data.Dataset):
    """The synthetic shapes dataset, generated once per (config, split) and cached on disk.

    Items are (image, label) or, with ``with_masks=True``, (image, label, mask); images are
    float32 (3,S,S) normalized as (x/255 - 0.5)/0.5, masks bool (S,S).
    """

    def __init__(self, config: str | SyntheticConfig = "synthetic-5k", split: str = "train", *,
                 cache_dir: str | os.PathLike[str] | None = None, with_masks: bool = False) -> None:
        self.config = resolve_config(config)
        _check_split(split)
        self.split = split
        self.with_masks = with_masks
        self.classes = self.config.classes
        self.num_classes = self.config.num_classes
        self.cache_path = _cache_path(
            Path(cache_dir) if cache_dir is not None else _default_cache_dir(), self.config, split)

        cached = _load_cache(self.cache_path, self.config, split)
        if cached is None:
            cached = generate(self.config, split)
            try:
                _save_cache(self.cache_path, self.config, *cached)
            except OSError:
                pass  # read-only or full disk: the in-memory data is still correct
        self.images, self.labels, self.masks = cached

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, index: int
                    ) -> tuple[torch.Tensor, int] | tuple[torch.Tensor, int, torch.Tensor]:
        image = normalize_uint8(self.images[index])
        label = int(self.labels[index])
        if self.with_masks:
            return image, label, self.masks[index]
        return image, label


# ----------------------------------------------------------------------------- preview


def make_preview(cfg: str | SyntheticConfig = "synthetic-tiny", split: str = "train", *,
                 rows: int = 8, cols: int = 8, cell: int = 96, show_masks: bool = False
                 ) -> Image.Image:
    """A grid of samples with their class names (for eyeballing; never used in training).

    With ``show_masks`` the mask outline is tinted onto each sample."""
    cfg = resolve_config(cfg)
    n = rows * cols
    cfg = dataclasses.replace(cfg, num_train=max(cfg.num_train, n), num_test=max(cfg.num_test, n))
    images, labels, masks = generate(cfg, split)
    font = ImageFont.load_default()
    text_h = 12
    grid = Image.new("RGB", (cols * cell, rows * (cell + text_h)), (255, 255, 255))
    draw = ImageDraw.Draw(grid)
    for k in range(n):
        img = images[k].permute(1, 2, 0).numpy().copy()
        if show_masks:
            img[masks[k].numpy()] = (0.5 * img[masks[k].numpy()] + [127, 0, 0]).astype(np.uint8)
        tile = Image.fromarray(img, "RGB").resize((cell, cell), Image.NEAREST)
        r, c = divmod(k, cols)
        grid.paste(tile, (c * cell, r * (cell + text_h) + text_h))
        draw.text((c * cell + 2, r * (cell + text_h)), cfg.classes[int(labels[k])],
                  fill=(0, 0, 0), font=font)
    return grid

