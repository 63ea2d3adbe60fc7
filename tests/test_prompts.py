"""Prompt travel schedules and their interpolation weights."""

import pytest
import torch

from motion_core import ConfigError
from motion_core.prompts import interpolate, keyframe_weights, parse_schedule


def test_parse_keyframes_and_plain_prompts():
    assert parse_schedule("32: a cat running\n0: a cat sitting\n") == [(0, "a cat sitting"), (32, "a cat running")]
    assert parse_schedule("a red circle\non blue") == [(0, "a red circle on blue")]
    assert parse_schedule(["0: a", "8:b"]) == [(0, "a"), (8, "b")]


@pytest.mark.parametrize("text,match", [("", "empty"), ("0: a\nb", "cannot read 'b'"), ("0: a\n0: b", "two prompts"),
                                        ("-1: a", "negative")])
def test_bad_schedules(text, match):
    with pytest.raises(ConfigError, match=match):
        parse_schedule(text)


def test_weights_hold_then_blend_then_hold():
    w = keyframe_weights([4, 8], 12)
    assert w[:5, 0].eq(1).all() and w[8:, 1].eq(1).all()
    assert torch.allclose(w[6], torch.tensor([0.5, 0.5])) and torch.allclose(w.sum(1), torch.ones(12))


def test_interpolate_embeddings():
    e = torch.stack([torch.zeros(3, 2), torch.ones(3, 2)])
    out = interpolate(e, [0, 4], 6)
    assert out.shape == (6, 3, 2) and out[2].eq(0.5).all() and out[5].eq(1).all()
