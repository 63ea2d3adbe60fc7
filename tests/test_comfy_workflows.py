"""Every shipped workflow on a real ComfyUI server (COMFYUI_PATH; skipped otherwise), over HTTP and through comfy-cli,
at 64x64 px with 2 steps on random-weight full-size models (tests/comfy_workspace.py builds them)."""

import copy
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from comfy_server import ComfyServer
from test_comfy_host import COMFYUI, build_workspace, comfy_python

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted(p for p in (ROOT / "workflows").glob("*.api.json"))
FRAMES = {"text_to_animation": 16, "long_animation": 64, "prompt_travel": 32, "motion_lora": 16,
          "video_to_video": 16, "controlnet_video_to_video": 48, "masked_motion": 16, "free_init": 16,
          "sparsectrl_image_to_video": 16, "sparsectrl_scribble_keyframes": 16}
pytestmark = pytest.mark.skipif(not COMFYUI, reason="COMFYUI_PATH is not set to a ComfyUI checkout: the workflow "
                                                    "tests need a real ComfyUI server")


def small(workflow: dict) -> dict:
    """The shipped workflow at 64x64 px and 2 steps (what CPU tests can afford); sizes and positions given in
    pixels (mask nodes) shrink with it."""
    wf = copy.deepcopy(workflow)
    for node in wf.values():
        inputs = node["inputs"]
        for key in ("width", "height", "x", "y"):
            if isinstance(inputs.get(key), int):
                inputs[key] = inputs[key] * 64 // 512
        if "steps" in inputs:
            inputs["steps"] = 2
    return wf


PLAIN = {  # the base model alone, before and after the animations: it must not have changed
    "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "v1-5-pruned-emaonly.safetensors"}},
    "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["1", 1]}},
    "3": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 2}},
    "4": {"class_type": "KSampler", "inputs": {"model": ["1", 0], "positive": ["2", 0], "negative": ["2", 0],
                                               "latent_image": ["3", 0], "seed": 1, "steps": 2, "cfg": 5.0,
                                               "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0}},
    "5": {"class_type": "VAEDecode", "inputs": {"samples": ["4", 0], "vae": ["1", 2]}},
    "6": {"class_type": "SaveImage", "inputs": {"images": ["5", 0], "filename_prefix": "plain"}},
}


@pytest.fixture(scope="module")
def server():
    base = build_workspace()
    shutil.rmtree(base / "output", ignore_errors=True)
    (base / "output").mkdir()
    s = ComfyServer(Path(COMFYUI), base, comfy_python()).start()
    yield s
    s.stop()


def outputs(server, entry) -> list[Path]:
    files = []
    for node_out in entry["outputs"].values():
        for image in node_out.get("images", []):
            files.append(server.base / "output" / image["subfolder"] / image["filename"])
    return files


def frames_of(path: Path) -> tuple[int, tuple[int, int]]:
    if path.suffix == ".mp4":
        import av
        with av.open(str(path)) as c:
            stream = c.streams.video[0]
            return sum(1 for _ in c.decode(stream)), (stream.width, stream.height)
    with Image.open(path) as im:
        return im.n_frames, im.size


def plain_pixels(server) -> list[np.ndarray]:
    entry = server.run(PLAIN)
    assert entry["status"]["status_str"] == "success", entry["status"]
    return [np.asarray(Image.open(p)) for p in outputs(server, entry)]


def test_every_shipped_workflow_over_http_and_the_base_model_is_unchanged(server):
    assert {p.name.removesuffix(".api.json") for p in WORKFLOWS} == set(FRAMES)
    before = plain_pixels(server)
    for path in WORKFLOWS:
        name = path.name.removesuffix(".api.json")
        entry = server.run(small(json.loads(path.read_text())))
        assert entry["status"]["status_str"] == "success", (name, entry["status"])
        (saved,) = outputs(server, entry)
        count, size = frames_of(saved)
        assert count == FRAMES[name] and size == (64, 64), (name, count, size)
    after = plain_pixels(server)
    assert all(np.array_equal(a, b) for a, b in zip(before, after))
    log = server.log()
    started = log.index("Starting server")
    assert "Traceback" not in log[started:]
    assert not [line for line in log[:started].splitlines() if "IMPORT FAILED" in line and "motion_core" in line]


def comfy_cli() -> str | None:
    candidates = [os.environ.get("COMFY_CLI"), str(Path(COMFYUI) / ".venv" / "bin" / "comfy"), shutil.which("comfy")]
    return next((c for c in candidates if c and Path(c).exists()), None)


needs_cli = pytest.mark.skipif(COMFYUI is not None and comfy_cli() is None, reason="comfy-cli is not installed (pip "
                               "install comfy-cli, or set COMFY_CLI): the headless comfy run checks need it")


def cli(server, *args) -> subprocess.CompletedProcess:
    return subprocess.run([comfy_cli(), "--skip-prompt", "--workspace", COMFYUI, "run", *map(str, args), "--host",
                           "127.0.0.1", "--port", str(server.port)], capture_output=True, text=True, timeout=1200)


@needs_cli
def test_api_workflows_through_comfy_cli(server, tmp_path):
    for path in WORKFLOWS:
        name = path.name.removesuffix(".api.json")
        target = tmp_path / path.name
        target.write_text(json.dumps(small(json.loads(path.read_text()))))
        before = set((server.base / "output").rglob("*.*"))
        p = cli(server, "--workflow", target, "--wait", "--timeout", "900")
        assert p.returncode == 0, (name, p.stdout[-2000:], p.stderr[-2000:])
        new = [f for f in set((server.base / "output").rglob("*.*")) - before if f.suffix in (".webp", ".gif", ".mp4")]
        assert len(new) == 1, (name, new, p.stdout[-1000:])
        assert frames_of(new[0]) == (FRAMES[name], (64, 64)), name


@needs_cli
def test_ui_files_are_the_api_workflows(server):
    """comfy-cli converts each UI file (as users drag it in) with the server's node definitions: it must give the
    shipped API workflow exactly, every link and widget value."""
    for path in WORKFLOWS:
        ui = path.parent / path.name.replace(".api.json", ".json")
        p = cli(server, "--workflow", ui, "--print-prompt")
        assert p.returncode == 0, (ui.name, p.stderr[-2000:])
        converted = json.loads(p.stdout.strip().splitlines()[-1])["data"]["prompt"]
        shipped = json.loads(path.read_text())
        assert {k: (v["class_type"], v["inputs"]) for k, v in converted.items()} == \
            {k: (v["class_type"], v["inputs"]) for k, v in shipped.items()}, ui.name
