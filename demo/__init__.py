"""The demo, a client of motion_core's public API (not installed with the library): a tiny procedural world
(shapes, colours, motions, styles) small enough to train on a CPU, its models (`models`, `build`: `python -m demo
train`), the shipped weights (`ship`) and the evaluation (`run`: `python -m demo`).

`world` renders scenes and writes datasets with numpy, PIL and einops only (no torch in its code; importing it
still runs motion_core/__init__, which imports torch).
"""

from .world import (BACKGROUNDS, COLOURS, MOTIONS, SHAPES, SIZES, STYLES, Scene, caption, render, render_clip,
                    sample_scenes, vocabulary, write_dataset)

__all__ = ["BACKGROUNDS", "COLOURS", "MOTIONS", "SHAPES", "SIZES", "STYLES", "Scene", "caption", "render",
           "render_clip", "sample_scenes", "vocabulary", "write_dataset"]
