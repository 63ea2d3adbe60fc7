"""A tiny procedural world: coloured shapes on plain backgrounds, still or moving, with captions made from the scene.

It is the data of the embedded demo (a text-to-image model, two personalised variants and a motion module small enough
to train on a laptop CPU), so everything here is a pure function of its arguments: numpy + PIL, no torch, no clock,
no global random state. A `Scene` says what is drawn; `render` draws it at time t in [0, 1] (supersampled 4x and box-
filtered down, so edges are antialiased and sub-pixel motion shows); `caption` says it in words.

Geometry: (x, y) is the object's centre at t = 0, in [0, 1] image units, y growing downward.
  left / right / up / down  the centre moves by TRAVEL (half the image) over the clip, at constant speed;
  bouncing                  (x, y) is the floor; the centre rises by BOUNCE on |sin(2 pi t)| (two hops per clip);
  growing                   the centre stays; the scale goes 0.6 -> 1.4 linearly.
`sample_scenes` places the start so that the whole path stays inside the frame; `render` does not clamp.

Styles (the personalised domains):
  plain         the object's colour on the background's colour;
  neon          a near-black tint of the background, the object dim inside with a bright saturated outline and a
                blurred glow around it (a visual domain of its own: dark, saturated, haloed);
  checkerboard  the background is a checkerboard of its colour and a half-as-bright shade (cells of size // 8 px);
  striped       diagonal stripes of the background's colour and that shade (period size // 4 px);
  dotted        a grid of dots of that shade on the background's colour (period size // 4 px);
  patterned     the plain scene with the object filled with diagonal stripes of its colour and a half-as-bright
                shade (period size // 8 px): the base's own stripe texture, moved into the object.
The base model draws plain, striped and dotted scenes (textures of its own, so its motion module learns to move
objects over textured backgrounds and leave the texture still); neon, checkerboard and patterned are the personalised
models' domains, which neither the base nor its motion module ever sees. Patterned is the near one (the base's
scenes and texture, recombined), checkerboard the far one (a content the base never drew). (A pastel palette was
the near one first: no LoRA drew it, brightening every pixel being what an epsilon-predicting model with the usual
noise schedule draws worst; demo/NOTES.md, session 16.)
Captions: "a red circle on a blue background", "a red circle moving left on a blue background",
"a red circle bouncing on ...", "... growing on ...". The personalised domains name themselves so that a prompt can
ask for them (the usual trigger words of a DreamBooth / LoRA fine-tune): checkerboard -> "on a blue checkerboard
background", neon -> "..., neon style"; likewise "on a blue striped background", "on a blue dotted background".
Patterned has no word of its own (the base's vocabulary has none to spare): its LoRA draws every prompt's object
patterned, as a style LoRA merged into a checkpoint does.
The size is not captioned: it is free variation the model must learn.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from einops import reduce

from motion_core.errors import ConfigError

SHAPES = ("circle", "square", "triangle", "diamond")
COLOURS = {"red": (220, 40, 40), "green": (40, 190, 70), "blue": (50, 90, 230), "yellow": (240, 210, 40),
           "white": (245, 245, 245), "purple": (160, 60, 200)}  # every object colour is >= 80/255 from every
BACKGROUNDS = {"gray": (110, 110, 110), "blue": (30, 50, 120), "green": (30, 100, 50),  # background (and its
               "brown": (110, 75, 40)}  # checkerboard shade) in some channel, except the same name: never paired
SIZES = {"small": 0.11, "big": 0.18}  # the shape's half-extent, in image units, at scale 1
MOTIONS = ("left", "right", "up", "down", "bouncing", "growing")
STYLES = ("plain", "neon", "checkerboard", "striped", "dotted", "patterned")
TEXTURES = ("checkerboard", "striped", "dotted")  # styles named in the caption before "background"
TRAVEL = 0.5  # left / right / up / down: distance the centre moves over the clip (image units)
BOUNCE = 0.3  # bouncing: height of a hop
GROW = (0.6, 1.4)  # growing: scale at t = 0 and t = 1
SUPERSAMPLE = 4
_SHAPE_EXTENT = {"circle": 1.0, "square": 0.9, "triangle": 1.25, "diamond": 1.2}  # circumradius / half-extent
_DIRECTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
_MOTION_PHRASE = {"left": "moving left", "right": "moving right", "up": "moving up", "down": "moving down",
                  "bouncing": "bouncing", "growing": "growing"}


@dataclass(frozen=True)
class Scene:
    shape: str  # one of SHAPES
    colour: str  # the object's colour, a key of COLOURS
    background: str  # a key of BACKGROUNDS
    size: str  # a key of SIZES
    x: float  # centre at t = 0, image units in [0, 1], left to right
    y: float  # centre at t = 0, image units in [0, 1], top to bottom
    motion: str | None = None  # one of MOTIONS, or None for a still object
    style: str = "plain"  # one of STYLES

    def __post_init__(self):
        for name, value, allowed in (("shape", self.shape, SHAPES), ("colour", self.colour, tuple(COLOURS)),
                                     ("background", self.background, tuple(BACKGROUNDS)),
                                     ("size", self.size, tuple(SIZES)), ("motion", self.motion, (None, *MOTIONS)),
                                     ("style", self.style, STYLES)):
            if value not in allowed:
                raise ConfigError(f"Scene {name}={value!r} is not one of {allowed}")
        if not (0.0 <= self.x <= 1.0 and 0.0 <= self.y <= 1.0):
            raise ConfigError(f"Scene centre ({self.x}, {self.y}) must lie in [0, 1] x [0, 1]")


def pose(scene: Scene, t: float) -> tuple[float, float, float]:
    """(x, y, scale) of the object at time t in [0, 1]: the motion model, shared by `render` and the tests."""
    x, y, scale = scene.x, scene.y, 1.0
    if scene.motion in _DIRECTIONS:
        dx, dy = _DIRECTIONS[scene.motion]
        x, y = x + dx * TRAVEL * t, y + dy * TRAVEL * t
    elif scene.motion == "bouncing":
        y = y - BOUNCE * abs(np.sin(2 * np.pi * t))
    elif scene.motion == "growing":
        scale = GROW[0] + (GROW[1] - GROW[0]) * t
    return x, y, scale


def extent(scene: Scene) -> float:
    """The largest distance from the centre to the shape's outline over the clip, in image units."""
    scale = GROW[1] if scene.motion == "growing" else 1.0
    return SIZES[scene.size] * _SHAPE_EXTENT[scene.shape] * scale


def _shape_mask(shape: str, cx: float, cy: float, r: float, side: int) -> np.ndarray:
    """(side, side) float32 coverage in {0, 1} of `shape` centred at pixel (cx, cy) with half-extent r pixels."""
    from PIL import Image, ImageDraw
    image = Image.new("L", (side, side), 0)
    draw = ImageDraw.Draw(image)
    if shape == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
    elif shape == "square":
        h = r * _SHAPE_EXTENT["square"]
        draw.rectangle((cx - h, cy - h, cx + h, cy + h), fill=255)
    elif shape == "triangle":  # equilateral, pointing up, its centroid at the centre (so growing does not move it)
        R = r * _SHAPE_EXTENT["triangle"]
        angles = np.deg2rad([-90.0, 30.0, 150.0])
        draw.polygon([(cx + R * np.cos(a), cy + R * np.sin(a)) for a in angles], fill=255)
    else:  # diamond
        R = r * _SHAPE_EXTENT["diamond"]
        draw.polygon([(cx, cy - R), (cx + R, cy), (cx, cy + R), (cx - R, cy)], fill=255)
    return np.asarray(image, dtype=np.float32) / 255.0


def _background(scene: Scene, side: int, size: int) -> np.ndarray:
    """(side, side, 3) float32 background at the supersampled resolution, in 0..255."""
    colour = np.asarray(BACKGROUNDS[scene.background], dtype=np.float32)
    if scene.style == "neon":
        return np.broadcast_to(colour * 0.15, (side, side, 3)).copy()
    ii = np.arange(side)
    if scene.style == "checkerboard":
        cell = max(1, size // 8) * SUPERSAMPLE  # cells align with output pixels, so the downsampled board is crisp
        shade = ((ii[:, None] // cell + ii[None, :] // cell) % 2) == 1  # (side, side)
    elif scene.style == "striped":
        period = max(2, size // 4) * SUPERSAMPLE
        shade = (ii[:, None] + ii[None, :]) % period < period // 2
    elif scene.style == "dotted":
        period = max(2, size // 4) * SUPERSAMPLE
        u = (ii % period - (period - 1) / 2) / period  # offset from the nearest dot centre, in periods
        shade = u[:, None] ** 2 + u[None, :] ** 2 < 0.25 ** 2
    else:
        return np.broadcast_to(colour, (side, side, 3)).copy()
    return np.where(shade[..., None], colour * 0.5, colour).astype(np.float32)


def _fill(scene: Scene, side: int, size: int, cx: float, cy: float) -> np.ndarray:
    """(side, side, 3) float32 colour inside the object centred at pixel (cx, cy) (patterned: its colour striped
    with a half-as-bright shade, the stripes moving with the object)."""
    colour = np.asarray(COLOURS[scene.colour], np.float32)
    if scene.style != "patterned":
        return colour
    period = max(2, size // 8) * SUPERSAMPLE
    ii = np.arange(side)
    shade = np.floor(ii[:, None] - cy + ii[None, :] - cx) % period < period // 2
    return np.where(shade[..., None], colour * 0.5, colour).astype(np.float32)


def _neon_colour(rgb) -> np.ndarray:
    """The colour stretched to full saturation and brightness (white stays white)."""
    c = np.asarray(rgb, dtype=np.float32)
    spread = c.max() - c.min()
    return np.full(3, 255.0, np.float32) if spread < 30 else (c - c.min()) / spread * 255.0


def render(scene: Scene, size: int = 32, t: float = 0.0) -> np.ndarray:
    """(size, size, 3) uint8 image of `scene` at time t in [0, 1]."""
    from PIL import Image, ImageFilter
    if size < 8:
        raise ConfigError(f"size={size} is too small to draw a shape; use at least 8 px")
    if not 0.0 <= t <= 1.0:
        raise ConfigError(f"t={t} must lie in [0, 1] (0 = first frame, 1 = last)")
    side = size * SUPERSAMPLE
    x, y, scale = pose(scene, t)
    mask = _shape_mask(scene.shape, x * side, y * side, SIZES[scene.size] * scale * side, side)[..., None]
    image = _background(scene, side, size)  # (side, side, 3)
    if scene.style == "neon":
        neon = _neon_colour(COLOURS[scene.colour])
        pil = Image.fromarray(np.rint(mask[..., 0] * 255).astype(np.uint8))
        inner = np.asarray(pil.filter(ImageFilter.MinFilter(2 * SUPERSAMPLE + 1)), np.float32)[..., None] / 255
        outline = mask - inner  # a ring about 1 output pixel wide
        ring = Image.fromarray(np.rint(outline[..., 0] * 255).astype(np.uint8))
        glow = np.asarray(ring.filter(ImageFilter.GaussianBlur(1.5 * SUPERSAMPLE)), np.float32)[..., None] / 255
        image = image * (1 - mask) + 0.45 * neon * mask  # dim inside
        image = image * (1 - outline) + (0.8 * neon + 0.2 * 255) * outline  # bright, slightly whitened outline
        image = image + 1.5 * glow * neon * (1 - mask)  # halo outside the shape
    else:
        image = image * (1 - mask) + _fill(scene, side, size, x * side, y * side) * mask
    image = reduce(image, "(h a) (w b) c -> h w c", "mean", a=SUPERSAMPLE, b=SUPERSAMPLE)  # box filter down
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def render_clip(scene: Scene, frames: int = 16, size: int = 32) -> np.ndarray:
    """(frames, size, size, 3) uint8: `scene` at evenly spaced times from t = 0 (first frame) to t = 1 (last)."""
    if frames < 1:
        raise ConfigError(f"frames={frames} must be at least 1")
    times = np.linspace(0.0, 1.0, frames) if frames > 1 else [0.0]
    return np.stack([render(scene, size, float(t)) for t in times])


def caption(scene: Scene) -> str:
    """The scene in words, e.g. "a red circle moving left on a blue background" (see the module docstring)."""
    words = ["a", scene.colour, scene.shape]
    if scene.motion is not None:
        words.append(_MOTION_PHRASE[scene.motion])
    words += ["on", "a", scene.background] + ([scene.style] if scene.style in TEXTURES else [])
    text = " ".join(words + ["background"])
    return text + ", neon style" if scene.style == "neon" else text


def vocabulary() -> list[str]:
    """Every word a caption can contain (sorted, no punctuation): one token each for a word-level tokenizer."""
    words = {"a", "on", "background", "neon", "style", *TEXTURES, *SHAPES, *COLOURS, *BACKGROUNDS}
    for phrase in _MOTION_PHRASE.values():
        words.update(phrase.split())
    return sorted(words)


def sample_scenes(n: int, seed: int, *, motion: bool, style: str | tuple[str, ...] = "plain",
                  motions: tuple[str, ...] = MOTIONS) -> list[Scene]:
    """n random scenes, a pure function of (n, seed, motion, style, motions); object and background colours always
    differ in name, and each path stays inside the frame with a margin of 0.02. motions: those drawn when `motion`;
    style: one style, or a tuple to draw each scene's from (a style named twice is drawn twice as often)."""
    if n < 0:
        raise ConfigError(f"n={n} must be at least 0")
    styles = (style,) if isinstance(style, str) else tuple(style)
    if not styles or any(s not in STYLES for s in styles):
        raise ConfigError(f"style={style!r} is not one of {STYLES} (or a non-empty tuple of them)")
    if not motions or any(m not in MOTIONS for m in motions):
        raise ConfigError(f"motions={motions!r} must be a non-empty tuple of {MOTIONS}")
    rng = np.random.default_rng(seed)
    scenes = []
    for _ in range(n):
        shape = SHAPES[rng.integers(len(SHAPES))]
        colour = list(COLOURS)[rng.integers(len(COLOURS))]
        backgrounds = [b for b in BACKGROUNDS if b != colour]
        background = backgrounds[rng.integers(len(backgrounds))]
        size = list(SIZES)[rng.integers(len(SIZES))]
        move = motions[rng.integers(len(motions))] if motion else None
        look = styles[rng.integers(len(styles))] if len(styles) > 1 else styles[0]
        probe = Scene(shape, colour, background, size, 0.5, 0.5, move, look)
        e = extent(probe) + 0.02
        lo = {"x": e, "y": e}
        hi = {"x": 1 - e, "y": 1 - e}
        if move in _DIRECTIONS:  # the start leaves room for the whole travel
            dx, dy = _DIRECTIONS[move]
            axis, sign = ("x", dx) if dx else ("y", dy)
            lo[axis], hi[axis] = (lo[axis], hi[axis] - TRAVEL) if sign > 0 else (lo[axis] + TRAVEL, hi[axis])
        elif move == "bouncing":  # y is the floor: the top of the hop must stay inside
            lo["y"] += BOUNCE
        x, y = (float(np.round(rng.uniform(lo[k], hi[k]), 4)) for k in ("x", "y"))
        scenes.append(Scene(shape, colour, background, size, x, y, move, look))
    return scenes


def write_dataset(folder: str | Path, n: int, seed: int, *, motion: bool = True, frames: int = 16, size: int = 32,
                  style: str | tuple[str, ...] = "plain", motions: tuple[str, ...] = MOTIONS,
                  motion_words: bool = True) -> Path:
    """Write n samples to `folder` and return it (motions: those drawn; motion_words False: clips are captioned as
    still scenes, "a red circle on a blue background", for a module that learns one motion for every prompt);
    the layout the training CLI reads:
    motion=True   clip_00000/frame_00000.png ... (a folder of PNG frames) and clip_00000.txt (its caption);
    motion=False  image_00000.png and image_00000.txt;
    and captions.csv with the columns `file,caption` (`file` is the clip folder's / image's name in `folder`)."""
    from PIL import Image

    from motion_core.media import write_animation
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, scene in enumerate(sample_scenes(n, seed, motion=motion, style=style, motions=motions)):
        text = caption(scene if motion_words else replace(scene, motion=None))
        if motion:
            name = f"clip_{i:05d}"
            write_animation(render_clip(scene, frames, size), folder / name, metadata={"caption": text})
        else:
            name = f"image_{i:05d}.png"
            Image.fromarray(render(scene, size)).save(folder / name)
        (folder / f"{Path(name).stem}.txt").write_text(text + "\n")
        rows.append({"file": name, "caption": text})
    with open(folder / "captions.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["file", "caption"])
        writer.writeheader()
        writer.writerows(rows)
    return folder
