"""Long clips through context windows: peak server RSS and time for 64 frames with a 16-frame context vs 16 frames
(the baseline, one window), same workflow otherwise (workflows/text_to_animation.api.json at 64x64 px, 2 steps, random
full-size weights from tests/comfy_workspace.py). Each run in a fresh ComfyUI server. Target: <= 1.3x the peak RSS.

    COMFYUI_PATH=... python bench/comfy_long.py [--px 64]
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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--px", type=int, default=64)
    args = p.parse_args()
    comfy, python, base = comfy_workspace()
    rows = {}
    for frames in (16, 64):
        wf = json.loads((ROOT / "workflows" / "text_to_animation.api.json").read_text())
        wf["6"]["inputs"].update(frames=frames, width=args.px, height=args.px, steps=2, context_length=16,
                                 context_overlap=4)
        server = ComfyServer(comfy, base, python).start()
        try:
            entry = server.run(wf)
            assert entry["status"]["status_str"] == "success", entry["status"]
            rows[frames] = (seconds(entry), peak_rss(server.proc.pid))
        finally:
            server.stop()
    gb = 1024 ** 3
    print(f"SD1.5 + v3 module (random full-size weights), {args.px}x{args.px} px, 2 steps, CPU fp32, fresh server each")
    for frames, (s, rss) in rows.items():
        windows = "1 window" if frames == 16 else "context 16, overlap 4: 5 windows"
        print(f"{frames:3} frames ({windows}): {s:7.1f} s, peak RSS {rss / gb:.2f} GiB")
    print(f"64 / 16 frames: peak RSS {rows[64][1] / rows[16][1]:.2f}x (target <= 1.3x), time {rows[64][0] / rows[16][0]:.2f}x")


if __name__ == "__main__":
    main()
