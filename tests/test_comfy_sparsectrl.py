"""SparseCtrl on ComfyUI's own cldm ControlNet (COMFYUI_PATH; skipped otherwise) against the original's recorded
residuals: the node pack's SparseCtrl needs no diffusers."""

import pytest

from test_comfy_host import COMFYUI, run_check

pytestmark = pytest.mark.skipif(not COMFYUI, reason="COMFYUI_PATH is not set to a ComfyUI checkout: the ComfyUI "
                                                    "SparseCtrl check needs a real ComfyUI")


def test_cldm_sparsectrl_matches_the_original():
    results = run_check("comfy_sparsectrl_check.py", timeout=600)
    for variant in ("rgb", "scribble"):
        r = results[variant]
        assert r["outputs"] == 12 and r["motion_layers"] == 8, (variant, r)
        assert r["max_rel_err"] <= 1e-5, (variant, r)
