"""SparseCtrl's cost per sampling step against the same sampling without it, measured in one run (issue 18's bench).

`generate` on the tiny random SD1.5-shaped pipeline (`motion_core.tiny`: UNet 32/64/64/64, a small VAE) with a v3-
shaped motion module, 16 frames at 64x64 px, DDIM 10 steps, CFG on; a SparseCtrl built for that UNet (RGB and
scribble, official condition embeddings, random weights): keyframe 0, and keyframes 0 and 15. Medians of --repeats
interleaved runs after a warm-up, printed as milliseconds per step and ratios to plain. The ControlNet runs the UNet's
encoder half (with its own motion modules) once more per call; the scribble embedding also runs convolutions at pixel
resolution. Full-size ratios are not measured here.
    python bench/sparsectrl.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from timing import interleaved  # noqa: E402  (bench/timing.py)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    import torch

    from motion_core import MotionModule, MotionModuleConfig
    from motion_core.base import load_base
    from motion_core.pipeline import generate
    from motion_core.sparsectrl import SparseCtrlConfig, build_sparsectrl
    from motion_core.tiny import build_tiny_base
    torch.set_num_threads(2)
    torch.manual_seed(0)
    base = load_base(build_tiny_base(Path(tempfile.mkdtemp()) / "base", words=["cat"]))
    mm = MotionModule(MotionModuleConfig(family="sd15", version="v3", channels=(32, 64, 64, 64), heads=2)).eval()
    ctrls = {kind: build_sparsectrl(base.unet, SparseCtrlConfig(kind, 4 if kind == "rgb" else 3, heads=2),
                                    load_weights_from_unet=True) for kind in ("rgb", "scribble")}
    image = torch.rand(64, 64, 3)
    steps = 10
    run = dict(frames=16, steps=steps, guidance=7.5, width=64, height=64, seed=1, scheduler="ddim", context=None,
               progress=False)
    settings = {"plain": {}, "rgb, keyframe 0": dict(sparse_ctrl=ctrls["rgb"], keyframes={0: image}),
                "rgb, keyframes 0 15": dict(sparse_ctrl=ctrls["rgb"], keyframes={0: image, 15: image}),
                "scribble, keyframe 0": dict(sparse_ctrl=ctrls["scribble"], keyframes={0: image})}
    medians = interleaved(settings, lambda **extra: generate(base, mm, "a cat", **run, **extra), args.repeats)
    plain = medians["plain"]
    print(f"SparseCtrl on the tiny pipeline, 16 frames 64x64, DDIM {steps} steps, CFG, {args.repeats} repeats "
          f"(medians; baseline: plain, same run)")
    for name, median in medians.items():
        print(f"  {name:22s} {median / steps * 1000:7.1f} ms/step   x{median / plain:.2f} of plain")


if __name__ == "__main__":
    main()
