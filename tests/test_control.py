"""Motion that varies (motion_core.control): per-frame curves through context windows, region masks at a block,
step keyframes exact to the plain model, and the errors for bad values."""

import pytest
import torch

from conftest import random_module
from motion_core import ConfigError, FrameCountError
from motion_core.context import ContextOptions, windows
from motion_core.control import Curve, MotionControl, apply_motion, frame_values
from motion_core.frames import Call, apply_temporal
from motion_core.patch import inject
from test_patch import _inputs, plain
from unets import SD15, random_unet


def test_curve_interpolates_and_holds_its_ends():
    values = Curve.parse("4:1.0, 12:0.2").values(16)
    assert values[:5].tolist() == [1.0] * 5 and values[12:].tolist() == pytest.approx([0.2] * 4)
    assert values[8].item() == pytest.approx(0.6)
    assert Curve.parse("0.5").values(3).tolist() == [0.5] * 3
    assert Curve.parse("0:0\n 8:1; 16:0").values(17)[8].item() == 1.0  # newlines and semicolons separate too


@pytest.mark.parametrize("text,named", [("0:1.0, x:2", "'x:2'"), ("", "empty"), ("0:1, 0:0.5", "frame 0 twice"),
                                        ("1.5:0.3", "'1.5:0.3'"), ("0:1, 4:nan", "'4:nan'"), ("-1:0.5", "'-1:0.5'")])
def test_a_curve_that_does_not_parse_names_the_piece(text, named):
    with pytest.raises(ConfigError, match=named):
        Curve.parse(text, "strength")


@pytest.mark.parametrize("kwargs,named", [
    (dict(strength="0:1.0, 8:1.5"), "strength=1.5 must lie in \\[0, 1\\]"),
    (dict(scale=[1.0, -0.5]), "scale=-0.5 must lie in at least 0"),
    (dict(start=-0.1), "start=-0.1 must lie in \\[0, 1\\]"),
    (dict(end=1.5), "end=1.5 must lie in \\[0, 1\\]"),
    (dict(start=0.8, end=0.2), "start=0.8 is after end=0.2"),
    (dict(mask=torch.full((8, 8), 2.0)), "motion mask value=2 must lie in \\[0, 1\\]"),
    (dict(mask=torch.ones(2, 3, 8, 8)), "motion mask has shape \\(2, 3, 8, 8\\)"),
])
def test_bad_values_are_refused_naming_them(kwargs, named):
    with pytest.raises(ConfigError, match=named):
        MotionControl(**kwargs)


class Series:
    """What a pandas Series offers here (FizzNodes' value schedules hand one over on a FLOAT socket)."""

    def __init__(self, values):
        self.values = values

    def tolist(self):
        return list(self.values)


@pytest.mark.parametrize("given", [[0.0, 0.5, 1.0], (0.0, 0.5, 1.0), ([0.0, 0.5, 1.0],), torch.tensor([0.0, 0.5, 1.0]),
                                   torch.tensor([[0.0], [0.5], [1.0]]), Series([0.0, 0.5, 1.0])],
                         ids=["list", "tuple", "1-tuple around a list", "tensor", "column", "series"])
def test_per_frame_values_from_other_packs_become_one_value_per_frame(given):
    values = frame_values(given, "strength_values")
    assert isinstance(values, torch.Tensor) and values.tolist() == [0.0, 0.5, 1.0]
    assert MotionControl(strength=values).strength.tolist() == [0.0, 0.5, 1.0]


def test_one_value_is_every_frames_and_other_things_are_refused_naming_the_input():
    for one, expected in ((0.5, 0.5), ([0.5], 0.5), ((2,), 2.0), (torch.tensor([[0.8]]), 0.8)):
        found = frame_values(one)
        assert isinstance(found, float) and found == pytest.approx(expected)
    with pytest.raises(ConfigError, match="scale_values: expected a number or one number per frame"):
        frame_values({"a": 1}, "scale_values")
    with pytest.raises(ConfigError, match=r"scale_values: per-frame values have shape \(2, 3\)"):
        frame_values(torch.ones(2, 3), "scale_values")


def test_a_mask_or_values_for_another_clip_length_are_refused_before_sampling():
    with pytest.raises(FrameCountError, match="the motion mask has 3 frames but the clip has 16"):
        MotionControl(mask=torch.ones(3, 8, 8)).check_length(16)
    with pytest.raises(FrameCountError, match="strength has 4 per-frame values but the clip has 16"):
        MotionControl(strength=[1.0, 0.5, 0.5, 1.0]).check_length(16)
    MotionControl(mask=torch.ones(1, 8, 8), strength="0:1, 30:0").check_length(16)  # one mask, any curve: fine


def test_per_frame_values_follow_the_window():
    curve = Curve.parse("0:0.0, 31:1.0")
    control = MotionControl(strength=curve, scale=torch.linspace(0.5, 2.0, 32))
    window = tuple(range(8, 24))
    call = Call(16, window=window, length=32)
    x = torch.zeros(2 * 16, 4, 2, 2)  # two clips (cond, uncond) of the window's 16 frames
    strength = control.strength_at(call, x)
    expected = curve.values(32)[8:24]
    assert torch.equal(strength.flatten(), torch.cat([expected, expected]))
    assert torch.equal(control.scale_at(call, x), torch.linspace(0.5, 2.0, 32)[8:24])
    strided = Call(4, window=(0, 10, 20, 30), length=32)  # uniform schedules' strided windows
    assert torch.equal(control.strength_at(strided, torch.zeros(4, 1, 1, 1)).flatten(), curve.values(32)[[0, 10, 20, 30]])


def _block(seed=0):
    """One random injection point and its input ((b f), c, h, w) for 2 clips of 8 frames."""
    module = random_module("v2", seed).down_blocks[1].motion_modules[0]
    x = torch.randn(16, 64, 8, 8, generator=torch.Generator().manual_seed(seed))
    return module, x


@pytest.mark.parametrize("mask_size", [8, 32, 4])  # the block's size, larger (area), smaller (bilinear)
def test_mask_zero_is_the_plain_block_and_one_is_the_full_module(mask_size):
    module, x = _block()
    mask = torch.zeros(mask_size, mask_size)
    mask[:, mask_size // 2:] = 1.0  # motion in the right half
    with torch.no_grad():
        out = apply_motion(module, x, Call(8), MotionControl(mask=mask))
        full = apply_temporal(module, x, 8)
    resized = MotionControl(mask=mask)._mask_at(Call(8), 8, 8, x)[0, 0]
    outside, inside = resized == 0, resized == 1
    assert outside.sum() >= 16 and inside.sum() >= 16
    assert torch.equal(out[..., outside], x[..., outside])  # the plain image model's block output, bit for bit
    assert torch.allclose(out[..., inside], full[..., inside], atol=1e-6, rtol=0)
    between = ~(outside | inside)
    if between.any():  # a soft edge blends the two
        assert not torch.equal(out[..., between], x[..., between])


def test_per_frame_masks_follow_the_window():
    module, x = _block(1)
    masks = torch.zeros(16, 8, 8)
    masks[8:] = 1.0  # motion only in the clip's second half
    with torch.no_grad():
        first = apply_motion(module, x, Call(8, window=tuple(range(8)), length=16), MotionControl(mask=masks))
        second = apply_motion(module, x, Call(8, window=tuple(range(8, 16)), length=16), MotionControl(mask=masks))
    assert torch.equal(first, x)
    assert torch.equal(second, apply_temporal(module, x, 8, strength=torch.ones(16, 1, 8, 8)))


def test_per_frame_strength_and_scale_through_the_whole_unet():
    unet = random_unet(SD15)
    sample, t, context = _inputs()
    mm = random_module("v2")
    with torch.no_grad():
        outs = {}
        for name, kw in (("full", {}), ("ones", dict(strength=[1.0] * 8, scale="0:1")),
                         ("ramp", dict(strength="0:0, 7:1")), ("scaled", dict(scale="0:1, 7:2"))):
            model = inject(unet, mm, **kw)
            outs[name] = model(sample, t, context)
            model.eject()
    assert torch.equal(outs["ones"], outs["full"])  # per-frame ones = the constant path, bit for bit
    assert not torch.allclose(outs["ramp"], outs["full"]) and not torch.allclose(outs["scaled"], outs["full"])


@pytest.mark.parametrize("version", ["v1", "v2"])  # v1: its cross-frame GroupNorms must switch off too
def test_step_keyframes_give_the_plain_model_before_start_and_the_module_after(version):
    unet = random_unet(SD15)
    sample, _, context = _inputs()
    mm = random_module(version)
    timesteps = torch.arange(901, 0, -100)  # DDIM's 10 steps over 1000 training timesteps
    with torch.no_grad():
        gated = inject(unet, mm, start=0.5)
        got = [gated(sample, torch.tensor([t]), context) for t in timesteps]
        gated.eject()
        full = inject(unet, mm)
        want = [full(sample, torch.tensor([t]), context) for t in timesteps]
        full.eject()
        plain_out = [plain(unet, sample, torch.tensor([t]), context) for t in timesteps]
    for i in range(5):  # 901 .. 501: the first half of the sampling
        assert torch.equal(got[i], plain_out[i]), i
        assert not torch.equal(got[i], want[i])
    for i in range(5, 10):  # 401 .. 1
        assert torch.equal(got[i], want[i]), i


def test_generate_hands_each_window_its_frames(tmp_path):
    pytest.importorskip("diffusers")
    from motion_core.base import load_base
    from motion_core.pipeline import generate
    from motion_core.tiny import build_tiny_base
    from test_pipeline import random_module as pipeline_module
    base = load_base(build_tiny_base(tmp_path / "base", words=["cat"]))
    seen = []

    def strength(call):
        seen.append((call.window, call.length, call.timestep))
        return 1.0
    options = ContextOptions(length=8, overlap=4, schedule="uniform")
    generate(base, pipeline_module(), "a cat", frames=12, steps=3, width=32, height=32, guidance=1.0,
             context=options, motion_strength=strength, progress=False)
    assert {length for _, length, _ in seen} == {12}
    steps = sorted({t for _, _, t in seen}, reverse=True)
    assert len(steps) == 3
    for i, t in enumerate(steps):
        got = sorted({w for w, _, s in seen if s == t})
        assert got == sorted(tuple(w) for w in windows(12, options, i))
