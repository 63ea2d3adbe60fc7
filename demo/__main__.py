"""`python -m demo` (`make demo`) and `python -m demo train` (`make demo-train`): the demo, a client of motion_core."""

from __future__ import annotations

import argparse
import sys

from motion_core.errors import MotionCoreError


def parser() -> argparse.ArgumentParser:
    from .build import STAGES
    from .run import STEPS
    from .ship import WEIGHTS
    p = argparse.ArgumentParser(prog="python -m demo", description=__doc__)
    sub = p.add_subparsers(dest="command")
    s = sub.add_parser(
        "run", help="animate the shipped demo models and print the metrics table (the default command)",
        description="Animates the three personalised demo models (neon: full fine-tune; patterned: LoRA, "
                    "near the base; checkerboard: LoRA, far from it) with the motion module trained on the base model, "
                    "beside (a) the model alone, (c) for checkerboard a module tuned on its own clips and (d) the "
                    "MotionLoRA; measures each model's feature similarity (CKA) to the base. Writes GIF + MP4 per "
                    "prompt, contact sheets, metrics.json and similarity.json into --out, and prints the tables.")
    s.add_argument("--weights", default=str(WEIGHTS), help=f"demo weights folder (default: the shipped {WEIGHTS})")
    s.add_argument("--out", default="build/demo", help="output folder (default build/demo)")
    s.add_argument("--steps", type=int, default=STEPS, help=f"sampling steps per animation (default {STEPS})")
    s.add_argument("--workers", type=int, default=2, help="1: one process on torch's threads; 2 (default): the "
                                                          "prompts split over 2 processes of one thread each")
    s = sub.add_parser(
        "train", help="train every demo model from nothing; each finished stage is kept and skipped on a rerun",
        description="Renders the shape world, trains the base text-to-image model, the neon fine-tune, the "
                    "checkerboard and patterned LoRAs, the motion module (through `python -m motion_core train`, "
                    "base frozen), the MotionLoRA and the module tuned on the checkerboard model, then writes fp16 "
                    "copies and the model card "
                    "to --out. Deterministic for a given machine and torch version. Interrupted, run it again: it "
                    "continues where it stopped.")
    s.add_argument("--work", default="build/demo_train", help="folder for data and full-precision models")
    s.add_argument("--out", default=str(WEIGHTS), help=f"where the shipped weights go (default {WEIGHTS})")
    s.add_argument("--stage", action="append", choices=list(STAGES) + ["ship"],
                   help="run only this stage (repeatable; default: all, in order)")
    s.add_argument("--device", default="cpu", help="torch device for the training stages (default cpu, the "
                                                   "reference; e.g. cuda)")
    s.add_argument("--adopt", metavar="WEIGHTS", help="take this shipped weights folder's stages whose settings are "
                                                      "today's as finished (e.g. demo/weights: only changed stages "
                                                      "train)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "train":
            from .build import run
            run(args.work, args.out, args.stage, device=args.device, adopt_from=args.adopt)
        else:
            from .run import STEPS, run
            from .ship import WEIGHTS
            run(getattr(args, "weights", WEIGHTS), getattr(args, "out", "build/demo"), getattr(args, "steps", STEPS),
                getattr(args, "workers", 2))
    except MotionCoreError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
