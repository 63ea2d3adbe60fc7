"""Context windows, fusing and FreeNoise."""


import pytest
import torch

from motion_core import ConfigError
from motion_core.context import ContextOptions, freenoise, fuse_weights, sample_windows, windows
from test_comfy_host import COMFYUI, needs_release, run_check


def test_static_48_frames_16_overlap_4():
    got = windows(48, ContextOptions(length=16, overlap=4))
    assert got == [list(range(0, 16)), list(range(12, 28)), list(range(24, 40)), list(range(32, 48))]


@pytest.mark.parametrize("schedule", ["static", "uniform", "looped"])
@pytest.mark.parametrize("frames", [16, 17, 48, 64, 100])
def test_every_frame_is_covered_by_full_windows(schedule, frames):
    o = ContextOptions(length=16, overlap=4, schedule=schedule, stride=2)
    for step in range(4):
        ws = windows(frames, o, step)
        assert sorted({i for w in ws for i in w}) == list(range(frames))
        assert all(len(w) == min(16, frames) and len(set(w)) == len(w) for w in ws)
        assert all(0 <= i < frames for w in ws for i in w)


def test_short_clips_are_one_window_and_looped_rotates_per_step():
    assert windows(10, ContextOptions(length=16)) == [list(range(10))]
    assert windows(8, ContextOptions(length=8, overlap=2, schedule="looped"), step=1) == [[4, 5, 6, 7, 0, 1, 2, 3]]


def test_looped_closed_loop_wraps_the_end_onto_the_start():
    ws = windows(40, ContextOptions(length=16, overlap=4, schedule="looped", closed_loop=True))
    assert ws[-1] == list(range(36, 40)) + list(range(12))  # the last window runs over the end back to frame 0
    assert windows(40, ContextOptions(length=16, overlap=4, schedule="looped")) == ws[:-1]


def test_pyramid_and_flat_weights():
    assert fuse_weights(5, "pyramid").tolist() == [1, 2, 3, 2, 1]
    assert fuse_weights(4, "pyramid").tolist() == [1, 2, 2, 1]
    assert fuse_weights(3, "flat").tolist() == [1, 1, 1]


@pytest.mark.parametrize("fuse", ["flat", "pyramid"])
def test_fusing_identity_predictions_gives_back_the_input(fuse):
    x = torch.randn(2, 4, 48, 3, 3)
    calls = []
    out = sample_windows(lambda part, w: calls.append(w) or part, x, ContextOptions(length=16, overlap=4, fuse=fuse))
    assert len(calls) == 4 and torch.allclose(out, x, atol=1e-6)


def test_fusing_blends_overlaps_by_weight():
    x = torch.zeros(1, 1, 24, 1, 1)
    o = ContextOptions(length=16, overlap=8, fuse="pyramid")  # windows 0..15 and 8..23
    out = sample_windows(lambda part, w: torch.full_like(part, float(w[0])), x, o)[0, 0, :, 0, 0]
    assert out[:8].eq(0).all() and out[16:].eq(8).all()
    w = fuse_weights(16, "pyramid")
    expected = 8 * w[:8] / (w[8:] + w[:8])  # frame 8+i: weight w[8+i] in window 0 (value 0), w[i] in window 1
    assert torch.allclose(out[8:16], expected)


def test_freenoise_repeats_shuffled_noise():
    noise = torch.randn(1, 4, 48, 2, 2)
    o = ContextOptions(length=16, overlap=4)
    out = freenoise(noise, o, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out[:, :, :16], noise[:, :, :16]) and not torch.equal(out, noise)
    first = [noise[:, :, i] for i in range(16)]
    assert all(any(torch.equal(out[:, :, f], n) for n in first) for f in range(16, 48))  # all from the first window
    again = freenoise(noise, o, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, again)


@pytest.mark.parametrize("kwargs,match", [
    (dict(length=0), "between 1 and"), (dict(overlap=16), "less than the context length"),
    (dict(overlap=-1), "at least 0"), (dict(schedule="random"), "schedule 'random'"),
    (dict(fuse="max"), "fuse method 'max'"), (dict(stride=0), "stride 0")])
def test_bad_options_are_refused(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        ContextOptions(**kwargs)


@pytest.mark.parametrize("frames", [0, -3, 10 ** 9])
def test_bad_frame_counts_are_refused(frames):
    with pytest.raises(ConfigError, match=f"frames {frames}"):
        windows(frames, ContextOptions())


@pytest.mark.skipif(not COMFYUI, reason="COMFYUI_PATH is not set: the parity check with ComfyUI core's windows needs it")
@needs_release((0, 3, 51), "core's context windows (comfy.context_windows)")
def test_same_windows_as_comfyui_core():
    result = run_check("comfy_context_check.py", timeout=300)
    assert result["compared"] > 6000 and result["mismatches"] == [], result
    # where ComfyUI core's uniform schedule emits frames past the clip's end (strided windows longer than the
    # clip), ours differs on purpose: the script checks ours stays valid there, and reports how often that is


def test_starting_noise_types_are_seeded_and_shaped_over_frames():
    from motion_core.context import starting_noise
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(1, 4, 40, 3, 3, generator=g)
    o = ContextOptions(length=16, overlap=4)
    assert torch.equal(starting_noise(noise, "independent", o), noise)
    assert torch.equal(starting_noise(noise, "freenoise", o, seed=5),
                       freenoise(noise, o, generator=torch.Generator().manual_seed(5)))
    repeated = starting_noise(noise, "repeated_context", o)
    assert all(torch.equal(repeated[:, :, i], noise[:, :, i % 16]) for i in range(40))
    constant = starting_noise(noise, "constant", o)
    assert all(torch.equal(constant[:, :, i], noise[:, :, 0]) for i in range(40))
    assert torch.equal(starting_noise(noise, "freenoise", o, seed=5), starting_noise(noise, "freenoise", o, seed=5))
    short = torch.randn(1, 4, 10, 3, 3, generator=g)  # a clip shorter than the window: one window, as given
    assert torch.equal(starting_noise(short, "repeated_context", o), short)
    with pytest.raises(ConfigError, match="'pink' is not one of"):
        starting_noise(noise, "pink", o)
