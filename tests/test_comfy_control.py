"""Motion control and FreeInit in a real ComfyUI (COMFYUI_PATH; skipped otherwise): Inject into Model's mask, curves
and start / end percent, FreeInit Options through Sample Frames and through Context Options + KSampler."""

import pytest

from test_comfy_host import COMFYUI, run_check

pytestmark = pytest.mark.skipif(not COMFYUI, reason="COMFYUI_PATH is not set to a ComfyUI checkout: the node pack "
                                                    "tests need a real ComfyUI")


@pytest.fixture(scope="module")
def findings():
    return run_check("comfy_control_check.py")


def test_a_mask_blends_the_plain_model_and_the_module(findings):
    assert findings["motion_matters"] > 1e-3
    assert findings["mask_zero_vs_strength_zero"] == 0.0  # black everywhere: the plain image model, bit for bit
    assert findings["mask_one_vs_no_mask"] <= 1e-6  # white everywhere (one mask per frame): the full module
    assert min(findings["mask_half_vs_full_and_still"]) > 1e-4


def test_curves_and_windows(findings):
    assert findings["curve_one_vs_none"] == 0.0 and findings["curve_zero_vs_strength_zero"] == 0.0
    assert min(findings["curve_ramp_vs_full_and_still"]) > 1e-4
    assert findings["curve_through_windows_finite"]


def test_start_and_end_percent_switch_the_module_per_step(findings):
    # 5 euler steps of the normal scheduler, at timesteps 999, 749, 499, 250, 0: the module acts from 50% (t <= 499.5)
    # on, so start 0.5 is the plain model for the first two steps (and after them the paths part), end 0.5 the
    # full module for the first two
    assert findings["from_half_equals_still_per_step"] == [True, True, False, False, False]
    assert findings["to_half_equals_full_per_step"] == [True, True, False, False, False]


def test_bad_input_is_refused_before_sampling_naming_the_value(findings):
    assert "motion mask has 3 frames but the clip has 16" in findings["mask_frames_error"]
    assert findings["steps_run_before_mask_error"] == 0
    assert "strength_curve '0:1, 8=0.5': '8=0.5' is not frame:value" in findings["curve_error"]
    assert "start=0.6 is after end=0.2" in findings["percent_error"]


def test_free_init(findings):
    assert findings["free_init_1_vs_none"] == 0.0
    assert min(findings["free_init_filters_vs_none"].values()) > 1e-4
    assert findings["free_init_filters_pairwise_min"] > 1e-5
    assert findings["free_init_ksampler_vs_sample_frames"] == 0.0 and findings["free_init_rounds"] == 2
    assert findings["free_init_start_vs_generate_formula"] <= 1e-5
    assert 0.5 < findings["free_init_start_scale"] < 1.5
    assert findings["free_init_fast_steps"] == [2, 4, 6] and findings["free_init_fast_first_sigma_kept"]
