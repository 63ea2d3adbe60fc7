"""`python -m motion_core demo` and `python -m motion_core demo-train` (the Makefile's `demo` / `demo-train`)."""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    from .build import STAGES
    from .run import STEPS
    from .ship import WEIGHTS
    s = sub.add_parser(
        "demo", help="animate the shipped demo models and print the metrics table (about 2 minutes on a CPU)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Animates the two personalised demo models (neon: full fine-tune; checkerboard: LoRA) with the "
                    "motion module trained on the base model, beside (a) each frame sampled on its own and (c) a "
                    "motion module trained on the personalised model itself. Writes GIF + MP4 per prompt, a "
                    "contact sheet per model and metrics.json into --out, and prints the tables.")
    s.add_argument("--weights", default=str(WEIGHTS), help=f"demo weights folder (default: the shipped {WEIGHTS})")
    s.add_argument("--out", default="build/demo", help="output folder (default build/demo)")
    s.add_argument("--steps", type=int, default=STEPS, help=f"DDIM steps per animation (default {STEPS})")
    s.set_defaults(run=lambda args: __import__("motion_core.demo.run", fromlist=["run"]).run(
        args.weights, args.out, args.steps))

    s = sub.add_parser(
        "demo-train", help="train every demo model from nothing (about an hour on 2 CPU cores)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Renders the shape world, trains the base text-to-image model, the neon fine-tune, the "
                    "checkerboard LoRA, the motion module (through `python -m motion_core train`, base frozen) and "
                    "the per-model comparison modules, then writes fp16 copies and the model card to --out. "
                    "Deterministic for a given machine and torch version.")
    s.add_argument("--work", default="build/demo_train", help="folder for data and full-precision models")
    s.add_argument("--out", default=str(WEIGHTS), help=f"where the shipped weights go (default {WEIGHTS})")
    s.add_argument("--stage", action="append", choices=list(STAGES) + ["ship"],
                   help="run only this stage (repeatable; default: all, in order)")
    s.set_defaults(run=lambda args: __import__("motion_core.demo.build", fromlist=["run"]).run(
        args.work, args.out, args.stage))
