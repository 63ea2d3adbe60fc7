"""Per-animation numbers for the demo's claim, usable on real outputs too: motion, temporal consistency, domain.

Frames are (f, h, w, 3) uint8, or float in [0, 1], as numpy arrays or torch tensors (ComfyUI's IMAGE); one (h, w, 3)
frame is a clip of one. Everything is numpy; nothing here imports ComfyUI or cv2.

The object is found per frame by its colour: a pixel belongs to it when it is further than `threshold` (max over
R, G, B, in [0, 1]) from every background colour. The background colours come from the frame's border: its
densest colour, then the densest of what is left without that colour's pixels, if that is >= 20% of the border (so
a two-colour checkerboard is background too; a plain median would land between its two colours). Why not a
per-pixel temporal median: it misses objects that cover a pixel in more than half of the frames (a growing or slow
object); pass `background="temporal"` to get it anyway (for textured backgrounds that stay still). Centroids and
areas weight each pixel by its coverage (distance / the object's median distance), so antialiased edges count in
part and a centre moving by sub-pixel steps is measured as it moves.
Assumed: one object, whose colour differs from the background's; scattered pixels that differ (noise, a second
object) are counted as part of it. Motion words stay right under per-pixel noise up to sigma 8/255 (tested).
"""

from __future__ import annotations

import numpy as np

from .errors import ConfigError

THRESHOLD = 0.15  # object / background colour distance; the demo's colour pairs are >= 0.31 apart
MIN_SHIFT = 0.1  # a net centroid move under this (image units) is not a direction
GROWTH = 1.3  # area ratio last / first above which a still centroid counts as "growing"
STILL = 0.05  # "growing" needs the centroid to stay within this distance of where it started
BOUNCES = 2  # "bouncing" needs at least this many reversals of vertical motion ...
REVERSAL = 0.05  # ... each one a turn back by at least this (image units), so jitter and noise are no reversal
JITTER = 1.0  # a path less smooth than this is no motion at all: a centre drawn anew in every frame (independent
# frames) gives about 1.4-1.9 and can still zigzag like a bounce or drift like a move; the world's bounces give 0.7


def as_frames(frames) -> np.ndarray:
    """(f, h, w, 3) float32 in [0, 1] from uint8 / float arrays or tensors, (h, w, 3) frames or (f, h, w, 4)."""
    if hasattr(frames, "detach"):
        frames = frames.detach().cpu().float().numpy()
    x = np.asarray(frames)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[-1] not in (3, 4) or 0 in x.shape:
        raise ConfigError(f"frames have shape {x.shape}; expected (frames, height, width, 3) or (height, width, 3)")
    x = x[..., :3]
    return x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)


def _mode(pixels: np.ndarray, radius: float) -> np.ndarray:
    """(3,) the densest colour of (n, 3) pixels: the median of the pixels within `radius` of the pixel with the most
    such neighbours. Unlike a plain median, it never lands between two equally common colours (a checkerboard)."""
    close = np.abs(pixels - np.median(pixels, axis=0)).max(-1) <= radius  # (n,)
    if close.mean() > 0.5:  # fast path: most pixels share one colour (a plain border)
        return np.median(pixels[close], axis=0)
    near = np.abs(pixels[:, None, :] - pixels[None, :, :]).max(-1) <= radius  # (n, n)
    return np.median(pixels[near[near.sum(1).argmax()]], axis=0)


def _border_palette(frame: np.ndarray, threshold: float) -> np.ndarray:
    """(k, 3) background colours (k = 1 or 2) of one (h, w, 3) frame, from its 1-pixel border."""
    border = np.concatenate([frame[0], frame[-1], frame[1:-1, 0], frame[1:-1, -1]])  # (n, 3)
    border = border[np.linspace(0, len(border) - 1, min(len(border), 512)).astype(int)]  # at most 512: n^2 memory
    first = _mode(border, threshold / 2)
    rest = border[np.abs(border - first).max(-1) > threshold]
    if len(rest) >= 0.2 * len(border):
        return np.stack([first, _mode(rest, threshold / 2)])
    return first[None]


def background_distance(frames, background=None, *, threshold: float = THRESHOLD) -> np.ndarray:
    """(f, h, w) distance of each pixel to the nearest background colour (max over R, G, B, in [0, 1]).
    background: None (each frame's border colours), an RGB colour in [0, 1], an (h, w, 3) image, or "temporal"
    (the per-pixel median over the frames). `threshold` separates the border's two colours."""
    x = as_frames(frames)  # (f, h, w, 3)
    if isinstance(background, str):
        if background != "temporal":
            raise ConfigError(f"background={background!r}: use None, an RGB colour, an image, or 'temporal'")
        background = np.median(x, axis=0)
    if background is None:
        palettes = [_border_palette(frame, threshold) for frame in x]  # f x (k, 3)
        return np.stack([np.abs(frame[:, :, None, :] - p).max(-1).min(-1) for frame, p in zip(x, palettes)])
    bg = as_frames(background)[0] if np.ndim(background) == 3 else np.asarray(background, np.float32)
    return np.abs(x - bg).max(-1)


def object_mask(frames, background=None, *, threshold: float = THRESHOLD) -> np.ndarray:
    """(f, h, w) bool: pixels further than `threshold` from the background (see background_distance)."""
    return background_distance(frames, background, threshold=threshold) > threshold


def _coverage(dist: np.ndarray, threshold: float) -> np.ndarray:
    """(f, h, w) soft object coverage in [0, 1]: inside the mask grown by a pixel, the distance over the median
    distance inside the mask (so an antialiased edge pixel counts by how much of it the object covers, and the
    centroid moves smoothly by sub-pixel steps); 0 elsewhere and in frames with no object."""
    mask = dist > threshold  # (f, h, w)
    out = np.zeros_like(dist)
    for i in np.flatnonzero(mask.any((1, 2))):
        full = np.median(dist[i][mask[i]])
        out[i] = np.where(_dilate(mask[i:i + 1])[0], np.clip(dist[i] / full, 0.0, 1.0), 0.0)
    return out


def _centroids(cover: np.ndarray) -> np.ndarray:
    """(f, 2) centre (x, y) in image units of (f, h, w) coverage; NaN where it is all 0."""
    f, h, w = cover.shape
    total = cover.sum((1, 2)).astype(np.float64)  # (f,)
    xs = (cover * (np.arange(w) + 0.5)[None, None, :]).sum((1, 2)) / np.maximum(total, 1e-12) / w
    ys = (cover * (np.arange(h) + 0.5)[None, :, None]).sum((1, 2)) / np.maximum(total, 1e-12) / h
    out = np.stack([xs, ys], -1)
    out[total == 0] = np.nan
    return out


def centroids(frames, background=None, *, threshold: float = THRESHOLD) -> np.ndarray:
    """(f, 2) object centre (x, y) per frame in image units [0, 1] (y downward), coverage-weighted (sub-pixel);
    NaN where no object is found."""
    return _centroids(_coverage(background_distance(frames, background, threshold=threshold), threshold))


def areas(frames, background=None, *, threshold: float = THRESHOLD) -> np.ndarray:
    """(f,) object area per frame as a fraction of the image (coverage-weighted)."""
    return _coverage(background_distance(frames, background, threshold=threshold), threshold).mean((1, 2))


def _reversals(y: np.ndarray, hysteresis: float) -> int:
    """How many times the (n,) path y turns back by at least `hysteresis` from its last extreme (a zigzag count)."""
    trend, extreme, lo, hi, count = 0, y[0], y[0], y[0], 0
    for v in y[1:]:
        if trend == 0:  # no direction yet: wait for a move of `hysteresis` either way
            lo, hi = min(lo, v), max(hi, v)
            trend = 1 if v - lo >= hysteresis else (-1 if hi - v >= hysteresis else 0)
            extreme = v
        elif (v - extreme) * trend > 0:  # still going the same way
            extreme = v
        elif abs(v - extreme) >= hysteresis:  # turned back far enough
            trend, extreme, count = -trend, v, count + 1
    return count


def motion_direction(frames, **kw) -> dict:
    """What the object does. Keys: dx, dy (net centroid move, image units), direction (left / right / up / down /
    bouncing / growing, or None), growth (area last / first), reversals (of vertical motion), smoothness (mean
    |second difference| / mean |step| of the path, the step floored at one pixel: 0 at constant speed, and a still
    centre's sub-pixel jitter stays small), found (fraction of frames with an object).
    Rules, first match wins: none when the path jumps about (smoothness > JITTER), bouncing (>= BOUNCES reversals of
    at least REVERSAL each), growing (growth > GROWTH, centre within STILL), then the larger of |dx|, |dy| if
    >= MIN_SHIFT."""
    cover = _coverage(background_distance(frames, **kw), kw.get("threshold", THRESHOLD))  # (f, h, w)
    c, a = _centroids(cover), cover.mean((1, 2))  # (f, 2), (f,)
    ok = a > 0
    out = {"dx": float("nan"), "dy": float("nan"), "direction": None, "growth": float("nan"), "reversals": 0,
           "smoothness": float("nan"), "found": float(ok.mean())}
    if ok.sum() < 2:
        return out
    path, area = c[ok], a[ok]  # (n, 2), (n,)
    dx, dy = (path[-1] - path[0]).tolist()
    steps = np.diff(path, axis=0)  # (n - 1, 2)
    reversals = _reversals(path[:, 1], REVERSAL)
    growth = float(area[-1] / area[0])
    drift = float(np.abs(path - path[0]).max())
    mean_step = max(float(np.linalg.norm(steps, axis=-1).mean()), 1.0 / max(cover.shape[1:]))
    smoothness = float(np.linalg.norm(np.diff(steps, axis=0), axis=-1).mean() / mean_step) if len(path) > 2 \
        else float("nan")
    direction = None
    if smoothness > JITTER:  # (False for nan: two or three frames)
        pass
    elif reversals >= BOUNCES:
        direction = "bouncing"
    elif growth > GROWTH and drift < STILL:
        direction = "growing"
    elif max(abs(dx), abs(dy)) >= MIN_SHIFT:
        direction = ("right" if dx > 0 else "left") if abs(dx) >= abs(dy) else ("down" if dy > 0 else "up")
    out.update(dx=dx, dy=dy, direction=direction, growth=growth, reversals=reversals, smoothness=smoothness)
    return out


def matches_motion(frames, word: str | None, **kw) -> bool:
    """Whether the clip shows the motion `word` names (None: no motion at all)."""
    if word is not None and word not in ("left", "right", "up", "down", "bouncing", "growing"):
        raise ConfigError(f"motion word {word!r} is not left / right / up / down / bouncing / growing, or None")
    return motion_direction(frames, **kw)["direction"] == word


def _dilate(masks: np.ndarray) -> np.ndarray:
    """(f, h, w) bool masks grown by one pixel in each of the 8 directions (covers antialiased edges)."""
    padded = np.pad(masks, ((0, 0), (1, 1), (1, 1)))
    h, w = masks.shape[1:]
    return np.any([padded[:, i:i + h, j:j + w] for i in range(3) for j in range(3)], axis=0)


def flicker(frames, **kw) -> float:
    """Mean |frame[i+1] - frame[i]| over the background pixels of both frames (outside both object masks, grown by
    a pixel), in [0, 1] units, averaged over frame pairs: 0 for a still background. NaN for a single frame."""
    x = as_frames(frames)  # (f, h, w, 3)
    if len(x) < 2:
        return float("nan")
    bg = ~_dilate(object_mask(x, **kw))  # (f, h, w)
    both = bg[1:] & bg[:-1]  # (f - 1, h, w)
    diff = np.abs(x[1:] - x[:-1]).mean(-1)  # (f - 1, h, w)
    per_pair = [d[m].mean() for d, m in zip(diff, both) if m.any()]
    return float(np.mean(per_pair)) if per_pair else float("nan")


def _aligned_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two (h, w) masks after shifting b so its centroid lands on a's (whole pixels)."""
    if not a.any() or not b.any():
        return float("nan")
    ca, cb = np.argwhere(a).mean(0), np.argwhere(b).mean(0)
    shift = np.rint(ca - cb).astype(int)
    b = np.roll(b, tuple(shift), axis=(0, 1))
    return float((a & b).sum() / (a | b).sum())


def object_consistency(frames, **kw) -> dict:
    """How stable the object is over the clip. colour_std: std over frames of its mean colour (mean over R, G, B; [0,
    1] units); area_std: std of its area / mean area; shape_iou: mean IoU of consecutive masks aligned on their
    centroids (1 = the same shape). A growing object has a large area_std by design: read it against the prompt."""
    x = as_frames(frames)
    masks = object_mask(x, **kw)  # (f, h, w)
    found = masks.any((1, 2))
    if not found.any():
        return {"colour_std": float("nan"), "area_std": float("nan"), "shape_iou": float("nan")}
    colours = np.stack([x[i][masks[i]].mean(0) for i in np.flatnonzero(found)])  # (n, 3)
    area = masks.sum((1, 2))[found].astype(np.float64)
    ious = [_aligned_iou(masks[i], masks[i + 1]) for i in range(len(x) - 1)]
    ious = [v for v in ious if not np.isnan(v)]
    return {"colour_std": float(colours.std(0).mean()), "area_std": float(area.std() / area.mean()),
            "shape_iou": float(np.mean(ious)) if ious else float("nan")}


STYLE_FEATURES = ("saturation_mean", "saturation_std", "value_mean", "value_std", "background_value",
                  "object_value", "edge_density")


def style_stats(frames, **kw) -> np.ndarray:
    """(f, 7) style descriptor per frame, in STYLE_FEATURES order: HSV saturation and value (mean, std), mean value
    of the background and of the object, and the fraction of pixels on an edge (|gradient| > 0.1)."""
    x = as_frames(frames)  # (f, h, w, 3)
    masks = object_mask(x, **kw)  # (f, h, w)
    value = x.max(-1)  # (f, h, w)
    saturation = np.where(value > 0, (value - x.min(-1)) / np.maximum(value, 1e-6), 0.0)
    gray = x.mean(-1)
    gx = np.abs(np.diff(gray, axis=2))[:, :-1, :]  # (f, h - 1, w - 1)
    gy = np.abs(np.diff(gray, axis=1))[:, :, :-1]
    edges = (np.hypot(gx, gy) > 0.1).mean((1, 2))
    rows = []
    for i in range(len(x)):
        m = masks[i]
        bg_v = value[i][~m].mean() if (~m).any() else value[i].mean()
        obj_v = value[i][m].mean() if m.any() else bg_v
        rows.append([saturation[i].mean(), saturation[i].std(), value[i].mean(), value[i].std(), bg_v, obj_v,
                     edges[i]])
    return np.asarray(rows, np.float32)


def domain_score(frames, reference_stills, other_stills, **kw) -> float:
    """In [0, 1]: where the frames' style lies between `other_stills` (0: the base model's images) and
    `reference_stills` (1: the personalised model's own images). Formula (a diagonal linear discriminant): with mu_r,
    mu_o the two sets' mean style_stats and v the pooled within-set variance per feature, w = (mu_r - mu_o) / v;
    per frame p = (s - mu_o) . w / (mu_r - mu_o) . w, the position along the line from mu_o (0) to mu_r (1) in the
    features that tell the sets apart, clipped to [0, 1]; the clip's score is the mean over frames."""
    s = style_stats(frames, **kw)  # (f, k)
    ref, other = style_stats(reference_stills, **kw), style_stats(other_stills, **kw)  # (n, k), (m, k)
    if len(ref) < 2 or len(other) < 2:
        raise ConfigError(f"domain_score needs at least 2 stills per set; got {len(ref)} and {len(other)}")
    mu_r, mu_o = ref.mean(0), other.mean(0)  # (k,)
    var = np.concatenate([ref - mu_r, other - mu_o]).var(0) + 1e-6  # (k,) pooled within-set variance
    w = (mu_r - mu_o) / var  # (k,)
    span = float((mu_r - mu_o) @ w)
    if span < 1e-6:
        raise ConfigError("domain_score: the reference and other stills have the same style statistics")
    return float(np.clip((s - mu_o) @ w / span, 0.0, 1.0).mean())


def linear_cka(x, y) -> float:
    """Linear centred kernel alignment (Kornblith et al. 2019) of two representations of the same n inputs: x (n, p)
    and y (n, q), one row per input (anything that reshapes so: features are flattened). 1: the same up to a rotation
    and a uniform scale; near 0: unrelated. Computed in float64 over the inputs' Gram matrices, which are centred:
    <Kc, Lc> / (|Kc| |Lc|) with K = x x^T, Kc = H K H, H = I - 1/n."""
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    y = np.asarray(y, np.float64).reshape(len(y), -1)
    if len(x) != len(y) or len(x) < 2:
        raise ConfigError(f"linear_cka needs the same n >= 2 inputs on both sides; got {len(x)} and {len(y)}")
    x, y = x - x.mean(0), y - y.mean(0)  # centring the features centres the Gram matrices
    gram_x, gram_y = x @ x.T, y @ y.T
    norm = np.linalg.norm(gram_x) * np.linalg.norm(gram_y)
    if norm == 0:
        raise ConfigError("linear_cka: one representation is constant over the inputs")
    return float((gram_x * gram_y).sum() / norm)


def unet_feature_cka(unet_a, unet_b, sample, timestep, text) -> dict[str, float]:
    """Linear CKA between two diffusers UNets' features at each level, on the same inputs: sample (n, c, h, w),
    timestep (n,) and text (n, tokens, d) (noisy inputs and their prompts). Levels: each down block's, the mid
    block's and each up block's output; returns {level: cka} and their mean under "mean"."""
    import torch

    def collect(unet):
        hooks, out = [], {}
        levels = [(f"down_{i}", b) for i, b in enumerate(unet.down_blocks)] + [("mid", unet.mid_block)] + \
            [(f"up_{i}", b) for i, b in enumerate(unet.up_blocks)]
        for name, block in levels:
            def hook(_, args, output, name=name):
                first = output[0] if isinstance(output, tuple) else output
                out[name] = first.detach().float().flatten(1).cpu().numpy()
            hooks.append(block.register_forward_hook(hook))
        try:
            with torch.no_grad():
                unet(sample, timestep, text)
        finally:
            for h in hooks:
                h.remove()
        return out
    a, b = collect(unet_a), collect(unet_b)
    levels = {name: linear_cka(a[name], b[name]) for name in a}
    return {**levels, "mean": float(np.mean(list(levels.values())))}


def evaluate(frames, prompt_motion_word: str | None = None, **kw) -> dict:
    """The per-animation numbers in one flat dict: motion (direction, dx, dy, smoothness, found, and `matches` when
    a prompt word is given), flicker, and object consistency (colour_std, area_std, shape_iou)."""
    x = as_frames(frames)
    motion = motion_direction(x, **kw)
    row = {"direction": motion["direction"]}
    if prompt_motion_word is not None:
        row["prompt"] = prompt_motion_word
        row["matches"] = motion["direction"] == prompt_motion_word
    row.update({k: motion[k] for k in ("dx", "dy", "smoothness", "found")})
    row["flicker"] = flicker(x, **kw)
    row.update(object_consistency(x, **kw))
    return row


def table(rows: list[dict]) -> str:
    """A plain-text table of dicts (columns: every key, in first-seen order; floats to 3 decimals)."""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    def cell(v):
        return f"{v:.3f}" if isinstance(v, float) else ("-" if v is None else str(v))
    cells = [[cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in cells]
    return "\n".join(lines)
