"""The cost of shaping the motion against plain sampling, measured in one run (issue 19's bench).

`generate` on the demo's neon model + its motion module (real trained weights, 8 frames, 32x32 px, DDIM 10 steps,
CFG on), medians of --repeats runs after a warm-up, interleaved: plain; a per-pixel motion mask (one per frame, a soft
edge, resized to every block); a per-frame strength curve; start 0.5 (the module skipped for half the steps);
FreeInit with 2 and 3 iterations, and 3 with --free-init-fast. Printed as seconds and ratios to plain (FreeInit also
per iteration: it re-runs the whole sampling).
    python bench/motion_control.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from timing import interleaved  # noqa: E402  (bench/timing.py)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    import torch

    from demo.run import cases
    from demo.ship import load_models
    from motion_core.pipeline import generate
    torch.set_num_threads(2)
    models, motion = load_models()
    case = cases()[0]
    run = dict(frames=8, steps=10, guidance=4.0, width=32, height=32, seed=case.seed, scheduler="ddim",
               noise="constant", context=None, progress=False)
    mask = torch.linspace(0, 1, 32).expand(8, 32, 32).contiguous()  # a horizontal ramp per frame: no 0/1 shortcut
    settings = {"plain": {}, "mask per pixel": dict(motion_mask=mask), "strength curve": dict(motion_strength="0:1, 7:0.3"),
                "start 0.5": dict(motion_start=0.5), "free_init 2": dict(free_init=2),
                "free_init 3": dict(free_init=3), "free_init 3 fast": dict(free_init=3, free_init_fast=True)}
    medians = interleaved(settings, lambda **extra: generate(models["neon"], motion["base"], case.prompt, **run,
                                                             **extra), args.repeats)
    plain = medians["plain"]
    print(f"motion control on the demo's neon model + module, 8 frames 32x32, DDIM 10 steps, CFG, {args.repeats} "
          f"repeats (medians; baseline: plain, same run)")
    for name, median in medians.items():
        iterations = settings[name].get("free_init", 1)
        per = f"   x{median / plain / iterations:.2f} per iteration" if iterations > 1 else ""
        print(f"  {name:18s} {median:6.3f} s   x{median / plain:.2f} of plain{per}")


if __name__ == "__main__":
    main()
