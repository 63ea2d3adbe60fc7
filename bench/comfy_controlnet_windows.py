"""ControlNet in context windows: workflows/controlnet_video_to_video.api.json (Canny hints per frame, core's Apply
ControlNet (Advanced), KSampler with Context Options 16 / overlap 4) on 48 frames, against the same graph on a
16-frame clip (the baseline: one window), per frame. Random full-size weights from tests/comfy_workspace.py, CPU fp32.
Each clip size in a fresh ComfyUI server: a first run loads the models, a second (another seed) is timed; peak RSS
is the server's over both.

    COMFYUI_PATH=... python bench/comfy_controlnet_windows.py [--px 64] [--steps 2]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from comfy_server import ComfyServer  # noqa: E402
from comfy_vs_ade import comfy_workspace, peak_rss, seconds  # noqa: E402

CLIPS = {16: "motion_core_input.webp", 48: "motion_core_input_48.webp"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--px", type=int, default=64)
    p.add_argument("--steps", type=int, default=2)
    args = p.parse_args()
    comfy, python, base = comfy_workspace()
    rows = {}
    for frames, clip in CLIPS.items():
        wf = json.loads((ROOT / "workflows" / "controlnet_video_to_video.api.json").read_text())
        wf["10"]["inputs"]["image"] = clip
        wf["11"]["inputs"].update(width=args.px, height=args.px)
        wf["6"]["inputs"]["steps"] = args.steps
        server = ComfyServer(comfy, base, python).start()
        try:
            for seed in (1, 2):  # the first run loads the models; the second is timed
                wf["6"]["inputs"]["seed"] = seed
                entry = server.run(wf)
                assert entry["status"]["status_str"] == "success", entry["status"]
            rows[frames] = (seconds(entry), peak_rss(server.proc.pid))
        finally:
            server.stop()
    gb = 1024 ** 3
    print(f"SD1.5 + v3 module + SD1.5 ControlNet (random full-size weights), {args.px}x{args.px} px, {args.steps} "
          "steps, CFG 7.5, CPU fp32; timed: the second run of the graph in its server (models loaded)")
    for frames, (s, rss) in rows.items():
        windows = "1 window" if frames == 16 else "context 16, overlap 4: 4 windows"
        print(f"{frames:3} frames ({windows}): {s:7.1f} s, {s / args.steps / frames:.3f} s per frame-step, "
              f"peak RSS {rss / gb:.2f} GiB")
    per_frame = (rows[48][0] / 48) / (rows[16][0] / 16)
    print(f"48 in windows / 16 frames: {per_frame:.2f}x the time per frame-step (4 windows of 16 sample 64 frames for "
          f"48: 1.33x is the windows' own overlap), peak RSS {rows[48][1] / rows[16][1]:.2f}x")


if __name__ == "__main__":
    main()
