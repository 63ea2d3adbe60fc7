"""Motion that varies: how much of the motion module acts per frame, per region and over the sampling.

`MotionControl(strength, scale, mask=..., start=..., end=...)` is what `inject` / `Patch` apply at every motion layer:
  strength    the fraction of each module's residual that is added (0 = the plain image model, 1 = the full module):
              a number; per-frame values over the whole clip (a curve string "0:1.0, 15:0.2", a list or 1-D tensor
              with one value per frame); or a callable `(Call) -> number or (call.frames,) tensor`;
  scale       the temporal attention's key scale (1 = as trained), the same kinds of value (per frame, not per pixel);
  mask        where the motion acts: (height, width) or (1 or frames, height, width), values in [0, 1], resized to
              each block (area average when shrinking, bilinear when growing) and multiplied into `strength` per
              pixel: where it is 0, a block's output is the plain image model's there; where 1, the full module's;
  start, end  the part of the sampling in which the module acts, as a fraction of it (ComfyUI's start / end
              percent): active while (1 - end) * 999 <= timestep <= (1 - start) * 999. Outside, each UNet call is
              the plain image model's, exactly (v1's cross-frame GroupNorms included).
Per-frame values follow context windows: a call on frames 8 .. 23 of a 32-frame clip gets those frames' values and
masks (`Call.window`). Curves interpolate linearly between keyframes and hold their first / last value beyond them.
"""

from __future__ import annotations

import bisect
import functools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .errors import ConfigError, FrameCountError
from .frames import Call, apply_temporal

LAST_TIMESTEP = 999  # the noisiest timestep of every Stable Diffusion schedule (1000 training timesteps)
CURVE_EXAMPLE = '"0:1.0, 15:0.2" (frame:value pairs; one number = every frame)'


@dataclass(frozen=True)
class Curve:
    """Keyframes (frame, value), frames ascending; `values(n)` interpolates them over n frames."""
    keyframes: tuple[tuple[int, float], ...]

    @classmethod
    def parse(cls, text: str, name: str = "curve") -> "Curve":
        pieces = [p.strip() for p in text.replace(";", ",").replace("\n", ",").split(",") if p.strip()]
        if not pieces:
            raise ConfigError(f"{name} {text!r} is empty: write {CURVE_EXAMPLE}")
        if len(pieces) == 1 and ":" not in pieces[0]:
            pieces = [f"0:{pieces[0]}"]
        keyframes = {}
        for piece in pieces:
            frame, sep, value = piece.partition(":")
            try:
                frame, value = int(frame.strip()), float(value.strip())
            except ValueError:
                frame = None
            if not sep or frame is None or frame < 0 or not math.isfinite(value):
                raise ConfigError(f"{name} {text!r}: {piece!r} is not frame:value with a frame >= 0 and a finite "
                                  f"value; write {CURVE_EXAMPLE}")
            if frame in keyframes:
                raise ConfigError(f"{name} {text!r} gives frame {frame} twice")
            keyframes[frame] = value
        return cls(tuple(sorted(keyframes.items())))

    @functools.lru_cache(maxsize=8)  # asked at every motion layer of every step: computed once per clip length
    def values(self, frames: int) -> torch.Tensor:
        """(frames,) float32; shared between calls: index it, do not change it in place."""
        xs = [k for k, _ in self.keyframes]
        ys = [v for _, v in self.keyframes]
        out = []
        for i in range(frames):
            j = bisect.bisect_right(xs, i)
            if j == 0:
                out.append(ys[0])
            elif j == len(xs):
                out.append(ys[-1])
            else:
                t = (i - xs[j - 1]) / (xs[j] - xs[j - 1])
                out.append(ys[j - 1] + (ys[j] - ys[j - 1]) * t)
        return torch.tensor(out, dtype=torch.float32)

    def scaled(self, factor: float) -> "Curve":
        return Curve(tuple((k, v * factor) for k, v in self.keyframes))

    def __str__(self) -> str:
        return ", ".join(f"{k}:{v:g}" for k, v in self.keyframes)


def frame_values(value, name: str = "values") -> float | torch.Tensor:
    """Per-frame numbers as other ComfyUI packs hand them over on a FLOAT / FLOATS socket: a number, a list or tuple
    (a 1-tuple around one, as some schedule nodes wrap it), a 1-D tensor or array, or anything with `.tolist()`
    (a pandas Series from a value schedule). Returns a float, or a (frames,) float32 tensor."""
    while isinstance(value, tuple) and len(value) == 1 and not isinstance(value[0], (int, float)):
        value = value[0]
    if hasattr(value, "tolist") and not isinstance(value, torch.Tensor):
        value = value.tolist()
    try:
        t = torch.as_tensor(value, dtype=torch.float32).detach().cpu()
    except (TypeError, ValueError, RuntimeError):
        raise ConfigError(f"{name}: expected a number or one number per frame (a FLOAT list, FLOATS or a value "
                          f"schedule's output); got {type(value).__name__}") from None
    if t.ndim > 1:
        t = t.squeeze()  # (frames, 1) or (1, frames): a column or row of per-frame values
    if t.numel() == 1:  # one value (`[0.8]`, a 1-element list node's output): every frame's
        return float(t.reshape(()))
    if t.ndim != 1 or t.numel() == 0:
        raise ConfigError(f"{name}: per-frame values have shape {tuple(t.shape)}; give one number per frame")
    return t


def _in_range(name: str, values, low: float, high: float | None) -> None:
    t = torch.as_tensor(values, dtype=torch.float32)
    bad = ~torch.isfinite(t) | (t < low) | (t > (math.inf if high is None else high))
    if bad.any():
        value = t.flatten()[bad.flatten().nonzero()[0, 0]].item()
        limits = f"[{low:g}, {high:g}]" if high is not None else f"at least {low:g}"
        hint = " (0 = the plain image model, 1 = full motion)" if name.startswith("strength") else \
            " (1 = as trained)" if name.startswith("scale") else ""
        raise ConfigError(f"{name}={value:g} must lie in {limits}{hint}")


def _spec(name: str, value, low: float, high: float | None):
    """A number (float), a Curve, a (frames,) float32 tensor or a callable, checked."""
    if callable(value):
        return value
    if isinstance(value, str):
        value = Curve.parse(value, name)
    if isinstance(value, Curve):
        _in_range(name, [v for _, v in value.keyframes], low, high)
        return value
    if isinstance(value, (int, float)):
        _in_range(name, float(value), low, high)
        return float(value)
    try:
        t = torch.as_tensor(value, dtype=torch.float32).detach().cpu()
    except (TypeError, ValueError, RuntimeError):
        raise ConfigError(f"{name} must be a number, a curve {CURVE_EXAMPLE}, per-frame values or a callable; got "
                          f"{type(value).__name__}") from None
    if t.ndim == 0:
        return _spec(name, t.item(), low, high)
    if t.ndim != 1 or t.numel() == 0:
        raise ConfigError(f"{name} per-frame values have shape {tuple(t.shape)}: give one value per frame, (frames,)")
    _in_range(name, t, low, high)
    return t


def _mask(mask) -> torch.Tensor | None:
    if mask is None:
        return None
    m = torch.as_tensor(mask).detach().to("cpu", torch.float32)
    if m.ndim == 4 and m.shape[1] == 1:
        m = m[:, 0]
    if m.ndim == 2:
        m = m[None]
    if m.ndim != 3 or 0 in m.shape:
        raise ConfigError(f"motion mask has shape {tuple(m.shape)}; expected (height, width) or (frames, height, "
                          "width), one mask for every frame or one per frame")
    _in_range("motion mask value", m, 0.0, 1.0)
    return m


class MotionControl:
    """Strength and scale per frame, a region mask, and the part of the sampling in which the module acts."""

    def __init__(self, strength=1.0, scale=1.0, *, mask=None, start: float = 0.0, end: float = 1.0):
        self.strength = _spec("strength", strength, 0.0, 1.0)
        self.scale = _spec("scale", scale, 0.0, None)
        self.mask = _mask(mask)
        for name, value in (("start", start), ("end", end)):
            if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name}={value!r} must lie in [0, 1]: a fraction of the sampling (0 = its first "
                                  "step, 1 = its end)")
        if start > end:
            raise ConfigError(f"start={start} is after end={end}: the motion would never act")
        self.start, self.end = float(start), float(end)
        self._masks: dict = {}  # resized masks, per (window, h, w, device, dtype)
        self._values: dict = {}  # per-frame values on the model's device, per (name, clip, window, device, dtype)

    @property
    def off(self) -> bool:
        """Strength 0 everywhere: the plain image model (nothing needs attaching)."""
        return isinstance(self.strength, float) and self.strength == 0.0

    @property
    def constant(self) -> bool:
        """One strength and one scale for every frame, pixel and step (the original's case)."""
        return isinstance(self.strength, float) and isinstance(self.scale, float) and self.mask is None and \
            self.start == 0.0 and self.end == 1.0

    def check_length(self, frames: int) -> None:
        """Refuse per-frame values or masks made for another clip length, naming both counts."""
        for name, spec in (("strength", self.strength), ("scale", self.scale)):
            if isinstance(spec, torch.Tensor) and spec.numel() != frames:
                raise FrameCountError(f"{name} has {spec.numel()} per-frame values but the clip has {frames} frames: "
                                      f"give {frames} values, or a curve {CURVE_EXAMPLE}")
        if self.mask is not None and self.mask.shape[0] not in (1, frames):
            raise FrameCountError(f"the motion mask has {self.mask.shape[0]} frames but the clip has {frames}: give "
                                  f"one mask for every frame or {frames}, one per frame")

    def active(self, timestep) -> bool | torch.Tensor:
        """Whether the module acts at `timestep`: a bool for a number, None (unknown, so yes) or a CPU tensor; for a
        tensor on an accelerator (or under torch.compile), a 0-d bool tensor computed there, so that the host never
        waits for the device (the caller then computes the motion and keeps it where the tensor is true)."""
        if timestep is None or (self.start == 0.0 and self.end == 1.0):
            return True
        eps = 1e-4
        low, high = (1 - self.end) * LAST_TIMESTEP - eps, (1 - self.start) * LAST_TIMESTEP + eps
        if isinstance(timestep, torch.Tensor):
            t = timestep.reshape(-1)[0]
            if t.device.type != "cpu" or torch.compiler.is_compiling():
                return (t >= low) & (t <= high)
            timestep = float(t)  # a CPU tensor: reading it costs nothing, and skipping the module saves its work
        return low <= timestep <= high

    def _frame_values(self, name: str, spec, call: Call, low: float, high: float | None, like: torch.Tensor):
        """float, or this call's frames' values (call.frames,) in like's dtype on like's device. Curves and
        per-frame values are copied there once per window, then reused: no host-to-device copy per layer."""
        if isinstance(spec, float):
            return spec
        if not isinstance(spec, (Curve, torch.Tensor)):  # a callable, asked at every call
            value = self._called(name, spec, call, low, high)
            return value if isinstance(value, float) else value.to(like.device, like.dtype)
        key = (name, call.clip_frames, call.window, like.device, like.dtype)
        if key not in self._values:
            if isinstance(spec, torch.Tensor):
                self.check_length(call.clip_frames)
            values = spec.values(call.clip_frames) if isinstance(spec, Curve) else spec
            if len(self._values) > 256:
                self._values.clear()
            self._values[key] = values[call.indices].to(like.device, like.dtype)
        return self._values[key]

    def _called(self, name: str, spec, call: Call, low: float, high: float | None):
        value = spec(call)
        if isinstance(value, (int, float)):
            _in_range(name, float(value), low, high)
            return float(value)
        value = torch.as_tensor(value, dtype=torch.float32).detach().cpu()
        if tuple(value.shape) != (call.frames,):
            raise ConfigError(f"the {name} callable returned shape {tuple(value.shape)}; expected a number or "
                              f"({call.frames},), one value per frame of the call")
        _in_range(name, value, low, high)
        return value

    def scale_at(self, call: Call, like: torch.Tensor):
        """float, or (call.frames,) in like's dtype and device."""
        return self._frame_values("scale", self.scale, call, 0.0, None, like)

    def _mask_at(self, call: Call, h: int, w: int, like: torch.Tensor) -> torch.Tensor:
        """(call.frames, 1, h, w): the call's frames' masks at a block's size."""
        per_frame = self.mask.shape[0] > 1
        if per_frame:
            self.check_length(call.clip_frames)
        key = (tuple(call.indices) if per_frame else None, h, w, like.device, like.dtype)
        if key not in self._masks:
            m = self.mask[call.indices] if per_frame else self.mask
            if tuple(m.shape[1:]) != (h, w):
                shrink = m.shape[1] >= h and m.shape[2] >= w
                m = F.interpolate(m[:, None], size=(h, w), mode="area") if shrink else \
                    F.interpolate(m[:, None], size=(h, w), mode="bilinear", align_corners=False)
                m = m[:, 0]
            m = m[:, None].expand(call.frames, 1, h, w)
            if len(self._masks) > 64:
                self._masks.clear()
            self._masks[key] = m.to(like.device, like.dtype).contiguous()
        return self._masks[key]

    def strength_at(self, call: Call, x: torch.Tensor):
        """float, or a tensor broadcasting to x's ((b f), 1, h, w)."""
        v = self._frame_values("strength", self.strength, call, 0.0, 1.0, x)
        clips = x.shape[0] // call.frames
        if self.mask is None:
            return v if isinstance(v, float) else v.view(-1, 1, 1, 1).repeat(clips, 1, 1, 1)
        m = self._mask_at(call, *x.shape[-2:], x)
        m = m * (v if isinstance(v, float) else v.view(-1, 1, 1, 1))
        return m.repeat(clips, 1, 1, 1)

    def describe(self) -> dict:
        """JSON-ready settings (for an Animation's metadata)."""
        def value(spec):
            if isinstance(spec, float):
                return spec
            if isinstance(spec, Curve):
                return str(spec)
            return spec.tolist() if isinstance(spec, torch.Tensor) else "callable"
        out = {"strength": value(self.strength), "scale": value(self.scale)}
        if self.mask is not None:
            out["mask"] = list(self.mask.shape)
        if (self.start, self.end) != (0.0, 1.0):
            out.update(start=self.start, end=self.end)
        return out


def apply_motion(module, x: torch.Tensor, call: Call, control: MotionControl) -> torch.Tensor:
    """One motion layer: x ((b f), c, h, w) plus the module's residual, as `control` says for this call."""
    if control.constant:
        return apply_temporal(module, x, call.frames, control.scale, control.strength)
    motion = control.active(call.timestep) if call.motion is True else call.motion
    if motion is False:
        return x
    out = apply_temporal(module, x, call.frames, control.scale_at(call, x), control.strength_at(call, x))
    return out if motion is True else torch.where(motion, out, x)  # decided on the device


__all__ = ["Curve", "LAST_TIMESTEP", "MotionControl", "apply_motion"]
