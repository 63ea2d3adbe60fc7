"""motion_core beside VideoHelperSuite on a real ComfyUI server (COMFYUI_PATH and VHS_PATH; skipped otherwise), over
HTTP as the browser drives it, on the random full-size models of the workflow workspace at 64x64 px, 2 steps: a
video uploaded and loaded by VHS's Load Video, video-to-video with Sample Frames, saved by VHS's Video Combine as
an MP4 carrying the prompt and workflow; the same from a path; and a clip VHS's Meta Batch Manager samples in
batches of 16 (its re-queued prompts followed to the end, each batch's frames named in the log)."""

import json
import os
import shutil
import time
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import pytest

from comfy_server import ComfyServer
from test_comfy_host import COMFYUI, build_workspace, comfy_python
from test_comfy_packs import needs

ROOT = Path(__file__).resolve().parents[1]
pytestmark = needs("VHS_PATH")
SIZE = 64


def clip(path: Path, frames: int) -> Path:
    """An H.264 MP4 of `frames` 64x64 frames: a bright square moving right over a gradient."""
    from motion_core.media import write_animation
    x = np.linspace(0, 1, SIZE, dtype=np.float32)
    video = np.repeat(np.repeat(x[None, None, :, None], SIZE, 1), 3, 3).repeat(frames, 0) * 0.5
    for i in range(frames):
        left = 4 + i * (SIZE - 24) // max(frames - 1, 1)
        video[i, 24:40, left:left + 16] = 1.0
    write_animation(video, path, fps=8)
    return path


@pytest.fixture(scope="module")
def server():
    models = build_workspace()
    base = ROOT / "build" / "comfy_vhs"
    shutil.rmtree(base, ignore_errors=True)
    (base / "custom_nodes").mkdir(parents=True)
    (base / "models").symlink_to(models / "models")
    for name, target in (("motion_core", ROOT), ("VideoHelperSuite", Path(os.environ["VHS_PATH"]))):
        (base / "custom_nodes" / name).symlink_to(target)
    (base / "input").mkdir()
    s = ComfyServer(Path(COMFYUI), base, comfy_python()).start()
    yield s
    s.stop()


def upload(server, path: Path) -> str:
    """POST /upload/image as the Load Video widget's upload button does; returns the name in input/."""
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{path.name}\"\r\n"
            f"Content-Type: video/mp4\r\n\r\n").encode() + path.read_bytes() + \
        (f"\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"type\"\r\n\r\ninput\r\n"
         f"--{boundary}--\r\n").encode()
    request = urllib.request.Request(server.url + "/upload/image", data=body,
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(request, timeout=60) as r:
        return json.load(r)["name"]


def v2v(loader: dict, frames: int, *, meta_batch: bool = False, prefix: str = "mc_vhs") -> dict:
    """The API workflow: VHS loader -> VAE Encode -> Sample Frames (Inject into Model, v3 module) -> VAE Decode ->
    VHS Video Combine (H.264 MP4 with metadata)."""
    wf = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "v1-5-pruned-emaonly.safetensors"}},
        "2": {"class_type": "MC_LoadMotionModule", "inputs": {"model_name": "v3_sd15_mm.ckpt"}},
        "3": {"class_type": "MC_InjectMotionModule", "inputs": {"model": ["1", 0], "motion_module": ["2", 0],
                                                               "scale": 1.0, "strength": 1.0,
                                                               "beta_schedule": "auto"}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"text": "a square moving right", "clip": ["1", 1]}},
        "5": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["1", 1]}},
        "6": loader,
        "7": {"class_type": "VAEEncode", "inputs": {"pixels": ["6", 0], "vae": ["1", 2]}},
        "8": {"class_type": "MC_SampleFrames", "inputs": {
            "model": ["3", 0], "positive": ["4", 0], "negative": ["5", 0], "frames": frames, "width": SIZE,
            "height": SIZE, "seed": 5, "steps": 2, "cfg": 5.0, "sampler_name": "euler", "scheduler": "normal",
            "context_length": 16, "context_overlap": 4, "context_schedule": "static", "closed_loop": False,
            "fuse_method": "pyramid", "noise_type": "freenoise", "denoise": 0.6, "latent": ["7", 0]}},
        "9": {"class_type": "VAEDecode", "inputs": {"samples": ["8", 0], "vae": ["1", 2]}},
        "10": {"class_type": "VHS_VideoCombine", "inputs": {
            "images": ["9", 0], "frame_rate": 8, "loop_count": 0, "filename_prefix": prefix,
            "format": "video/h264-mp4", "pingpong": False, "save_output": True, "pix_fmt": "yuv420p", "crf": 19,
            "save_metadata": True, "trim_to_audio": False}},
    }
    if meta_batch:
        wf["11"] = {"class_type": "VHS_BatchManager", "inputs": {"frames_per_batch": 16}}
        for node in ("6", "8", "10"):
            wf[node]["inputs"]["meta_batch"] = ["11", 0]
    return wf


def load_video(name: str, cap: int) -> dict:
    return {"class_type": "VHS_LoadVideo", "inputs": {
        "video": name, "force_rate": 0, "custom_width": 0, "custom_height": 0, "frame_load_cap": cap,
        "skip_first_frames": 0, "select_every_nth": 1, "format": "AnimateDiff"}}


def queue(server, workflow: dict) -> str:
    extra = {"extra_pnginfo": {"workflow": {"motion_core_test": "vhs", "nodes": []}}}
    return server.post("/prompt", {"prompt": workflow, "client_id": str(uuid.uuid4()), "extra_data": extra})[
        "prompt_id"]


def wait_idle(server, timeout: float = 1800) -> dict:
    """Wait until the queue is empty (VHS's re-queued prompts included); returns the whole history."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        q = server.get("/queue")
        if not q["queue_running"] and not q["queue_pending"]:
            return server.get("/history")
        time.sleep(1)
    raise TimeoutError("the queue did not empty")


def mp4s(entry: dict, server) -> list[Path]:
    files = []
    for out in entry["outputs"].values():
        for item in out.get("gifs", []):
            files.append(server.base / "output" / item["subfolder"] / item["filename"])
    return files


def read_mp4(path: Path) -> tuple[int, dict]:
    import av
    with av.open(str(path)) as c:
        comment = c.metadata.get("comment", "{}")
        return sum(1 for _ in c.decode(c.streams.video[0])), json.loads(comment)


@pytest.mark.parametrize("source", ["upload", "path"])
def test_video_to_video_between_vhs_load_video_and_video_combine(server, tmp_path, source):
    video = clip(tmp_path / f"mc_clip_{source}.mp4", 24)
    loader = load_video(upload(server, video) if source == "upload" else str(video), 16)
    if source == "path":
        loader["class_type"] = "VHS_LoadVideoPath"
    prompt_id = queue(server, v2v(loader, 16, prefix=f"mc_vhs_{source}"))
    entry = wait_idle(server)[prompt_id]
    assert entry["status"]["status_str"] == "success", entry["status"]
    (saved,) = [f for f in mp4s(entry, server) if f.suffix == ".mp4"]
    frames, metadata = read_mp4(saved)
    assert frames == 16
    prompt = json.loads(metadata["prompt"]) if isinstance(metadata["prompt"], str) else metadata["prompt"]
    assert prompt["8"]["class_type"] == "MC_SampleFrames"  # the workflow travels with the video
    assert metadata["workflow"]["motion_core_test"] == "vhs"


def test_a_meta_batched_clip_is_sampled_batch_by_batch_into_one_video(server, tmp_path):
    name = upload(server, clip(tmp_path / "mc_clip_48.mp4", 48))
    before = set(server.get("/history"))
    queue(server, v2v(load_video(name, 48), 16, meta_batch=True, prefix="mc_vhs_meta"))
    history = wait_idle(server)
    runs = [history[k] for k in history if k not in before]
    assert len(runs) == 3 and all(r["status"]["status_str"] == "success" for r in runs), [r["status"] for r in runs]
    saved = [f for r in runs for f in mp4s(r, server) if f.suffix == ".mp4"]
    assert len(saved) == 1 and read_mp4(saved[0])[0] == 48  # one file, every batch's frames
    log = server.log()
    for first in (0, 16, 32):  # Sample Frames knew which frames of the clip each batch held
        assert f"motion_core: Meta Batch Manager batch: frames {first}-{first + 15} of the clip" in log
