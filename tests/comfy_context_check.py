"""Run inside ComfyUI's Python (see test_context.py): compare motion_core.context windows with ComfyUI core's
comfy/context_windows.py over a grid of settings. Prints {"compared": N, "mismatches": [...first few...]}."""

import itertools
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [sys.argv[1], str(ROOT)]
sys.argv = [sys.argv[0], "--cpu"]

import comfy.options  # noqa: E402

comfy.options.enable_args_parsing()

import comfy.context_windows as cw  # noqa: E402
from motion_core.context import ContextOptions, fuse_weights, windows  # noqa: E402

NAMES = {"static": cw.ContextSchedules.STATIC_STANDARD, "uniform": cw.ContextSchedules.UNIFORM_STANDARD,
         "looped": cw.ContextSchedules.UNIFORM_LOOPED}
compared, mismatches, theirs_invalid = 0, [], []
for sched, frames, length, overlap, stride, closed, step in itertools.product(
        NAMES, [1, 8, 16, 17, 24, 48, 64, 100], [8, 16], [0, 2, 4, 7], [1, 2, 3], [False, True], [0, 1, 2, 3, 5, 9]):
    if overlap >= length:
        continue
    handler = cw.IndexListContextHandler(cw.get_matching_context_schedule(NAMES[sched]),
                                         cw.get_matching_fuse_method("pyramid"), length, overlap, stride, closed)
    handler._step = step
    theirs = handler.context_schedule.func(frames, handler, {})
    ours = windows(frames, ContextOptions(length=length, overlap=overlap, schedule=sched, stride=stride,
                                          closed_loop=closed), step)
    case = [sched, frames, length, overlap, stride, closed, step]
    if not all(0 <= i < frames for w in theirs for i in w):  # ComfyUI core emits frames past the end here
        theirs_invalid.append(case)
        if not all(0 <= i < frames for w in ours for i in w) or sorted({i for w in ours for i in w}) != list(range(frames)):
            mismatches.append(case + ["ours invalid too"])
        continue
    compared += 1
    if theirs != ours:
        mismatches.append(case)
for n in range(1, 33):
    compared += 1
    if cw.create_weights_pyramid(n) != fuse_weights(n, "pyramid").tolist():
        mismatches.append(["pyramid", n])
print(json.dumps({"compared": compared, "mismatches": mismatches[:5], "comfy_invalid": len(theirs_invalid),
                  "comfy_invalid_examples": theirs_invalid[:3]}))
