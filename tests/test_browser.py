"""The web extension in a real browser: ComfyUI (COMFYUI_PATH) driven by Debian's Chromium through playwright-core
(`npm ci` in tests/browser). Skipped, with the reason, when any of them is missing. Screenshots are written to
build/browser/ (look at them)."""

import json
import os
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch

from comfy_server import ComfyServer
from test_comfy_host import COMFYUI, build_workspace, comfy_python, release

ROOT = Path(__file__).resolve().parents[1]
BROWSER = ROOT / "tests" / "browser"
CHROMIUM = os.environ.get("CHROMIUM", shutil.which("chromium") or "/usr/bin/chromium")
OUT = ROOT / "build" / "browser"


def _missing() -> str | None:
    if not COMFYUI:
        return "COMFYUI_PATH is not set to a ComfyUI checkout"
    if not Path(CHROMIUM).exists():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium, or set CHROMIUM)"
    if shutil.which("node") is None:
        return "Node.js is not installed"
    if not (BROWSER / "node_modules" / "playwright-core").exists():
        return "playwright-core is not installed: run `npm ci` in tests/browser"
    return None


pytestmark = pytest.mark.skipif(_missing() is not None, reason=f"browser test: {_missing()}")


@pytest.fixture(scope="module")
def server():
    from motion_core import MotionModule, MotionModuleConfig, save_motion_module
    base = build_workspace()
    torch.manual_seed(0)  # a tiny SDXL-family module: the wrong family for the SD1.5 checkpoint
    save_motion_module(MotionModule(MotionModuleConfig(family="sdxl", version="sdxl-beta", channels=(32, 64, 64),
                                                       heads=2)),
                       base / "models" / "animatediff_models" / "tiny_sdxl_test.safetensors")
    s = ComfyServer(Path(COMFYUI), base, comfy_python()).start()
    yield s
    s.stop()


def _status(server, path) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(server.url + path, timeout=30) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.mark.parametrize("query, words", [
    ("frames=-4&length=16", "frames=-4 must be between 1 and 4096"),
    ("frames=48&length=16&overlap=16", "overlap=16 must be less than length=16"),
    ("frames=99999999999999999999&length=16", "must be between 1 and 4096"),
    ("frames=48&length=100000", "length=100000 must be between 0 and 128"),
    ("frames=48&length=16&schedule=%3Cscript%3E", "is not one of")])
def test_route_rejects_bad_parameters_with_400(server, query, words):
    status, body = _status(server, f"/motion_core/windows?{query}")
    assert status == 400 and words in body["error"]
    assert _status(server, "/motion_core/check?frames=-1")[0] == 400


def test_ui_diagram_warnings_and_animated_preview(server):
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("*.png"):
        old.unlink()
    p = subprocess.run(["node", "ui_check.mjs", server.url, str(OUT), str(ROOT / "workflows" / "text_to_animation.json")],
                       cwd=BROWSER, capture_output=True, text=True, timeout=1500, env=dict(os.environ, CHROMIUM=CHROMIUM))
    findings = json.loads(p.stdout.strip().splitlines()[-1])
    assert "failure" not in findings, findings["failure"] + "\n" + server.log()[-3000:]
    assert findings["extension_loaded"]
    diagram = findings["diagram"]
    assert diagram["drawn"] == diagram["route"] == [[0, 15], [12, 27], [24, 39], [32, 47]]
    assert diagram["overlaps"] >= 6 and diagram["caption"] == "48 frames · 4 windows of 16 · overlap 4"
    assert diagram["warnings"] == []
    assert findings["frames_warning"]["visible"]
    assert findings["frames_warning"]["warnings"] == [
        "this motion module holds 32 frames; got 48: sample longer clips through context windows of at most 32 "
        "frames (context_length 16 is the usual)"]
    assert any("SDXL motion module but the model is SD1.5" in w for w in findings["family_warning"])
    for format, preview in findings["previews"].items():  # plays in the node: two pictures 400 ms apart differ
        assert preview["animation"]["frames"] == 16, preview
        assert preview["caption"] == f"16 frames · 8 fps · {format.upper()}"
        assert any(m["loaded"] for m in preview["media"]) and preview["moving"], (format, preview)
    listed = {f.rsplit(".", 1)[1] for f in findings["history_media"]}  # the queue panel's outputs: 0.3.28's
    assert listed == ({"webp", "gif", "mp4"} if release() >= (0, 3, 64) else {"webp", "gif"})  # (1.15) lists no video
    ui = json.loads((ROOT / "workflows" / "text_to_animation.json").read_text())  # what was queued, as a GIF
    assert findings["gif_drop"] == {"types": sorted(n["type"] for n in ui["nodes"]), "format": "gif"}
    # ComfyUI's own front end logs errors on a fresh profile (404s for user.css and userdata, the release check
    # without internet, a settings TypeError): the baseline session, with the pack's scripts answered by empty
    # modules, logs them too. The real session may log nothing more (the browser's favicon request aside).
    extra = list(findings["console_errors"])
    for error in findings["baseline_errors"]:
        if error in extra:
            extra.remove(error)
    extra = [e for e in extra if not e.endswith("/favicon.ico")]
    assert extra == [], extra
    assert not any("motion_core" in e for e in findings["console_errors"])
    assert len(findings["screenshots"]) == 8


def _post(server, path, body) -> tuple[int, dict]:
    request = urllib.request.Request(server.url + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_migrate_route_converts_and_refuses_what_is_not_a_workflow(server):
    from migrate_corpus import CORPUS
    workflow = CORPUS["gen2_text_to_animation"]().ui()
    status, body = _post(server, "/motion_core/migrate", {"workflow": workflow})
    assert status == 200 and body["changed"] and body["report"]["converted"] == 4
    assert "MC_InjectMotionModule" in {n["type"] for n in body["workflow"]["nodes"]}
    status, body = _post(server, "/motion_core/migrate", {"workflow": workflow, "check": True})
    assert status == 200 and "workflow" not in body and body["lines"][0].startswith("converted")
    assert _post(server, "/motion_core/migrate", {"workflow": {"a": 1}})[0] == 400
    assert _post(server, "/motion_core/migrate", [1, 2])[0] == 400


def test_editor_command_converts_the_open_graph_and_undo_takes_it_back(server, tmp_path):
    from migrate_corpus import CORPUS
    OUT.mkdir(parents=True, exist_ok=True)
    source = tmp_path / "gen1.json"
    source.write_text(json.dumps(CORPUS["gen1_text_to_animation"]().ui()))
    p = subprocess.run(["node", "convert_check.mjs", server.url, str(OUT), str(source)], cwd=BROWSER,
                       capture_output=True, text=True, timeout=600, env=dict(os.environ, CHROMIUM=CHROMIUM))
    findings = json.loads(p.stdout.strip().splitlines()[-1])
    assert "failure" not in findings, findings["failure"]
    assert findings["extension_loaded"] and findings["command_registered"]
    assert "not installed" in findings["offer"]
    assert "ADE_AnimateDiffLoaderWithContext" in findings["before"]
    assert not [t for t in findings["after"] if t.startswith("ADE_")]
    assert {"MC_LoadMotionModule", "MC_InjectMotionModule", "MC_ContextOptions"} <= set(findings["after"])
    assert findings["report"].startswith("Converted 2 AnimateDiff node(s) to motion_core")
    assert findings["undone"] == findings["before"] and findings["after_menu"] == findings["after"]
    assert not [e for e in findings["console_errors"] if "motion_core" in e or "convert.js" in e]
