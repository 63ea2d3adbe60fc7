"""The node pack inside a real ComfyUI (COMFYUI_PATH; skipped otherwise): loaded as ComfyUI loads packs, run on a
tiny SD1.5-layout ComfyUI model through core's KSampler and through Sample Frames."""


import pytest

from test_comfy_host import COMFYUI, release, run_check

pytestmark = pytest.mark.skipif(not COMFYUI, reason="COMFYUI_PATH is not set to a ComfyUI checkout: the node pack "
                                                    "tests need a real ComfyUI")


@pytest.fixture(scope="module")
def findings():
    return run_check("comfy_nodes_check.py")


def test_every_node_registers(findings):
    assert findings["nodes"] == ["MC_ApplyMotionLoRA", "MC_ApplySparseCtrl", "MC_ContextOptions",
                                 "MC_FreeInitOptions", "MC_InjectMotionModule", "MC_LoadMotionModule",
                                 "MC_LoadSparseCtrl", "MC_PromptTravel", "MC_SampleFrames", "MC_SaveAnimation",
                                 "MC_TrainMotionModule"]


def test_ksampler_and_sample_frames_agree_and_motion_matters(findings):
    assert findings["ksampler_vs_sample_frames_max_abs"] == 0.0
    assert findings["motion_changes_output"]


def test_sampler_custom_advanced_works_with_the_injected_model(findings):
    assert findings["sampler_custom_advanced_vs_ksampler_max_abs"] == 0.0


def test_core_sampler_hooks_still_run(findings):
    assert findings["core_hooks_ran"]["pre_cfg"] > 0
    if release() >= (0, 3, 44):  # (the calc_cond_batch hook's first release)
        assert findings["core_hooks_ran"]["calc_cond_batch"] > 0
    assert findings["core_hooks_same_result"]


def test_long_clip_with_prompt_travel_and_freenoise(findings):
    assert findings["long_shape"] == [48, 4, 2, 2] and findings["long_finite"]


def test_errors_name_the_limit_and_the_fix(findings):
    assert "holds 32 frames; the batch has 48" in findings["too_many_frames_error"]
    assert "context length" in findings["too_many_frames_error"]
    assert "SDXL motion module but the model is SD1.5" in findings["wrong_family_error"]


def test_base_model_is_untouched(findings):
    assert findings["base_same_samples_after"] and findings["base_unchanged"]
    assert findings["base_sampling_unchanged"] and findings["layers_left_in_base"] == 0
    injected, base = findings["sigma_max_injected_vs_base"]
    assert base == pytest.approx(14.6146, abs=1e-3)  # SD's scaled-linear betas
    assert injected == pytest.approx(25.1461, abs=1e-3)  # AnimateDiff's linear betas (ComfyUI: sqrt_linear)


def test_save_animation_embeds_the_workflow(findings):
    saved = findings["saved"]
    assert saved["exists"]
    assert saved["metadata"] == {"prompt": {"1": {"class_type": "X"}}, "workflow": {"nodes": []}}
    assert saved["ui"]["animated"] == [True] and saved["ui"]["frames"] == [16]


def test_auto_beta_schedule_gives_animatelcm_lcm_timesteps_on_animatediff_betas(findings):
    found = findings["animatelcm_sampling"]
    assert {"ModelSamplingDiscreteDistilled", "LCM"} <= set(found["classes"]) and found["sigmas"] == 50
    assert found["sigma_max"] == found["v2_sigma_max"]  # the same betas (sqrt_linear to 0.012), at t=999
