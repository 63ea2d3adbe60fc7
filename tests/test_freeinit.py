"""FreeInit (motion_core.freeinit, generate(free_init=N)) against diffusers' FreeInitMixin, and its switches."""

import copy

import pytest
import torch

from motion_core import ConfigError, freeinit
from motion_core.pipeline import generate

diffusers = pytest.importorskip("diffusers", reason="the comparison runs diffusers' AnimateDiffPipeline")
pytest.importorskip("transformers", reason="the pipeline's text encoder comes from transformers")

from test_pipeline import base, diffusers_pipeline, random_module  # noqa: E402,F401  (base: a fixture)

RUN = dict(frames=8, steps=3, guidance=7.5, width=32, height=32, seed=5, progress=False)


@pytest.mark.parametrize("method", ["gaussian", "butterworth", "ideal"])
@pytest.mark.parametrize("shape", [(8, 4, 4), (16, 8, 6), (5, 3, 7)])
def test_filters_equal_diffusers(method, shape):
    from diffusers.pipelines.free_init_utils import FreeInitMixin
    mixin = FreeInitMixin()
    for spatial, temporal, order in ((0.25, 0.25, 4), (0.4, 0.1, 2), (1.0, 0.5, 7)):
        theirs = mixin._get_free_init_freq_filter((1, 4, *shape), "cpu", method, order, spatial, temporal)
        ours = freeinit.low_pass_filter(*shape, method, order, spatial, temporal)
        assert ours.dtype == torch.float32 and torch.equal(theirs[0, 0], ours), (method, spatial, temporal)


def test_box_filter_is_the_centred_box():
    mask = freeinit.low_pass_filter(16, 8, 8, "box", spatial=0.5, temporal=0.25)
    # FreeInit's box: half-widths round(H // 2 * d_s) = 2 and round(T // 2 * d_t) = 2, around the centre (8, 4, 4)
    expected = torch.zeros(16, 8, 8)
    expected[6:10, 2:6, 2:6] = 1
    assert torch.equal(mask, expected)


def test_mix_keeps_the_low_frequencies_of_one_and_the_high_of_the_other():
    torch.manual_seed(0)
    a, b = torch.randn(1, 2, 8, 6, 6, dtype=torch.float64), torch.randn(1, 2, 8, 6, 6, dtype=torch.float64)
    ones, zeros = torch.ones(8, 6, 6), torch.zeros(8, 6, 6)
    assert torch.allclose(freeinit.mix(a, b, ones), a, atol=1e-12)
    assert torch.allclose(freeinit.mix(a, b, zeros), b, atol=1e-12)
    mask = freeinit.low_pass_filter(8, 6, 6)
    mixed = freeinit.mix(a, b, mask)
    assert torch.allclose(freeinit.mix(a, b, mask) + freeinit.mix(b, a, mask) - freeinit.mix(b, a, ones), a,
                          atol=1e-12)  # linear: low(a) + high(b) + low(b) + high(a) - b = a
    assert mixed.dtype == torch.float64 and not torch.allclose(mixed, a)


@pytest.mark.parametrize("method,fast", [("butterworth", False), ("gaussian", True)])
def test_free_init_equals_diffusers_in_float64(base, tmp_path, method, fast):  # noqa: F811
    """Same components, weights, seed and DDIM: two FreeInit iterations give the frames of diffusers'
    AnimateDiffPipeline with enable_free_init (float64; the FreeInit step itself runs in float32 in both)."""
    base = copy.deepcopy(base).to(dtype=torch.float64)
    mm = random_module().to(torch.float64)
    for module in mm.modules():  # diffusers' motion blocks normalise across frames: compare the same function
        if hasattr(module, "cross_frame_norm"):
            module.cross_frame_norm = True
    pipe = diffusers_pipeline(base, mm, tmp_path).to(dtype=torch.float64)
    pipe.enable_free_init(num_iters=2, use_fast_sampling=fast, method=method, order=4)
    expected = pipe("a cat running", generator=torch.Generator().manual_seed(RUN["seed"]), output_type="pt",
                    num_frames=RUN["frames"], num_inference_steps=RUN["steps"], guidance_scale=RUN["guidance"],
                    height=RUN["height"], width=RUN["width"]).frames[0]  # (f, 3, h, w)
    steps = []
    got = generate(base, mm, "a cat running", free_init=2, free_init_filter=method, free_init_fast=fast,
                   callback=lambda info: steps.append(info["steps"]), **RUN)
    assert steps == ([1, 3, 3, 3] if fast else [3] * 6)  # coarse to fine: int(3 / 2 * 1) = 1 step, then 3
    diff = (expected.permute(0, 2, 3, 1) - got.frames).abs().max().item()
    assert diff <= 1e-4, diff
    plain = generate(base, mm, "a cat running", **RUN).frames
    assert (plain - got.frames).abs().max() > 1e-3  # FreeInit changed the clip
    assert got.settings["free_init"]["iterations"] == 2


def test_one_iteration_is_no_free_init_and_every_filter_changes_the_result(base):  # noqa: F811
    mm = random_module()
    plain = generate(base, mm, "a cat", **RUN).frames
    assert torch.equal(generate(base, mm, "a cat", free_init=1, free_init_filter="box", **RUN).frames, plain)
    results = {m: generate(base, mm, "a cat", free_init=2, free_init_filter=m, **RUN).frames
               for m in freeinit.FILTERS}
    for m, frames in results.items():
        assert torch.isfinite(frames).all() and (frames - plain).abs().max() > 1e-3, m
    names = list(results)
    for i, m in enumerate(names):
        for other in names[i + 1:]:
            assert (results[m] - results[other]).abs().max() > 1e-4, (m, other)


@pytest.mark.parametrize("bad,match", [
    (dict(free_init=0), "free_init=0"), (dict(free_init=2, free_init_filter="lanczos"), "lanczos"),
    (dict(free_init=2, free_init_spatial=0.0), "spatial stop frequency 0.0"),
    (dict(free_init=2, free_init_temporal=1.5), "temporal stop frequency 1.5"),
    (dict(free_init=2, free_init_order=0), "order=0"),
])
def test_bad_free_init_settings_are_refused_before_sampling(base, bad, match):  # noqa: F811
    calls = []
    with pytest.raises(ConfigError, match=match):
        generate(base, random_module(), "a cat", callback=calls.append, **{**RUN, **bad})
    assert calls == []
