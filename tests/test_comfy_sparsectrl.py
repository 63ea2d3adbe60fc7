"""SparseCtrl on ComfyUI's own cldm ControlNet (COMFYUI_PATH; skipped otherwise) against the original's recorded
residuals (the node pack's SparseCtrl needs no diffusers), and Load / Apply SparseCtrl through Sample Frames with
context windows."""

import pytest

from test_comfy_host import COMFYUI, run_check

pytestmark = pytest.mark.skipif(not COMFYUI, reason="COMFYUI_PATH is not set to a ComfyUI checkout: the ComfyUI "
                                                    "SparseCtrl check needs a real ComfyUI")


@pytest.fixture(scope="module")
def results():
    return run_check("comfy_sparsectrl_check.py", timeout=600)


def test_cldm_sparsectrl_matches_the_original(results):
    for variant in ("rgb", "scribble"):
        r = results[variant]
        assert r["outputs"] == 12 and r["motion_layers"] == 8, (variant, r)
        assert r["max_rel_err"] <= 1e-5, (variant, r)


def test_keyframes_steer_only_the_windows_that_hold_them(results):
    r = results["nodes"]  # 16 frames in windows 0-7, 4-11, 8-15, one step
    assert r["keyframe_0_frames_12_15_equal_plain"] and r["keyframe_0_frames_0_3_differ"] > 1e-3
    assert r["keyframe_last_frames_0_3_equal_plain"] and r["keyframe_last_frames_12_15_differ"] > 1e-3
    assert r["strength_0_equals_plain"] and r["two_keyframes_4_steps_finite"]


def test_bad_keyframes_are_refused_naming_the_values(results):
    r = results["nodes"]
    assert "1 keyframe images but 2 keyframe_indices ('0, 15')" in r["count_error"]
    assert "RGB SparseCtrl encodes its keyframes with the VAE" in r["rgb_without_vae_error"]
    assert "keyframe 16 is outside the clip of 16 frames" in r["index_error"]
