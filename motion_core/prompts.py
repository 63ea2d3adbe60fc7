"""Prompt travel: per-frame prompts from keyframes ("0: a cat sitting" / "32: a cat running"), as weights that
interpolate the keyframes' text embeddings linearly between keyframes. Pure functions."""

from __future__ import annotations

import re

import torch

from .errors import ConfigError

_LINE = re.compile(r"^\s*(-?\d+)\s*:\s*(.*?)\s*$")


def parse_schedule(text: str | list[str]) -> list[tuple[int, str]]:
    """[(frame, prompt), ...] sorted by frame. Lines "frame: prompt"; plain text without numbers is one prompt."""
    lines = [l for l in (text.splitlines() if isinstance(text, str) else text) if l.strip()]
    if not lines:
        raise ConfigError("the prompt is empty: write a prompt, or lines like '0: a cat sitting'")
    if not any(_LINE.match(l) for l in lines):
        return [(0, " ".join(l.strip() for l in lines))]
    keyframes: dict[int, str] = {}
    for line in lines:
        m = _LINE.match(line)
        if m is None:
            raise ConfigError(f"cannot read {line.strip()!r}: write one keyframe per line as 'frame: prompt', "
                              "e.g. '16: a cat running'")
        frame = int(m[1])
        if frame < 0:
            raise ConfigError(f"keyframe {frame} is negative: frames count from 0")
        if frame in keyframes:
            raise ConfigError(f"frame {frame} has two prompts: give each keyframe one line")
        keyframes[frame] = m[2]
    return sorted(keyframes.items())


def keyframe_weights(keyframes: list[int], frames: int) -> torch.Tensor:
    """(frames, len(keyframes)) float32: row t blends the keyframes around t linearly; before the first keyframe
    the first holds, after the last the last holds."""
    if frames < 1:
        raise ConfigError(f"frames={frames} must be at least 1")
    weights = torch.zeros(frames, len(keyframes))
    for t in range(frames):
        after = next((i for i, k in enumerate(keyframes) if k >= t), len(keyframes) - 1)
        if keyframes[after] == t or after == 0 or keyframes[after] < t:
            weights[t, after] = 1.0
            continue
        before = after - 1
        a = (t - keyframes[before]) / (keyframes[after] - keyframes[before])
        weights[t, before], weights[t, after] = 1.0 - a, a
    return weights


def interpolate(embeddings: torch.Tensor, keyframes: list[int], frames: int) -> torch.Tensor:
    """embeddings (k, ...) of the k keyframes -> (frames, ...) per-frame embeddings."""
    w = keyframe_weights(keyframes, frames).to(embeddings)
    return torch.einsum("fk,k...->f...", w, embeddings)
