"""Per-call frame count (and what else one UNet call tells its motion layers), and the pieces every host adapter
applies with it.

A patched host runs in the image layout `((b f), c, h, w)`; the temporal layers need `f`. It travels with the call:
`frames_context(f, ...)` (or `enter_call` / `exit_call`) holds a `Call` for the duration of one UNet call (per
thread, so calls in other threads do not see it; a thread-local attribute, which torch.compile traces without a
graph break, where a ContextVar breaks it), or a host passes the frame count directly (ComfyUI: from
`transformer_options`). Besides `f`, a Call says which frames of the whole clip the call denoises (a context window)
and at which timestep, for motion that varies per frame and over the sampling (`motion_core.control`).
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from .errors import FrameCountError
from .guards import too_many_frames
from .module import VanillaTemporalModule



@dataclass(frozen=True)
class Call:
    """One UNet call, as its motion layers see it."""
    frames: int  # frames per clip in this call's batch (a window's length when sampling in windows)
    window: tuple[int, ...] | None = None  # the clip's frame indices this call denoises; None: 0 .. frames - 1
    length: int | None = None  # frames of the whole clip; None: `frames`
    # the model timestep (999 = pure noise, 0 = clean): a number, a 0-d tensor on the model's device (read there,
    # never copied to the host), or None: unknown
    timestep: float | torch.Tensor | None = None
    # False: the motion is off for this call (v1's GroupNorms then run per frame); a 0-d bool tensor: decided on the
    # device (MotionControl.active of a device timestep)
    motion: bool | torch.Tensor = True

    @property
    def clip_frames(self) -> int:
        return self.frames if self.length is None else self.length

    @property
    def indices(self) -> list[int]:
        return list(range(self.frames)) if self.window is None else list(self.window)


class _Current(threading.local):
    def __init__(self):  # runs once in each thread that touches it
        self.call: Call | None = None


_CURRENT = _Current()


def make_call(frames: int, *, window=None, length: int | None = None, timestep=None, motion=True) -> Call:
    """A Call, its window checked against the frame count."""
    window = None if window is None else tuple(int(i) for i in window)
    if window is not None and len(window) != frames:
        raise FrameCountError(f"a window of {len(window)} frame indices for a call of {frames} frames")
    return Call(frames, window, length, timestep, motion)


def enter_call(call: Call | None) -> Call | None:
    """Make `call` this thread's current call; returns the one it replaces, for `exit_call`."""
    previous, _CURRENT.call = _CURRENT.call, call
    return previous


def exit_call(previous: Call | None) -> None:
    _CURRENT.call = previous


@contextlib.contextmanager
def frames_context(frames: int, *, window=None, length: int | None = None, timestep=None, motion=True):
    """Within this block, patched hosts treat their batch as `(b f)` with `f = frames`; `window`, `length`,
    `timestep` and `motion` as in `Call`."""
    previous = enter_call(make_call(frames, window=window, length=length, timestep=timestep, motion=motion))
    try:
        yield
    finally:
        exit_call(previous)


def current_call() -> Call | None:
    return _CURRENT.call


def current_frames() -> int | None:
    call = _CURRENT.call
    return None if call is None else call.frames


def check_frames(frames: int, pe_length: int) -> None:
    message = too_many_frames(frames, pe_length)
    if message:
        raise FrameCountError(message)


def apply_temporal(module: VanillaTemporalModule, x: torch.Tensor, frames: int, scale=1.0,
                   strength=1.0) -> torch.Tensor:
    """x: ((b f), c, h, w) -> x plus `strength` times the module's residual (strength 1 = the original module;
    strength 0 = the image model alone, each frame on its own, without computing the residual). `strength` may be a
    tensor broadcasting to ((b f), 1, h, w) (per frame, per pixel); `scale` a (f,) tensor (per frame)."""
    if not isinstance(strength, torch.Tensor) and strength == 0:
        return x
    if x.shape[0] % frames:
        raise FrameCountError(f"a batch of {x.shape[0]} images is not a whole number of {frames}-frame clips")
    delta = module.residual(x, frames, scale)
    return x + delta if not isinstance(strength, torch.Tensor) and strength == 1.0 else x + strength * delta


def cross_frame_group_norm(norm: nn.GroupNorm):
    """A forward for one GroupNorm instance: statistics across frames while a frame count is in context (v1)."""
    def forward(x: torch.Tensor) -> torch.Tensor:
        call = _CURRENT.call
        if call is None or call.motion is False:
            return type(norm).forward(norm, x)
        frames = call.frames
        weight = None if norm.weight is None else norm.weight.to(x)  # hosts may store weights in another dtype
        bias = None if norm.bias is None else norm.bias.to(x)
        y = F.group_norm(rearrange(x, "(b f) c h w -> b c f h w", f=frames), norm.num_groups, weight, bias, norm.eps)
        y = rearrange(y, "b c f h w -> (b f) c h w")
        if isinstance(call.motion, torch.Tensor):  # decided on the device: both, and the one that applies
            return torch.where(call.motion, y, type(norm).forward(norm, x))
        return y
    return forward
