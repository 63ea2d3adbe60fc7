"""Train Motion Module inside a real ComfyUI (COMFYUI_PATH; skipped otherwise, or when ComfyUI's environment lacks
the train extra): cancel from the UI mid-run leaves a resumable checkpoint, the resumed run equals a straight one,
the files land in the model folders, the base model is untouched, MotionLoRA mode merges back; before 0.3.41 the
node refuses, naming the release it needs."""


import pytest

from test_comfy_host import COMFYUI, needs_release, release, run_check

pytestmark = pytest.mark.skipif(not COMFYUI, reason="COMFYUI_PATH is not set to a ComfyUI checkout: the node pack "
                                                    "tests need a real ComfyUI")
TRAINS = needs_release((0, 3, 41), "training through the UNet (residuals added out of place)")


@pytest.fixture(scope="module")
def findings():
    found = run_check("comfy_train_check.py")
    if "skipped" in found:
        pytest.skip(found["skipped"])
    return found


@TRAINS
def test_cancel_from_the_ui_leaves_a_resumable_checkpoint_and_resume_is_exact(findings):
    assert findings["cancel_raised"] == "InterruptProcessingException"
    assert findings["progress_at_cancel"] == [1, 2] and findings["step_at_cancel"] == 2
    assert findings["resumed_equals_straight"]


@TRAINS
def test_the_saved_file_is_the_output_and_it_trained(findings):
    assert findings["saved_equals_output"] and findings["trained"]
    assert findings["output_injects"] == "ModelPatcher"


@TRAINS
def test_base_model_untouched(findings):
    assert findings["base_unchanged"] and findings["layers_left_in_base"] == 0


@TRAINS
def test_motion_lora_mode(findings):
    assert findings["lora_file"] == "motion-lora"
    assert findings["lora_output_equals_loader_merge"] and findings["lora_changed_module"]


@pytest.mark.skipif(release() >= (0, 3, 41), reason="the refusal is for releases before 0.3.41; this one trains")
def test_an_older_release_refuses_to_train_naming_the_release_needed(findings):
    assert findings["refused"].startswith("ConfigError: Train Motion Module needs ComfyUI 0.3.41 or newer: this is "
                                          "0.3.")
