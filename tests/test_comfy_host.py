"""The ComfyUI adapter on a real ComfyUI `openaimodel.UNetModel` (needs COMFYUI_PATH; skipped otherwise).

ComfyUI brings its own torch, so the check runs in ComfyUI's interpreter: COMFYUI_PYTHON, else
$COMFYUI_PATH/.venv/bin/python, else this one."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

COMFYUI = os.environ.get("COMFYUI_PATH")
pytestmark = pytest.mark.skipif(
    not COMFYUI or not (Path(COMFYUI) / "comfy" / "ldm").is_dir(),
    reason="COMFYUI_PATH is not set to a ComfyUI checkout: the real-ComfyUI adapter test needs one")


def comfy_python() -> str:
    venv = Path(COMFYUI) / ".venv" / "bin" / "python"
    return os.environ.get("COMFYUI_PYTHON") or (str(venv) if venv.exists() else sys.executable)


def test_comfy_unet_patched_reproduces_the_original():
    script = Path(__file__).with_name("comfy_unet_check.py")
    p = subprocess.run([comfy_python(), str(script), COMFYUI], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    results = json.loads(p.stdout.strip().splitlines()[-1])
    no_middle = results.pop("no_middle_block")
    assert no_middle["v3_inserted"] == 20 and "has no middle block" in no_middle["v2_error"]
    assert set(results) == {"v1", "v2", "v3"}
    for version, r in results.items():
        assert r["max_abs_err"] <= 1e-4, (version, r)
        assert r["max_abs_err_ejected_vs_plain"] == 0.0, (version, r)
        assert r["modules_inserted"] == {"v1": 20, "v2": 21, "v3": 20}[version]
        assert r["modules_left_after_remove"] == 0
