"""The pack under the precisions and memory modes of GPU users, emulated on the CPU inside a real ComfyUI
(COMFYUI_PATH; skipped otherwise): fp16, bf16 and fp8 / fp16 storage with per-layer casting through every node path,
Load Motion Module under the fp8 flag, partial loading with `meta` as the load device, host syncs per UNet call and
torch.compile(fullgraph=True) over the wrapper (tests/comfy_precision_check.py)."""

import pytest

from test_comfy_host import COMFYUI, needs_release, run_check

pytestmark = pytest.mark.skipif(not COMFYUI, reason="COMFYUI_PATH is not set to a ComfyUI checkout: the precision "
                                                    "tests need a real ComfyUI")
RUNS = ("ksampler", "sample_frames_windows", "context_options_free_init", "sparsectrl_rgb_and_scribble")
# the README's precision table: UNet storage / compute -> motion module (and SparseCtrl) weights, position encodings,
# ComfyUI operations
EXPECTED = {"fp32": ("float32", "float32", "disable_weight_init"),
            "fp16": ("float16", "float16", "disable_weight_init"),
            "bf16": ("bfloat16", "bfloat16", "disable_weight_init"),
            "fp16 storage, fp32 compute": ("float16", "float32", "manual_cast"),
            "bf16 storage, fp32 compute": ("bfloat16", "float32", "manual_cast"),
            "fp8 storage, fp32 compute": ("float32", "float32", "disable_weight_init"),
            "fp8 storage, fp16 compute": ("float16", "float16", "disable_weight_init")}
# how far an output may lie from fp32's, relative to its scale: half precision rounds, it does not break
CLOSE = {"fp16": 0.05, "bf16": 0.25, "fp16 storage, fp32 compute": 0.05, "bf16 storage, fp32 compute": 0.25}


@pytest.fixture(scope="module")
def findings():
    found = run_check("comfy_precision_check.py")
    if "skipped" in found:
        pytest.skip(found["skipped"])
    return found


def ok(samples: dict) -> bool:
    return samples["finite"] and samples["blank_frames"] == 0 and samples["std"] > 0


@pytest.mark.parametrize("precision", list(EXPECTED))
def test_every_node_path_runs_in_each_precision(findings, precision):
    r = findings["precisions"][precision]
    weights, pe, ops = EXPECTED[precision]
    assert r["module"]["weights"] == [weights] and r["module"]["pe"] == [pe], r["module"]
    assert r["module"]["operations"] == f"comfy.ops.{ops}.Linear"
    assert r["sparsectrl_dtypes"] == [weights]
    for run in RUNS:
        assert ok(r[run]), (run, r[run])
        if precision in CLOSE:
            assert r[run]["max_abs_vs_fp32"] <= CLOSE[precision] * r[run]["scale_fp32"], (run, r[run])


@pytest.mark.parametrize("precision", list(EXPECTED))
@needs_release((0, 3, 41), "training through the UNet (residuals added out of place)")
def test_the_train_node_trains_on_each_precision_and_hands_back_a_managed_module(findings, precision):
    t = findings["precisions"][precision]["train"]
    weights, pe, ops = EXPECTED[precision]
    assert t["losses_finite"] and t["steps"] == 2 and t["changed"]
    assert t["output"] == {"weights": [weights], "pe": [pe], "operations": f"comfy.ops.{ops}.Linear",
                           "devices": ["cpu"]}  # ComfyUI's offload device, built as Load Motion Module builds it
    assert t["inject_uses_it_as_is"] and ok(t["samples"])


def test_fp8_flags_leave_the_motion_module_unquantised_and_fp8_is_there_when_asked(findings):
    f = findings["fp8_flag"]
    assert f["loaded"]["weights"] == ["float32"] and f["loaded"]["pe"] == ["float32"]  # the CPU's compute dtype
    assert f["max_rel_weight_error"] == 0.0 and f["pe_max_error_vs_file"] == 0.0
    assert f["lora_changed_weights"] > 0.1 * f["lora_weights"]
    assert f["inject_auto"]["weights"] == ["float32"]
    assert f["inject_fp8"] == {"weights": ["float8_e4m3fn"], "pe": ["float32"],
                               "operations": "comfy.ops.manual_cast.Linear", "devices": ["cpu"]}
    assert ok(f["auto_samples"]) and ok(f["fp8_samples"])
    assert 0 < f["fp8_vs_auto_max_abs"] < f["scale"]  # fp8 weights round, the motion still runs


def test_partial_loading_keeps_every_layer_runnable(findings):
    p = findings["partial_loading"]
    assert len(p["budgets"]) == 3
    for row in p["budgets"]:
        assert "error" not in row, row
        for stage in ("loaded", "unloaded", "reloaded"):
            placed = row[stage]
            assert placed["on_meta"] + placed["elsewhere_casting"] == placed["layers"], (stage, row)
        assert row["loaded"]["on_meta"] < row["loaded"]["layers"]  # it was loaded partly
        assert row["freed"] > 0 and row["added"] > 0
        assert row["first"] == row["after_unload"] == row["after_reload"] == [32, 4, 8, 8]
    assert all("error" not in row and row["outputs"] == 12 for row in p["sparsectrl"]), p["sparsectrl"]


def test_no_host_sync_per_unet_call(findings):
    s = findings["syncs"]
    assert s.pop("counter_self_check") == {"reads": 1, "copies": 1}
    assert set(s) == {"constant", "curves_and_mask", "start_end"}
    for case, calls in s.items():
        assert calls == [{"reads": 0, "copies": 0}] * 3, (case, calls)


def test_the_wrapper_and_motion_layers_compile_with_fullgraph_once_per_frame_count(findings):
    c = findings["compile"]
    assert "error" not in c, c
    assert c["graphs"] <= c["frame_counts"] and c["calls"] == 5 and c["max_abs_vs_eager"] == 0.0
