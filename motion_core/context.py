"""Context windows: sample clips longer than a motion module's window by denoising overlapping windows of frames
and fusing their predictions; and FreeNoise initial noise. Pure functions over frame indices and tensors.

Schedules (the names ComfyUI users know; same windows as ComfyUI core / AnimateDiff-Evolved / animatediff-cli):
  static   fixed windows every `length - overlap` frames, the last one moved back to end on the last frame;
  uniform  windows at strides 1, 2, 4, ... (up to `stride`), whose offset rotates with the sampling step, shifted
           so none wraps around the end;
  looped   like uniform, but windows wrap around the end (with `closed_loop`, also the last overlap), for loops.
Fusing: `flat` averages the windows' predictions per frame; `pyramid` weights each frame by its distance from its
window's edge (the FreeNoise paper's weighted average), so seams fade.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable

import torch

from .errors import ConfigError

SCHEDULES = ("static", "uniform", "looped")
FUSE_METHODS = ("flat", "pyramid")
# starting noise across frames: each frame its own (as image samplers), FreeNoise, the first window's noise repeated,
# one noise for every frame (`starting_noise`)
NOISE_TYPES = ("independent", "freenoise", "repeated_context", "constant")
MAX_FRAMES = 100_000


@dataclass(frozen=True)
class ContextOptions:
    length: int = 16  # frames per window: at most the motion module's position-encoding length
    overlap: int = 4  # frames shared by neighbouring windows
    schedule: str = "static"  # one of SCHEDULES
    stride: int = 1  # uniform / looped: also windows of every 2nd, 4th, ... frame, up to 2**(stride-1)
    closed_loop: bool = False  # looped: the last window wraps onto the first frames
    fuse: str = "pyramid"  # one of FUSE_METHODS

    def __post_init__(self):
        if not 1 <= self.length <= MAX_FRAMES:
            raise ConfigError(f"context length {self.length} must be between 1 and {MAX_FRAMES}")
        if not 0 <= self.overlap < self.length:
            raise ConfigError(f"context overlap {self.overlap} must be at least 0 and less than the context length "
                              f"{self.length}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"context schedule {self.schedule!r} is not one of {SCHEDULES}")
        if self.fuse not in FUSE_METHODS:
            raise ConfigError(f"fuse method {self.fuse!r} is not one of {FUSE_METHODS}")
        if not 1 <= self.stride <= 16:
            raise ConfigError(f"context stride {self.stride} must be between 1 and 16")


def _ordered_halving(step: int) -> float:
    """0, 1/2, 1/4, 3/4, 1/8, ...: the bit-reversed step as a fraction (rotates uniform windows per step)."""
    return int(f"{step:064b}"[::-1], 2) / (1 << 64)


def _uniform(frames: int, o: ContextOptions, step: int, wrap_end: bool, fit: bool) -> list[list[int]]:
    levels = min(o.stride, int(math.ceil(math.log2(frames / o.length))) + 1)
    while fit and levels > 1 and o.length << (levels - 1) > frames:
        levels -= 1  # a strided window longer than the clip only fits by wrapping (ComfyUI core emits frames past
        #              the end there); without wrapping, drop that stride
    windows = []
    for level in range(levels):
        s = 1 << level
        pad = int(round(frames * _ordered_halving(step)))
        end = frames + pad + (0 if wrap_end else -o.overlap)
        for j in range(int(_ordered_halving(step) * s) + pad, end, o.length * s - o.overlap):
            windows.append([e % frames for e in range(j, j + o.length * s, s)])
    return windows


def _unwrap(windows: list[list[int]], frames: int, length: int) -> list[list[int]]:
    """Uniform without looping: a window that wraps around the end is slid to end on the last frame (keeping its
    spacing), a window starting where it wrapped is added if the next one lacks that frame, duplicates dropped."""
    windows = [list(w) for w in windows]
    i = 0
    while i < len(windows):
        w = windows[i]
        roll = next((k for k in range(1, len(w)) if w[k] < w[k - 1]), None)
        if roll is not None:
            rolled_to = w[roll]
            from_start = [(v - w[0]) % frames for v in w]
            windows[i] = [v + frames - 1 - from_start[-1] for v in from_start]
            if rolled_to not in windows[(i + 1) % len(windows)]:
                windows.insert(i + 1, list(range(rolled_to, rolled_to + length)))
        i += 1
    unique: list[list[int]] = []
    for w in windows:
        if w not in unique:
            unique.append(w)
    return unique


def windows(frames: int, options: ContextOptions, step: int = 0) -> list[list[int]]:
    """The frame indices of each window at sampling step `step` (only uniform / looped depend on it)."""
    if not 1 <= frames <= MAX_FRAMES:
        raise ConfigError(f"frames {frames} must be between 1 and {MAX_FRAMES}")
    o = options
    if frames < o.length or (frames == o.length and o.schedule != "looped"):  # a loop of exactly one window
        return [list(range(frames))]                                            # still rotates per step
    if o.schedule == "static":
        out, delta = [], o.length - o.overlap
        for start in range(0, frames, delta):
            if start + o.length >= frames:
                out.append(list(range(frames - o.length, frames)))
                break
            out.append(list(range(start, start + o.length)))
        return out
    if o.schedule == "looped":
        return _uniform(frames, o, step, wrap_end=o.closed_loop, fit=False)
    return _unwrap(_uniform(frames, o, step, wrap_end=False, fit=True), frames, o.length)


def fuse_weights(length: int, method: str) -> torch.Tensor:
    """Per-frame weights of one window's prediction (float32, shape (length,))."""
    if method == "flat":
        return torch.ones(length)
    half = (length + 1) // 2  # pyramid: 1, 2, ..., peak, ..., 2, 1
    up = list(range(1, half + 1))
    return torch.tensor(up + up[::-1][length % 2:], dtype=torch.float32)


@functools.lru_cache(maxsize=1024)
def window_index(window: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """A window's frame indices, int64 on `device`, made once: each new one would be a host-to-device copy (a sync
    on an accelerator) at every step of every window. Shared: do not change it in place."""
    return torch.tensor(window, dtype=torch.long, device=device)


@functools.lru_cache(maxsize=64)
def _fuse_weights_on(length: int, method: str, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    return fuse_weights(length, method).to(device, dtype)


def sample_windows(predict: Callable[[torch.Tensor, list[int]], torch.Tensor], x: torch.Tensor,
                   options: ContextOptions, step: int = 0, dim: int = 2) -> torch.Tensor:
    """Run `predict(x[window], window)` on every window along `dim` (frames) and fuse the results per frame.
    A prediction may differ from its input except in `dim` (ComfyUI's wrapper stacks one per conditioning)."""
    frames = x.shape[dim]
    out = total = None
    for window in windows(frames, options, step):
        pred = predict(x.index_select(dim, window_index(tuple(window), x.device)), window)
        if out is None:
            out = pred.new_zeros(pred.shape[:dim] + (frames,) + pred.shape[dim + 1:])
            total = torch.zeros(frames, dtype=pred.dtype, device=pred.device)
        shape = [1] * pred.ndim
        shape[dim] = len(window)
        w = _fuse_weights_on(len(window), options.fuse, pred.device, pred.dtype)
        index = window_index(tuple(window), pred.device)
        out.index_add_(dim, index, pred * w.view(shape))
        total.index_add_(0, index, w)
    shape = [1] * out.ndim
    shape[dim] = frames
    return out / total.view(shape)


def freenoise(noise: torch.Tensor, options: ContextOptions, generator: torch.Generator | None = None,
              dim: int = 2) -> torch.Tensor:
    """FreeNoise initial noise (Qiu et al. 2023, as diffusers implements it): frames past the first window repeat
    earlier frames' noise, shuffled per window, so every window starts from correlated noise. Returns a new tensor."""
    out = noise.clone()
    frames, delta = noise.shape[dim], options.length - options.overlap
    for i in range(options.length, frames, delta):
        start = max(0, i - options.length)
        count = min(frames, start + delta) - start
        order = torch.randperm(count, generator=generator).tolist()
        take = min(count, frames - i)
        src = torch.tensor([start + order[k] for k in range(take)], device=noise.device)
        dst = torch.arange(i, i + take, device=noise.device)
        out.index_copy_(dim, dst, out.index_select(dim, src))
    return out


def starting_noise(noise: torch.Tensor, noise_type: str, options: ContextOptions, seed: int = 0,
                   dim: int = 2) -> torch.Tensor:
    """The starting noise of a clip from independent per-frame noise (seeded by the caller), along `dim` (frames):
    independent as given; freenoise (`freenoise`, its shuffles seeded by `seed`); repeated_context: frame i takes
    frame (i mod window length)'s noise, so every window starts from the first window's noise; constant: frame 0's
    noise for every frame. Returns a new tensor (the input is not changed)."""
    if noise_type not in NOISE_TYPES:
        raise ConfigError(f"noise type {noise_type!r} is not one of {', '.join(NOISE_TYPES)}")
    frames = noise.shape[dim]
    length = min(options.length, frames)
    if noise_type == "freenoise":
        first = ContextOptions(length=length, overlap=min(options.overlap, length - 1))
        return freenoise(noise, first, generator=torch.Generator().manual_seed(seed), dim=dim)
    if noise_type == "repeated_context":
        return noise.index_select(dim, torch.arange(frames, device=noise.device) % length)
    if noise_type == "constant":
        return noise.index_select(dim, torch.zeros(frames, dtype=torch.long, device=noise.device))
    return noise.clone()
