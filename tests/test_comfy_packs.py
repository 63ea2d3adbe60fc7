"""motion_core beside the node packs AnimateDiff workflows combine it with, in a real ComfyUI (COMFYUI_PATH), each
pack at the commit named here, from the folder its environment variable names (fetch it there yourself: it is
never part of this repository); a pack that is absent skips its tests, saying which variable and commit. Checked in
ComfyUI's Python by tests/comfy_packs_check.py."""

import os
from pathlib import Path

import pytest

from test_comfy_host import COMFYUI, run_check

PACKS = {  # variable: (repository, commit tested)
    "ACN_PATH": ("Kosinkadink/ComfyUI-Advanced-ControlNet", "2bde95a468ce5fd3959f646258606ae221fa1e17"),
    "ADE_PATH": ("Kosinkadink/ComfyUI-AnimateDiff-Evolved", "90fb1331201a4b29488089e4fbffc0d82cc6d0a9"),
    "VHS_PATH": ("Kosinkadink/ComfyUI-VideoHelperSuite", "08e8df15db24da292d4b7f943c460dc2ab442b24"),
    "IPADAPTER_PATH": ("cubiq/ComfyUI_IPAdapter_plus", "9d076a3df0d2763cef5510ec5ab807f6632c39f5"),
    "FIZZNODES_PATH": ("FizzleDorf/ComfyUI_FizzNodes", "7d6ea60c55ebd1268bd76fa462da052852bff192"),
    "KJNODES_PATH": ("kijai/ComfyUI-KJNodes", "3fcd22f2fe2be69c3229f192362b91888277cbcb"),
}


def needs(*variables: str):
    """Skip unless COMFYUI_PATH and every pack variable point at folders."""
    missing = [v for v in variables if not os.environ.get(v) or not (Path(os.environ[v]) / "__init__.py").is_file()]
    reason = "; ".join(f"set {v} to {PACKS[v][0]} at {PACKS[v][1][:12]}" for v in missing)
    return pytest.mark.skipif(not COMFYUI or bool(missing),
                              reason=reason if COMFYUI else "COMFYUI_PATH is not set to a ComfyUI checkout")


@pytest.fixture(scope="module")
def acn():
    return run_check("comfy_packs_check.py", "acn")


@needs("ACN_PATH")
@pytest.mark.parametrize("route", ["hints_ksampler", "hints_sample_frames", "masks"])
def test_advanced_controlnet_inputs_follow_each_window(acn, route):
    """Apply Advanced ControlNet's hint video (through KSampler + Context Options and through Sample Frames) and its
    mask per frame: every window's control call reads that window's frames, right before its UNet call."""
    assert acn[route]["unet_windows"] and acn[route]["paired"], acn[route]


@needs("ACN_PATH")
def test_advanced_controlnet_latent_keyframes_land_on_their_frames(acn):
    found = acn["latent_keyframes"]
    assert found["windows"] and found["strengths_on_their_frames"], found
    from motion_core.context import ContextOptions, windows
    holding = [w[0] for w in windows(48, ContextOptions(16, 4, "static"), 0) if 30 in w]
    assert holding and found["keyframe_30_seen_in"] == holding  # the windows that hold frame 30, and only they


@needs("ACN_PATH")
def test_advanced_controlnet_hints_follow_cores_context_windows(acn):
    """Under ComfyUI's Context Windows (Manual), Inject into Model publishes each window as ad_params."""
    if acn["hints_core_windows"] is None:
        pytest.skip("this ComfyUI has no Context Windows (Manual) node (0.3.51+)")
    assert acn["hints_core_windows"]["paired"], acn["hints_core_windows"]


@pytest.fixture(scope="module")
def ipadapter():
    return run_check("comfy_packs_check.py", "ipadapter")


@needs("IPADAPTER_PATH")
def test_ipadapter_batch_embeds_and_weights_follow_each_window(ipadapter):
    """IPAdapter Batch, one image and one weight per frame (random-weight CLIP vision and IPAdapter built by the
    check): each window's image-prompt attention reads that window's frames' embeds; the first window, all of whose
    weights are 0, reads none, as IPAdapter does on a whole clip of zero weights."""
    assert ipadapter["windows"] and ipadapter["rows_are_the_windows_frames"] and ipadapter["finite"], ipadapter
    from motion_core.context import ContextOptions, windows
    assert ipadapter["windows_read"] == [list(w) for w in windows(48, ContextOptions(16, 4, "static"), 0)[1:]]


@pytest.fixture(scope="module")
def schedules():
    return run_check("comfy_packs_check.py", "schedules")


@needs("FIZZNODES_PATH")
def test_fizznodes_batch_prompt_schedule_is_sliced_per_window(schedules):
    found = schedules["prompt_schedule"]
    assert found["cond_frames"] == 48 and found["distinct_rows"] > 3  # one cond per frame, travelling
    assert found["windows"] and found["rows_are_the_windows_frames"], found


@needs("FIZZNODES_PATH")
def test_a_fizznodes_value_schedule_drives_per_frame_strength(schedules):
    assert schedules["fizz_value_type"] == "Series"  # a pandas Series on a FLOAT socket
    found = schedules["fizz_values"]
    assert found["first_frames_as_strength_0"] == 0.0 and found["last_frames_moved"] > 1e-3, found


@needs("KJNODES_PATH")
def test_a_kjnodes_float_list_drives_per_frame_strength(schedules):
    found = schedules["kj_values"]
    assert found["first_frames_as_strength_0"] == 0.0 and found["last_frames_moved"] > 1e-3, found


@pytest.fixture(scope="module")
def meta_batch():
    return run_check("comfy_packs_check.py", "meta_batch")


@needs()
@pytest.mark.parametrize("noise_type", ["independent", "freenoise"])
def test_each_meta_batch_starts_from_its_frames_of_the_whole_clips_noise(meta_batch, noise_type):
    """Three batches of 16 (VHS's Meta Batch Manager, counted in the prompt as VHS counts them): their starting
    noise, joined, is the 48-frame clip's, exactly (no batch repeats the first one's noise)."""
    assert meta_batch[noise_type] == 0.0


@needs()
def test_a_custom_noise_source_in_a_later_meta_batch_is_used_as_given(meta_batch):
    """Noise that is not ComfyUI's seeded noise of the seed given (SamplerCustomAdvanced with a custom NOISE) cannot
    be continued from the earlier batches': it is used as it comes, not replaced by the seed's."""
    assert meta_batch["custom_noise"] == 0.0


@needs()
def test_a_closed_loop_in_meta_batches_is_refused(meta_batch):
    assert meta_batch["closed_loop"].startswith("ConfigError") and "Meta Batch Manager" in meta_batch["closed_loop"]


@needs("ACN_PATH", "ADE_PATH")
def test_advanced_controlnet_sparsectrl_keyframes_land_on_their_frames():
    """ACN's SparseCtrl loader builds its motion model through AnimateDiff-Evolved, so both packs load beside
    motion_core; random full-size models (the workflow workspace's), 24 frames in windows of 16 / 4."""
    from test_comfy_host import build_workspace
    build_workspace()
    found = run_check("comfy_packs_check.py", "acn_sparsectrl")
    assert found["windows"] and found["keyframes_on_their_frames"] and found["finite"], found
