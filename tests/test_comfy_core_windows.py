"""Inject into Model under ComfyUI's own context windows (its Context Windows (Manual) node, core since 0.3.51) in a
real ComfyUI (COMFYUI_PATH; skipped otherwise, or when that ComfyUI predates the node), checked in ComfyUI's Python
by tests/comfy_core_windows_check.py."""

from pathlib import Path

import pytest

from test_comfy_host import COMFYUI, run_check

pytestmark = pytest.mark.skipif(
    not COMFYUI or not (Path(COMFYUI) / "comfy_extras" / "nodes_context_windows.py").is_file(),
    reason="needs COMFYUI_PATH set to a ComfyUI with its Context Windows (Manual) node (0.3.51 or newer)")


@pytest.fixture(scope="module")
def findings():
    return run_check("comfy_core_windows_check.py")


def test_the_motion_module_sees_each_of_cores_windows_with_ad_params(findings):
    found = findings["constant"]
    assert found["frames_per_call"] == [16] and found["finite"]  # 48 frames, one 16-frame window per call
    assert found["ad_params_windows"] and found["full_length"] == [48]  # published for ACN / IPAdapter
    assert found["calls"] == 2 * len(findings["core_windows"])  # 2 steps


def test_per_frame_strength_follows_cores_windows(findings):
    found = findings["per_frame"]
    assert found["motion_windows"]  # the windows the values are taken by: core's, in the whole clip's frame numbers
    assert found["first_frames_as_strength_0"] == 0.0  # window 0 alone, its values 0: the plain image model
    assert found["last_frames_moved"] > 1e-3  # the last window's values are 1: it moves


def test_what_core_controlnet_hints_do_under_cores_windows_is_known(findings):
    """Core's handler does not slice a core ControlNet's hint per window (Context Options does): the README says so.
    If a ComfyUI release starts slicing them, this fails and the README's sentence must change."""
    assert findings["core_controlnet_hints"]["windows_read"]  # hints were read (and not per window)
    assert findings["core_controlnet_hints"]["follow_windows"] is False


@pytest.mark.parametrize("order", ["core_then_ours", "ours_then_core"])
def test_core_windows_with_context_options_are_refused_naming_both_nodes(findings, order):
    error = findings[order]
    assert error is not None and error.startswith("ConfigError")
    assert "Context Windows (Manual)" in error and "Context Options" in error


def test_context_options_without_windows_runs_under_core_windows(findings):
    assert findings["context_length_0_under_core"]
