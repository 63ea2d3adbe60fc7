"""Per-call frame count, and the pieces every host adapter applies with it.

A patched host runs in the image layout `((b f), c, h, w)`; the temporal layers need `f`. It travels with the call:
`frames_context(f)` holds it for the duration of one UNet call (a context variable, so concurrent calls in other
threads or tasks do not see it), or a host passes it directly (ComfyUI: from `transformer_options`).
"""

from __future__ import annotations

import contextlib
import contextvars

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from .errors import FrameCountError
from .guards import too_many_frames
from .module import VanillaTemporalModule

_FRAMES: contextvars.ContextVar[int | None] = contextvars.ContextVar("motion_core_frames", default=None)


@contextlib.contextmanager
def frames_context(frames: int):
    """Within this block, patched hosts treat their batch as `(b f)` with `f = frames`."""
    token = _FRAMES.set(frames)
    try:
        yield
    finally:
        _FRAMES.reset(token)


def current_frames() -> int | None:
    return _FRAMES.get()


def check_frames(frames: int, pe_length: int) -> None:
    message = too_many_frames(frames, pe_length)
    if message:
        raise FrameCountError(message)


def apply_temporal(module: VanillaTemporalModule, x: torch.Tensor, frames: int, scale: float = 1.0,
                   strength: float = 1.0) -> torch.Tensor:
    """x: ((b f), c, h, w) -> x plus `strength` times the module's residual (strength 1 = the original module;
    strength 0 = the image model alone, each frame on its own, without computing the residual)."""
    if strength == 0:
        return x
    if x.shape[0] % frames:
        raise FrameCountError(f"a batch of {x.shape[0]} images is not a whole number of {frames}-frame clips")
    delta = module.residual(x, frames, scale)
    return x + delta if strength == 1.0 else x + strength * delta


def cross_frame_group_norm(norm: nn.GroupNorm):
    """A forward for one GroupNorm instance: statistics across frames while a frame count is in context (v1)."""
    def forward(x: torch.Tensor) -> torch.Tensor:
        frames = _FRAMES.get()
        if frames is None:
            return type(norm).forward(norm, x)
        weight = None if norm.weight is None else norm.weight.to(x)  # hosts may store weights in another dtype
        bias = None if norm.bias is None else norm.bias.to(x)
        y = F.group_norm(rearrange(x, "(b f) c h w -> b c f h w", f=frames), norm.num_groups, weight, bias, norm.eps)
        return rearrange(y, "b c f h w -> (b f) c h w")
    return forward
