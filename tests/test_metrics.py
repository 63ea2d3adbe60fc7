"""motion_core.metrics on the demo world's clips, whose true motion, colour and style are known."""

import dataclasses

import numpy as np
import pytest
import torch

from motion_core import metrics
from demo import MOTIONS, Scene, render, render_clip, sample_scenes
from demo.world import BACKGROUNDS, COLOURS, SIZES
from motion_core.errors import ConfigError

# the styles the demo measures (its personalised models' and the base's plain one); striped and dotted backgrounds
# are only the base's training textures, never measured, and dots can read as objects. Patterned stripes the object
# with a half-as-bright shade: calibrated as the others, the thresholds unchanged
STYLES = ("plain", "neon", "checkerboard", "patterned")

OTHER_WORDS = {"left": ("right", "up", "down", None), "right": ("left", "up", "down", None),
               "up": ("down", "left", "bouncing", None), "down": ("up", "right", "bouncing", None),
               "bouncing": ("up", "down", "growing", None), "growing": ("bouncing", "left", None)}


def _clips_per_motion(style: str, seed: int, per_motion: int = 2):
    """`per_motion` sampled scenes of each motion word (so colours, shapes, sizes and places vary)."""
    scenes = sample_scenes(80, seed, motion=True, style=style)
    picked = {word: [s for s in scenes if s.motion == word][:per_motion] for word in MOTIONS}
    assert all(len(v) == per_motion for v in picked.values())
    return [s for word in MOTIONS for s in picked[word]]


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("seed", [0, 1])
def test_every_motion_is_recognised_and_no_other(style, seed):
    for scene in _clips_per_motion(style, seed):
        clip = render_clip(scene)
        m = metrics.motion_direction(clip)
        assert metrics.matches_motion(clip, scene.motion), (scene, m)
        for other in OTHER_WORDS[scene.motion]:  # matches_motion(clip, w) is m["direction"] == w
            assert m["direction"] != other, (scene, other)
        assert not metrics.matches_motion(clip, OTHER_WORDS[scene.motion][0])
        assert m["found"] == 1.0
        if scene.motion in ("left", "right", "up", "down"):  # the measured path is the drawn one
            axis, sign = {"left": ("dx", -1), "right": ("dx", 1), "up": ("dy", -1), "down": ("dy", 1)}[scene.motion]
            assert m[axis] == pytest.approx(sign * 0.5, abs=0.03)
            assert m["smoothness"] < 0.25  # constant speed (0.15 at worst: PIL draws on whole 4x pixels)
        if scene.motion == "bouncing":
            assert m["reversals"] >= 2 and abs(m["dy"]) < 0.05
        if scene.motion == "growing":
            assert m["growth"] > 2.5  # scale 0.6 -> 1.4 is x5.4 in area (a little less with the neon glow)


@pytest.mark.parametrize("style", STYLES)
def test_calibrated_at_the_demos_frame_count(style):
    """The demo's calibration (issue: at least 38/40 per motion it uses, stills read as no motion), at its 8 frames
    with the thresholds as they are: 40 rendered clips each of right (its module), up (its MotionLoRA), and still."""
    from demo.models import FRAMES
    from demo.run import LORA_MOTION, MOTION
    assert FRAMES == 8
    for word in (MOTION, LORA_MOTION, None):
        scenes = sample_scenes(40, 1234, motion=word is not None, style=style, motions=(word,) if word else MOTIONS)
        found = [metrics.motion_direction(render_clip(s, FRAMES))["direction"] for s in scenes]
        assert sum(f == word for f in found) == 40, (word, found)


@pytest.mark.parametrize("style", STYLES)
def test_motion_survives_pixel_noise(style):
    """Generated frames are noisy: per-pixel Gaussian noise of 8/255 (a checkerboard border's plain median would
    land between its two colours; jitter would read as bounces) leaves every motion word right."""
    rng = np.random.default_rng(11)
    for scene in _clips_per_motion(style, seed=3, per_motion=1):
        clip = render_clip(scene).astype(np.float32)
        noisy = np.clip(clip + rng.normal(0, 8, clip.shape), 0, 255).astype(np.uint8)
        assert metrics.matches_motion(noisy, scene.motion), (scene, metrics.motion_direction(noisy))


def test_an_object_that_grows_while_it_moves_is_moving_not_growing():
    scene = Scene("circle", "red", "gray", "big", 0.3, 0.5, "growing")
    clip = np.stack([render(dataclasses.replace(scene, x=0.3 + 0.05 * i), t=i / 7) for i in range(8)])
    m = metrics.motion_direction(clip)
    assert m["growth"] > 2.5 and m["direction"] == "right"


@pytest.mark.parametrize("style", STYLES)
def test_still_clips_report_no_motion(style):
    for scene in sample_scenes(6, 4, motion=False, style=style):
        clip = render_clip(scene, frames=8)
        m = metrics.motion_direction(clip)
        assert m["direction"] is None and metrics.matches_motion(clip, None)
        assert (m["dx"], m["dy"], m["smoothness"]) == (0.0, 0.0, 0.0)
        assert not metrics.matches_motion(clip, "left")


@pytest.mark.parametrize("style", ["plain", "checkerboard"])
def test_centroid_and_area_match_the_drawn_circle_for_every_colour_pair(style):
    r = SIZES["big"]
    for colour in COLOURS:
        for background in BACKGROUNDS:
            if colour == background:
                continue
            frame = render(Scene("circle", colour, background, "big", 0.4, 0.55, style=style), 64)
            (x, y), = metrics.centroids(frame)
            assert (x, y) == pytest.approx((0.4, 0.55), abs=0.25 / 64), (colour, background)  # sub-pixel
            assert metrics.areas(frame)[0] == pytest.approx(np.pi * r * r, rel=0.08), (colour, background)


def test_neon_centroid_is_found_despite_the_glow():
    frame = render(Scene("diamond", "purple", "blue", "small", 0.3, 0.7, style="neon"), 64)
    assert metrics.centroids(frame)[0] == pytest.approx((0.3, 0.7), abs=0.25 / 64)


def test_uint8_float_and_torch_inputs_agree():
    clip = render_clip(Scene("square", "yellow", "gray", "small", 0.2, 0.5, "right"), frames=6)
    as_float = clip.astype(np.float32) / 255
    expected = metrics.centroids(clip)
    assert np.array_equal(metrics.centroids(as_float), expected)
    assert np.array_equal(metrics.centroids(torch.from_numpy(as_float)), expected)
    assert metrics.centroids(clip[0]).shape == (1, 2)  # one (h, w, 3) frame


def test_no_object_gives_nan_and_no_motion():
    blank = np.full((4, 16, 16, 3), 90, np.uint8)
    assert np.isnan(metrics.centroids(blank)).all() and (metrics.areas(blank) == 0).all()
    m = metrics.motion_direction(blank)
    assert m["direction"] is None and m["found"] == 0.0
    assert np.isnan(metrics.object_consistency(blank)["shape_iou"])


def test_flicker_is_zero_for_a_still_background_and_large_for_changing_ones():
    for style in STYLES:
        for scene in sample_scenes(3, 9, motion=True, style=style):
            value = metrics.flicker(render_clip(scene, frames=8))
            assert value == 0.0 if style != "neon" else value < 0.005, (scene, value)  # neon: the glow's tail
    scene = Scene("circle", "red", "gray", "small", 0.3, 0.5, "right")
    clip = render_clip(scene, frames=8)
    rng = np.random.default_rng(0)
    mask = metrics.object_mask(clip)  # (f, h, w)
    recoloured = np.where(mask[..., None], clip, rng.integers(0, 120, (8, 1, 1, 3)).astype(np.uint8))
    assert metrics.flicker(recoloured) > 0.1  # a new dark background colour every frame
    noisy = np.clip(clip + rng.normal(0, 8, clip.shape), 0, 255).astype(np.uint8)  # per-pixel noise, sigma 8/255
    assert 0.02 < metrics.flicker(noisy) < 0.06  # E|a - b| for two N(0, s) is 2s/sqrt(pi) = 0.035


def test_object_consistency_tells_stable_from_changing_objects():
    scene = Scene("triangle", "green", "brown", "big", 0.3, 0.5, "right", "checkerboard")
    stable = metrics.object_consistency(render_clip(scene, frames=8))
    assert stable["colour_std"] < 0.02 and stable["area_std"] < 0.05 and stable["shape_iou"] > 0.9
    colours = np.stack([render(dataclasses.replace(scene, colour=("red", "yellow")[i % 2], motion=None))
                        for i in range(8)])
    assert metrics.object_consistency(colours)["colour_std"] > 0.1
    shapes = np.stack([render(dataclasses.replace(scene, shape=("circle", "triangle")[i % 2], motion=None))
                       for i in range(8)])
    shaky = metrics.object_consistency(shapes)
    assert shaky["shape_iou"] < stable["shape_iou"] - 0.1 and shaky["area_std"] > 0.1


def test_smoothness_tells_steady_from_jumpy_paths():
    clip = render_clip(Scene("circle", "white", "blue", "small", 0.2, 0.5, "right"), frames=12)
    steady = metrics.motion_direction(clip)["smoothness"]
    jumpy = metrics.motion_direction(clip[np.random.default_rng(1).permutation(12)])["smoothness"]
    assert steady < 0.1 and jumpy > 1.0


def test_a_centre_drawn_anew_in_every_frame_is_no_motion_not_a_bounce():
    """Independent frames put the object somewhere else each time: that zigzags (bounce-like reversals) and drifts,
    but it is no motion word (it was read as "bouncing" before JITTER)."""
    rng = np.random.default_rng(5)
    zigzags = 0
    for _ in range(5):
        frames = np.stack([render(Scene("square", "red", "blue", "big", float(x), float(y)))
                           for x, y in rng.uniform(0.3, 0.7, (16, 2))])
        m = metrics.motion_direction(frames)
        assert m["smoothness"] > metrics.JITTER and m["direction"] is None, m
        zigzags += m["reversals"] >= metrics.BOUNCES
    assert zigzags >= 3  # what the bounce rule alone would have called "bouncing"


def test_temporal_background_finds_an_object_on_a_textured_still_background():
    rng = np.random.default_rng(3)
    texture = rng.integers(0, 256, (32, 32, 3)).astype(np.uint8)  # the border has no dominant colour
    clip = render_clip(Scene("square", "white", "gray", "small", 0.8, 0.5, "left"), frames=10)
    square = metrics.object_mask(clip, np.asarray(BACKGROUNDS["gray"]) / 255)  # exactly where the square is
    textured = np.where(square[..., None], clip, texture)
    assert metrics.motion_direction(textured)["direction"] != "left"  # the border palette is lost ...
    assert metrics.matches_motion(textured, "left", background="temporal")  # ... the temporal median is not


def test_domain_score_separates_neon_and_checkerboard_from_plain():
    stills = {style: np.stack([render(s) for s in sample_scenes(16, 20 + i, motion=False, style=style)])
              for i, style in enumerate(STYLES)}
    for seed in range(3):
        clips = {style: render_clip(sample_scenes(1, 50 + seed, motion=True, style=style)[0], frames=8)
                 for style in STYLES}
        for style in ("neon", "checkerboard"):
            assert metrics.domain_score(clips[style], stills[style], stills["plain"]) > 0.8, (style, seed)
            assert metrics.domain_score(clips["plain"], stills[style], stills["plain"]) < 0.2, (style, seed)
    assert metrics.style_stats(stills["neon"]).shape == (16, len(metrics.STYLE_FEATURES))
    with pytest.raises(ConfigError, match="same style"):
        metrics.domain_score(clips["plain"], stills["plain"], stills["plain"])


def test_evaluate_and_table():
    scene = Scene("circle", "red", "blue", "small", 0.8, 0.5, "left")
    row = metrics.evaluate(render_clip(scene, frames=8), "left")
    assert row["direction"] == "left" and row["matches"] is True and row["flicker"] == 0.0
    assert set(row) == {"direction", "prompt", "matches", "dx", "dy", "smoothness", "found", "flicker",
                        "colour_std", "area_std", "shape_iou"}
    still = metrics.evaluate(render_clip(dataclasses.replace(scene, motion=None), frames=4))
    text = metrics.table([row, still])
    lines = text.splitlines()
    assert len(lines) == 4 and lines[0].split()[:3] == ["direction", "prompt", "matches"]
    assert lines[2].split()[:3] == ["left", "left", "True"] and lines[3].split()[:3] == ["-", "-", "-"]
    assert f"{row['dx']:.3f}" in lines[2]


def test_bad_arguments_are_refused():
    with pytest.raises(ConfigError, match="expected"):
        metrics.centroids(np.zeros((4, 8, 8), np.uint8))
    with pytest.raises(ConfigError, match="sideways"):
        metrics.matches_motion(np.zeros((2, 8, 8, 3)), "sideways")
    with pytest.raises(ConfigError, match="temporal"):
        metrics.object_mask(np.zeros((2, 8, 8, 3)), "median")


def reference_cka(x, y):
    """Kornblith et al. (2019), eq. 3-4 as written: HSIC with an explicit centring matrix, float64."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    n = len(x)
    h = np.eye(n) - np.ones((n, n)) / n
    k, l_ = x @ x.T, y @ y.T
    hsic = lambda a, b: np.trace(a @ h @ b @ h) / (n - 1) ** 2  # noqa: E731
    return hsic(k, l_) / np.sqrt(hsic(k, k) * hsic(l_, l_))


def test_linear_cka_equals_the_reference_and_has_its_invariances():
    from motion_core.metrics import linear_cka
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 30))
    y = x @ rng.normal(size=(30, 20)) + 0.5 * rng.normal(size=(40, 20))
    assert abs(linear_cka(x, y) - reference_cka(x, y)) < 1e-12
    z = rng.normal(size=(40, 25))
    assert abs(linear_cka(x, z) - reference_cka(x, z)) < 1e-12
    q, _ = np.linalg.qr(rng.normal(size=(30, 30)))
    assert abs(linear_cka(x, 3.0 * x @ q + 7.0) - 1.0) < 1e-12  # rotation, uniform scale, offset: the same
    assert linear_cka(x, y) > linear_cka(x, z)
    with pytest.raises(Exception, match="same n >= 2"):
        linear_cka(x, y[:10])


def test_unet_feature_cka_is_one_for_a_model_with_itself_and_less_for_another():
    diffusers = pytest.importorskip("diffusers")
    import torch
    from motion_core.metrics import unet_feature_cka
    config = dict(sample_size=8, in_channels=3, out_channels=3, block_out_channels=(8, 16), layers_per_block=1,
                  cross_attention_dim=8, norm_num_groups=4, attention_head_dim=2,
                  down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                  up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"))
    torch.manual_seed(0)
    a, b = diffusers.UNet2DConditionModel(**config).eval(), diffusers.UNet2DConditionModel(**config).eval()
    sample, t, text = torch.randn(12, 3, 8, 8), torch.randint(0, 1000, (12,)), torch.randn(12, 4, 8)
    same = unet_feature_cka(a, a, sample, t, text)
    other = unet_feature_cka(a, b, sample, t, text)
    assert set(same) == {"down_0", "down_1", "mid", "up_0", "up_1", "mean"}
    assert all(abs(v - 1.0) < 1e-9 for v in same.values())
    assert other["mean"] < 0.99
