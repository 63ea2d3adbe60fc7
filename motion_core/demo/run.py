"""`python -m motion_core demo` (`make demo`): animate the two personalised demo models and measure the paper's claim.

For each test prompt, with the same seed, three animations of 16 frames:
  (a) image   the personalised model alone, every frame sampled on its own (motion strength 0: no module runs);
  (b) motion  the personalised model + the motion module trained once on the BASE model (AnimateDiff's claim);
  (c) tuned   the personalised model + a motion module trained on that personalised model (the per-model tuning
              AnimateDiff avoids).
Per animation (`motion_core.metrics`): the direction the object moves against the prompt's motion word, the path's
smoothness, background flicker, object consistency, and the domain score (the frames' style between the base
model's stills, 0, and the personalised model's own stills, 1). Files: GIF + MP4 per prompt and setting (scaled 4x,
nearest), a contact sheet per model, metrics.json, and the tables printed.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import metrics
from ..errors import ConfigError
from ..formats.files import atomic_write
from ..pipeline import generate
from . import world
from .models import FRAMES, SIZE
from .ship import WEIGHTS, load_models

SETTINGS = {"a": "image", "b": "motion", "c": "tuned"}
MODEL_STYLES = {"neon": "neon", "checker": "checkerboard"}
STEPS, GUIDANCE, SCHEDULER = 12, 4.0, "euler_a"


@dataclass(frozen=True)
class Case:
    model: str  # "neon" or "checker"
    scene: world.Scene
    seed: int

    @property
    def prompt(self) -> str:
        return world.caption(self.scene)

    @property
    def slug(self) -> str:
        return f"{self.scene.motion}_{self.scene.colour}_{self.scene.shape}"


def _scene(text: str, style: str) -> world.Scene:
    colour, shape, motion, background = text.split()
    return world.Scene(shape, colour, background, "big", 0.5, 0.5, motion, style)


# every motion word on each model, shapes and colours varied; the scene's position and size are not in the prompt
CASES = [Case(model, _scene(text, MODEL_STYLES[model]), 100 + i) for model, texts in (
    ("neon", ("red circle right blue", "yellow square left gray", "green triangle up brown", "white diamond down green",
              "purple circle bouncing gray", "blue square growing brown")),
    ("checker", ("yellow circle left blue", "red square right green", "white triangle down brown",
                 "purple diamond up gray", "green circle bouncing blue", "white square growing gray")))
    for i, text in enumerate(texts)]


def still_prompts(style: str, n: int = FRAMES, seed: int = 7) -> list[str]:
    """n captions of still scenes in `style` (the domain score's reference and base sets)."""
    return [world.caption(s) for s in world.sample_scenes(n, seed, motion=False, style=style)]


def _stills(model, motion_module, prompts: list[str], seed: int, steps: int) -> np.ndarray:
    """One still per prompt: a prompt-per-frame schedule at motion strength 0 is a batch of independent images."""
    schedule = [f"{i}: {p}" for i, p in enumerate(prompts)]
    return generate(model, motion_module, schedule, frames=len(prompts), steps=steps, guidance=GUIDANCE, width=SIZE,
                    height=SIZE, seed=seed, scheduler=SCHEDULER, motion_strength=0.0, context=None,
                    progress=False).frames.numpy()


def _save(frames: np.ndarray, folder: Path, slug: str, settings: dict) -> None:
    from ..media import write_animation
    big = np.repeat(np.repeat(frames, 4, axis=1), 4, axis=2)  # nearest-neighbour 4x: 128 px files
    for suffix in (".gif", ".mp4"):
        write_animation(big, folder / f"{slug}{suffix}", fps=8, metadata={"motion_core": settings})


def contact_sheet(rows: list[tuple[str, np.ndarray]], path: Path, every: int = 3, scale: int = 3) -> Path:
    """A PNG: one row per (label, frames (f, h, w, 3) in [0, 1]), every `every`-th frame, scaled `scale`x."""
    from PIL import Image, ImageDraw
    label_width, pad = 300, 2
    picked = [frames[::every] for _, frames in rows]
    cell = SIZE * scale
    width = label_width + max(len(p) for p in picked) * (cell + pad)
    sheet = Image.new("RGB", (width, len(rows) * (cell + pad)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for r, ((label, _), frames) in enumerate(zip(rows, picked)):
        y = r * (cell + pad)
        draw.multiline_text((4, y + 4), label, fill=(0, 0, 0))
        for c, frame in enumerate(frames):
            image = Image.fromarray(np.rint(frame * 255).astype(np.uint8)).resize((cell, cell), Image.NEAREST)
            sheet.paste(image, (label_width + c * (cell + pad), y))
    atomic_write(path, lambda tmp: sheet.save(tmp, format="PNG"))
    return path


def evaluate_cases(models, motion, cases=CASES, *, steps: int = STEPS, out: Path | None = None, progress=True):
    """Generate (a), (b), (c) for every case; returns the per-animation rows (and writes files when `out`)."""
    refs = {}
    for name, style in MODEL_STYLES.items():  # the domain score's two still sets, per personalised model
        refs[name] = (_stills(models[name], motion["base"], still_prompts(style), 7, steps),
                      _stills(models["base"], motion["base"], still_prompts("plain"), 7, steps))
    rows, sheets = [], {name: [] for name in MODEL_STYLES}
    for i, case in enumerate(cases):
        for key, setting in SETTINGS.items():
            module = motion[case.model] if key == "c" else motion["base"]
            started = time.perf_counter()
            animation = generate(models[case.model], module, case.prompt, frames=FRAMES, steps=steps,
                                 guidance=GUIDANCE, width=SIZE, height=SIZE, seed=case.seed, context=None,
                                 scheduler=SCHEDULER,
                                 motion_strength=0.0 if key == "a" else 1.0, progress=False)
            frames = animation.frames.numpy()
            row = {"model": MODEL_STYLES[case.model], "setting": f"({key}) {setting}", "prompt_motion": case.scene.motion}
            row.update(metrics.evaluate(frames, case.scene.motion))
            row["domain"] = metrics.domain_score(frames, *refs[case.model])
            row["seconds"] = round(time.perf_counter() - started, 2)
            rows.append(row)
            if out is not None:
                _save(frames, out / MODEL_STYLES[case.model] / setting, case.slug, animation.settings)
                sheets[case.model].append((f"({key}) {setting}\n{case.prompt.replace(' on ', chr(10) + 'on ')}",
                                           frames))
        if progress:
            print(f"  {i + 1}/{len(cases)}: {case.prompt}", flush=True)
    if out is not None:
        for name, sheet in sheets.items():
            if sheet:
                contact_sheet(sheet, out / f"contact_{MODEL_STYLES[name]}.png")
    return rows


def summary(rows: list[dict]) -> list[dict]:
    """Per model and setting: share of prompts moving as asked, mean flicker, domain score, smoothness, shape IoU."""
    out = []
    for model in dict.fromkeys(r["model"] for r in rows):
        for setting in dict.fromkeys(r["setting"] for r in rows):
            group = [r for r in rows if r["model"] == model and r["setting"] == setting]
            mean = lambda k: float(np.nanmean([r[k] for r in group]))  # noqa: E731
            out.append({"model": model, "setting": setting, "moves as prompted": f"{sum(r['matches'] for r in group)}"
                        f"/{len(group)}", "flicker": mean("flicker"), "domain": mean("domain"),
                        "smoothness": mean("smoothness"), "shape_iou": mean("shape_iou")})
    return out


def run(weights: str | Path = WEIGHTS, out: str | Path = "build/demo", steps: int = STEPS) -> list[dict]:
    if steps < 1:
        raise ConfigError(f"steps={steps} must be at least 1")
    started = time.perf_counter()
    torch.manual_seed(0)
    models, motion = load_models(weights)
    out = Path(out)
    print(f"demo: {len(CASES)} prompts x (a) image / (b) motion / (c) tuned, {FRAMES} frames, {steps} steps, "
          f"into {out}", flush=True)
    rows = evaluate_cases(models, motion, steps=steps, out=out)
    (out / "metrics.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(metrics.table([{k: r[k] for k in ("model", "setting", "prompt_motion", "direction", "matches", "flicker",
                                             "domain", "smoothness", "shape_iou")} for r in rows]))
    print()
    print(metrics.table(summary(rows)))
    print(f"\nwrote {out}/<model>/<setting>/*.gif|mp4, contact sheets and metrics.json "
          f"in {time.perf_counter() - started:.0f} s")
    return rows
