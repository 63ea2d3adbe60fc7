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


def release() -> tuple[int, ...]:
    """COMFYUI_PATH's release, from its comfyui_version.py ((0,) when it has none, or without COMFYUI_PATH)."""
    path = Path(COMFYUI or "") / "comfyui_version.py"
    if not COMFYUI or not path.is_file():
        return (0,)
    version = path.read_text().split("__version__")[1].split('"')[1].split("-")[0].split("+")[0]
    return tuple(int(p) for p in version.split(".")[:3])


def needs_release(oldest: tuple[int, ...], what: str):
    """Skip a test on a ComfyUI older than `oldest` that cannot have `what`, saying so."""
    return pytest.mark.skipif(bool(COMFYUI) and release() < oldest, reason=f"{what} needs ComfyUI "
                              f"{'.'.join(map(str, oldest))} or newer; COMFYUI_PATH is {'.'.join(map(str, release()))}")


def comfy_python() -> str:
    venv = Path(COMFYUI) / ".venv" / "bin" / "python"
    return os.environ.get("COMFYUI_PYTHON") or (str(venv) if venv.exists() else sys.executable)


def run_check(script: str, *args: str, timeout: float = 900) -> dict:
    """Run tests/<script> COMFYUI_PATH *args in ComfyUI's interpreter; its last stdout line is a JSON object of
    findings."""
    p = subprocess.run([comfy_python(), str(Path(__file__).with_name(script)), COMFYUI, *args], capture_output=True,
                       text=True, timeout=timeout)
    assert p.returncode == 0, p.stderr[-4000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


def build_workspace() -> Path:
    """The ComfyUI base directory with random full-size models (tests/comfy_workspace.py; reused once built)."""
    base = Path(os.environ.get("MOTION_CORE_COMFY_BASE", Path(__file__).resolve().parents[1] / "build" / "comfy_base"))
    build = subprocess.run([comfy_python(), str(Path(__file__).with_name("comfy_workspace.py")), COMFYUI, str(base)],
                           capture_output=True, text=True, timeout=1800)
    assert build.returncode == 0, build.stderr[-3000:]
    return base


def test_comfy_unet_patched_reproduces_the_original():
    results = run_check("comfy_unet_check.py", timeout=600)
    no_middle = results.pop("no_middle_block")
    assert no_middle["v3_inserted"] == 20 and "has no middle block" in no_middle["v2_error"]
    assert set(results) == {"v1", "v2", "v3"}
    for version, r in results.items():
        assert r["max_abs_err"] <= 1e-4, (version, r)
        assert r["max_abs_err_ejected_vs_plain"] == 0.0, (version, r)
        assert r["modules_inserted"] == {"v1": 20, "v2": 21, "v3": 20}[version]
        assert r["modules_left_after_remove"] == 0
