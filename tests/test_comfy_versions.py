"""The pack on ComfyUI releases it supports and on older ones, without a ComfyUI: a subprocess imports the pack over
stand-in modules shaped like each release's extension points (the real releases: test_comfy_workflows.py with
COMFYUI_PATH pointing at them). Too old: one console line naming the release needed, and no nodes, routes or web
extension at all."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STAND_IN = textwrap.dedent('''
    import json, sys, types
    comfy = types.ModuleType("comfy")
    comfy.__path__ = []
    extension = types.ModuleType("comfy.patcher_extension")
    extension.WrappersMP = type("WrappersMP", (), {{k.upper(): k for k in {wrappers!r}}})
    patcher = types.ModuleType("comfy.model_patcher")
    patcher.ModelPatcher = type("ModelPatcher", (), {{k: (lambda self: None) for k in (
        "add_wrapper_with_key", "remove_wrappers_with_key", "set_injections", "set_additional_models",
        "set_model_forward_timestep_embed_patch")}})
    comfy.patcher_extension, comfy.model_patcher = extension, patcher
    folders = types.ModuleType("folder_paths")
    folders.models_dir, folders.folder_names_and_paths, folders.supported_pt_extensions = "/none", {{}}, {{".ckpt"}}
    version = types.ModuleType("comfyui_version")
    version.__version__ = {version!r}
    sys.modules.update({{"comfy": comfy, "comfy.patcher_extension": extension, "comfy.model_patcher": patcher,
                        "folder_paths": folders, "comfyui_version": version}})
    sys.path.insert(0, {tests!r})
    from pack_import import load_pack
    pack = load_pack()
    print(json.dumps({{"nodes": len(pack.NODE_CLASS_MAPPINGS), "web": pack.WEB_DIRECTORY,
                      "folders": sorted(folders.folder_names_and_paths),
                      "train": pack.nodes.bridge.training_unsupported()}}))
''')
ALL = ("outer_sample", "prepare_sampling", "calc_cond_batch", "diffusion_model")


def load(version: str, wrappers=ALL):
    script = STAND_IN.format(wrappers=wrappers, version=version, tests=str(ROOT / "tests"))
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert p.returncode == 0, p.stderr[-3000:]
    *console, last = p.stdout.strip().splitlines()
    return console, json.loads(last)


def test_a_supported_comfyui_gets_every_node():
    console, found = load("0.3.28")
    assert console == [] and found["nodes"] == 11 and found["web"] == "./js"
    assert found["folders"] == ["animatediff_models", "animatediff_motion_lora"]


@pytest.mark.parametrize("version, refused", [("0.3.28", True), ("0.3.40", True), ("0.3.41", False),
                                              ("0.3.64", False)])
def test_training_needs_a_unet_that_adds_residuals_out_of_place(version, refused):
    """Before 0.3.41 (ComfyUI 520eb77b) the UNet's transformer blocks add in place, and autograd refuses the motion
    module's gradients through them (seen on 0.3.28): the Train node says so, naming the release; sampling works."""
    _, found = load(version)
    assert found["nodes"] == 11
    if refused:
        assert found["train"].startswith(f"Train Motion Module needs ComfyUI 0.3.41 or newer: this is {version}")
    else:
        assert found["train"] is None


@pytest.mark.parametrize("version", ["0.3.27", "0.3.9"])
def test_an_older_comfyui_gets_one_line_naming_the_release_needed_and_no_nodes(version):
    console, found = load(version, tuple(w for w in ALL if w != "prepare_sampling"))  # as 0.3.27 was
    assert console == [f"[motion_core] needs ComfyUI 0.3.28 or newer; this is {version} (missing: "
                       "comfy.patcher_extension.WrappersMP.PREPARE_SAMPLING). Update ComfyUI; motion_core's nodes "
                       "are not loaded."]
    assert {k: found[k] for k in ("nodes", "web", "folders")} == {"nodes": 0, "web": None, "folders": []}


def test_the_declared_oldest_release_is_the_one_checked():
    from pack_import import load_pack
    oldest = ".".join(map(str, load_pack().nodes.bridge.OLDEST))
    assert oldest == "0.3.28"  # (the stand-ins above are shaped like it and like 0.3.27)
    assert f'requires-comfyui = ">={oldest}"' in (ROOT / "pyproject.toml").read_text()
    assert f"ComfyUI {oldest}" in (ROOT / "README.md").read_text()
