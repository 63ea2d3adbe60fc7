"""Context windows on the MODEL in a real ComfyUI (COMFYUI_PATH; skipped otherwise), checked in ComfyUI's Python by
tests/comfy_windows_check.py: any core sampler samples long clips in windows, and every per-frame input follows
each window (DESIGN.md invariant 8): ControlNet hints (plain, VAE-encoded, chained), mask conditioning, a latent
noise mask, ad_params; ComfyUI's memory estimate counts one window."""

import pytest

from test_comfy_host import COMFYUI, run_check

pytestmark = pytest.mark.skipif(not COMFYUI, reason="COMFYUI_PATH is not set to a ComfyUI checkout: the context "
                                                    "window tests need a real ComfyUI")
CASES = [f"{schedule}_{case}" for schedule in ("static", "uniform") for case in ("plain", "vae", "chained")]


@pytest.fixture(scope="module")
def findings():
    return run_check("comfy_windows_check.py")


@pytest.mark.parametrize("case", CASES)
def test_each_window_is_steered_by_its_own_hint_frames(findings, case):
    found = findings[case]
    assert found["unet_windows"] and found["hint_windows"]
    assert found["each_window_sees_its_own_hint_frames"]  # the control calls right before each UNet call
    if case.endswith("chained"):
        assert found["chained_hint_windows"]
    if case.endswith("vae"):  # each frame's hint encoded once per sampling (2 steps), not once per step
        assert found["vae_frames_encoded"] == found["frames_in_step0_windows"]
    assert found["same_twice"] and found["control_untouched"]  # the user's control objects: as they were


@pytest.mark.parametrize("schedule", ["static", "uniform"])
def test_a_t2i_adapter_runs_once_per_window_on_that_windows_hint_frames(findings, schedule):
    found = findings[f"{schedule}_t2i"]
    assert found["windows"] and found["runs"] == found["windows_in_step0"]  # 2 steps, each window's features once
    assert findings["t2i_last_frames_follow_their_hints"] > 0.1 and findings["t2i_first_frames_same"] == 0.0


def test_the_reported_symptom_is_gone(findings):
    """16 black then 32 white hint frames against all black: the last frames differ, the first (window 0 alone,
    one step) are identical; a single hint image still steers every frame; a short hint video is refused."""
    assert findings["last_frames_follow_their_hints"] > 0.1
    assert findings["first_frames_same_hints_same_output"] == 0.0
    assert findings["one_hint_image_for_all_frames_finite"]
    assert "30 frames" in findings["short_hint_error"] and "48" in findings["short_hint_error"]


@pytest.mark.parametrize("setting", ["static_independent", "uniform_freenoise"])
def test_every_core_sampler_samples_in_windows_as_sample_frames_does(findings, setting):
    found = findings[f"samplers_{setting}"]
    assert found["ksampler_vs_sample_frames"] == 0.0
    assert found["ksampler_vs_custom_advanced"] == 0.0
    # a KSamplerAdvanced split rounds the latent through process_latent_out / in, as core's own split does
    assert found["ksampler_vs_advanced_split"] / found["largest_latent"] < 1e-5
    assert findings["core_split_relative_diff"] < 1e-5
    assert findings["one_window_clip_unchanged_by_options"]


def test_ad_params_give_each_window_its_frames(findings):
    assert findings["ad_params_sub_idxs"] == [list(range(0, 16)), list(range(12, 28)), list(range(24, 40)),
                                              list(range(32, 48))]
    assert 48 in findings["ad_params_full_length"]


def test_per_frame_mask_conditioning_follows_the_windows(findings):
    assert findings["masked_cond_last_frames_change"] > 0.1 and findings["masked_cond_first_frames_same"] == 0.0


def test_a_per_frame_latent_noise_mask_keeps_the_video_outside_each_frames_mask(findings):
    assert findings["noise_mask_outside_max_diff"] < 1e-4 and findings["noise_mask_inside_mean_diff"] > 1.0


def test_comfy_reserves_memory_for_one_window(findings):
    windowed_64, plain_16, windowed_16 = findings["memory_estimates"]
    assert abs(windowed_64 - plain_16) <= 0.05 * plain_16 and windowed_16 == plain_16
    if "memory_estimate_64_frames_whole" in findings:  # (a ComfyUI with sampler_helpers.estimate_memory)
        assert findings["memory_estimate_64_frames_whole"] > 3 * plain_16  # what it was before: the whole clip


@pytest.mark.parametrize("noise_type", ["repeated_context", "constant"])
def test_noise_types_reach_any_sampler(findings, noise_type):
    found = findings[f"noise_{noise_type}"]
    assert found["shaped"] and found["ksampler_vs_sample_frames"] == 0.0
    assert found["frames_differ_at_start"] == (noise_type != "constant")
    assert findings["constant_noise_without_windows"]  # a clip of one window still gets its starting noise
