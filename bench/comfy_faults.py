"""Page faults per sampling step in ComfyUI, in-process: the plain SD1.5 model against the same model with our motion
module injected, and the faults inside our MotionLayer calls alone. Run inside ComfyUI's Python:

    COMFYUI_PATH=... $COMFYUI_PATH/.venv/bin/python bench/comfy_faults.py [--steps 4]

Uses the random full-size models of tests/comfy_workspace.py (build/comfy_base; run the ComfyUI tests or
bench/comfy_vs_ade.py once to build them). 16 frames at 64x64 px, euler, CFG 7.5. A minor fault is a page of memory
touched for the first time; many per step mean temporaries handed back to the OS and touched afresh.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMFY = os.environ["COMFYUI_PATH"]
BASE = Path(os.environ.get("MOTION_CORE_COMFY_BASE", ROOT / "build" / "comfy_base")) / "models"
sys.path[:0] = [COMFY]
sys.argv, ARGS = [sys.argv[0], "--cpu"], sys.argv[1:]

import comfy.options  # noqa: E402

comfy.options.enable_args_parsing()

import torch  # noqa: E402

import comfy.sample  # noqa: E402
import folder_paths  # noqa: E402
import nodes  # noqa: E402

sys.path.insert(0, str(ROOT / "tests"))
from pack_import import load_pack  # noqa: E402


def minor_faults() -> int:
    return int(open("/proc/self/stat").read().rsplit(")", 1)[1].split()[7])


def faults_per_step(model, positive, negative, steps: int) -> list[int]:
    latent = torch.zeros(16, 4, 8, 8)
    marks: list[int] = []
    comfy.sample.sample(model, comfy.sample.prepare_noise(latent, 1), steps, 7.5, "euler", "normal", positive, negative,
                        latent, callback=lambda *a: marks.append(minor_faults()), disable_pbar=True)
    return [b - a for a, b in zip(marks, marks[1:])]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=4)
    args = p.parse_args(ARGS)
    folder_paths.add_model_folder_path("checkpoints", str(BASE / "checkpoints"))
    pack = load_pack()
    folder_paths.add_model_folder_path("animatediff_models", str(BASE / "animatediff_models"))
    model, clip = nodes.CheckpointLoaderSimple().load_checkpoint("v1-5-pruned-emaonly.safetensors")[:2]
    positive = nodes.CLIPTextEncode().encode(clip, "a red fox running in snow")[0]
    negative = nodes.CLIPTextEncode().encode(clip, "blurry")[0]
    module = pack.NODE_CLASS_MAPPINGS["MC_LoadMotionModule"]().load("mm_sd_v15_v2.ckpt")[0]
    injected = pack.NODE_CLASS_MAPPINGS["MC_InjectMotionModule"]().inject(model, module, 1.0, 1.0, "auto")[0]

    layer = sys.modules["motion_core_pack.motion_core.hosts.comfy"].MotionLayer
    inside = {"faults": 0, "calls": 0}
    forward = layer.forward

    def counted(self, x, transformer_options=None):  # this benchmark's process only
        before = minor_faults()
        out = forward(self, x, transformer_options)
        inside["faults"] += minor_faults() - before
        inside["calls"] += 1
        return out

    layer.forward = counted
    for name, m in (("plain SD1.5 model", model), ("with the v2 motion module", injected)):
        faults_per_step(m, positive, negative, 2)  # warm-up: loading, first allocations
        inside.update(faults=0, calls=0)
        per_step = faults_per_step(m, positive, negative, args.steps + 1)
        print(f"{name:28} minor faults per step: median {statistics.median(per_step):,.0f} {per_step}")
    per_step = inside["faults"] / (args.steps + 1)
    print(f"inside our MotionLayer calls: {per_step:,.0f} per step over {inside['calls']} calls")


if __name__ == "__main__":
    main()
