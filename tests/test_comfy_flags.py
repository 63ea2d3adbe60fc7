"""ComfyUI's precision flags on a real server (COMFYUI_PATH; skipped otherwise), as GPU users start it, here with
--cpu: every shipped workflow under --fp8_e4m3fn-unet (fp8 weights cast per layer), and text-to-animation under
--bf16-unet and --fp16-unet --fp16-vae (8 frames, 64 px, 2 steps: half-precision convolutions are slow on a CPU).
Each completes with every frame finite and not blank; the motion module is never stored in fp8 unasked."""

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from comfy_server import ComfyServer
from test_comfy_host import COMFYUI, build_workspace, comfy_python
from test_comfy_workflows import FRAMES, WORKFLOWS, outputs, small

pytestmark = pytest.mark.skipif(not COMFYUI, reason="COMFYUI_PATH is not set to a ComfyUI checkout: the precision "
                                                    "flag runs need a real ComfyUI server")


def server_with(*flags):
    from pathlib import Path
    base = build_workspace()
    shutil.rmtree(base / "output", ignore_errors=True)
    (base / "output").mkdir()
    return ComfyServer(Path(COMFYUI), base, comfy_python(), flags).start()


def frames(path) -> list[np.ndarray]:
    if path.suffix == ".mp4":
        import av
        with av.open(str(path)) as c:
            return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    out = []
    with Image.open(path) as im:
        for i in range(im.n_frames):
            im.seek(i)
            out.append(np.asarray(im.convert("RGB")))
    return out


def check_run(server, workflow: dict, name: str, expected: int) -> None:
    entry = server.run(workflow)
    assert entry["status"]["status_str"] == "success", (name, entry["status"])
    (saved,) = outputs(server, entry)
    got = frames(saved)
    assert len(got) == expected, (name, len(got))
    blank = [i for i, f in enumerate(got) if f.astype(np.float32).std() < 1.0]  # NaN latents decode to one colour
    assert not blank, (name, "blank frames", blank)


def test_every_shipped_workflow_under_fp8_weights():
    server = server_with("--fp8_e4m3fn-unet")
    try:
        for path in WORKFLOWS:
            name = path.name.removesuffix(".api.json")
            check_run(server, small(json.loads(path.read_text())), name, FRAMES[name])
        log = server.log()
        assert "Traceback" not in log[log.index("Starting server"):]
    finally:
        server.stop()


def short(frames: int = 8) -> dict:
    """text_to_animation at 64 px, 2 steps, `frames` frames."""
    workflow = small(json.loads(next(p for p in WORKFLOWS if p.name == "text_to_animation.api.json").read_text()))
    for node in workflow.values():
        for key in ("frames", "batch_size", "length"):
            if isinstance(node["inputs"].get(key), int):
                node["inputs"][key] = frames
    return workflow


@pytest.mark.parametrize("flags", [("--bf16-unet",), ("--fp16-unet", "--fp16-vae")], ids=" ".join)
def test_text_to_animation_under_half_precision_flags(flags):
    server = server_with(*flags)
    try:
        check_run(server, short(), " ".join(flags), 8)
    finally:
        server.stop()
