"""`python -m demo` (`make demo`): animate the two personalised demo models and measure AnimateDiff's claim.

The claim: a motion module trained once on video with the BASE image model frozen animates personalised models made
from that base (here a neon full fine-tune and a checkerboard LoRA) without tuning them, keeping their style; a
MotionLoRA trained on top of it changes the motion. The demo's module learned one motion, everything drifting right
(MOTION); its MotionLoRA learned moving up (LORA_MOTION). For each of 12 prompts per personalised model, one seed:
  (a) image   the personalised model alone (motion strength 0: no module runs);
  (b) motion  the personalised model + the module trained on the base (AnimateDiff's claim);
  (c) tuned   the personalised model + that module fine-tuned on the personalised model's own clips (the per-model
              tuning AnimateDiff avoids);
  (d) LoRA    (b) + the MotionLoRA.
One recipe for every row (RECIPE): DDIM, and one starting noise for all the frames of a clip (`noise="constant"`):
then (a) is a still, and every difference between frames is the motion module's.
Per animation (`motion_core.metrics`): the direction the object moves, its displacement, background flicker, shape
IoU between frames, and the domain score (the frames' style between the base model's stills, 0, and the personalised
model's own, 1). Files: GIF + MP4 per prompt and row, a contact sheet per model, metrics.json, the tables printed.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from motion_core import metrics
from motion_core.errors import ConfigError
from motion_core.formats.files import atomic_write
from motion_core.pipeline import generate

from . import world
from .models import FRAMES, SIZE
from .ship import WEIGHTS, load_models

MOTION, LORA_MOTION = "right", "up"
ROWS = {"a": "image", "b": "motion", "c": "tuned", "d": "LoRA"}
MODEL_STYLES = {"neon": "neon", "checker": "checkerboard"}
STEPS = 9
RECIPE = dict(guidance=4.0, scheduler="ddim", noise="constant")  # every row, every prompt
PROMPTS_PER_MODEL = 12
OVERVIEW = 3  # prompts per model in overview.png (the README's picture)


@dataclass(frozen=True)
class Case:
    model: str  # "neon" or "checker"
    prompt: str
    seed: int

    @property
    def slug(self) -> str:
        return f"{self.seed}_" + "_".join(self.prompt.split()[1:3])


def cases(n: int = PROMPTS_PER_MODEL) -> list[Case]:
    """n prompts per personalised model: still scenes in its style (shape, colours and background vary; position and
    size are not in a prompt), each with its own seed."""
    out = []
    for model, style in MODEL_STYLES.items():
        scenes = world.sample_scenes(n, 900 + len(out), motion=False, style=style)
        out += [Case(model, world.caption(s), 100 + len(out) + i) for i, s in enumerate(scenes)]
    return out


def still_prompts(style: str, n: int = 16, seed: int = 7) -> list[str]:
    """n captions of still scenes in `style` (the domain score's reference and base sets)."""
    return [world.caption(s) for s in world.sample_scenes(n, seed, motion=False, style=style)]


def _stills(model, motion_module, prompts: list[str], seed: int, steps: int) -> np.ndarray:
    """One still per prompt: a prompt-per-frame schedule at motion strength 0 is a batch of independent images."""
    schedule = [f"{i}: {p}" for i, p in enumerate(prompts)]
    return generate(model, motion_module, schedule, frames=len(prompts), steps=steps, guidance=RECIPE["guidance"],
                    scheduler=RECIPE["scheduler"], width=SIZE, height=SIZE, seed=seed, motion_strength=0.0,
                    context=None, progress=False).frames.numpy()


def animate(model, module, case: Case, key: str, steps: int = STEPS):
    """One animation of `case` for row `key` (module: the row's motion module; strength 0 for row a). Every row starts
    from the same noise, one (3, 32, 32) draw from the case's seed given to every frame (RECIPE's constant noise).
    Row (a), the module off, is then the same image in every frame: it is drawn once and repeated."""
    noise = torch.randn((1, 3, 1, SIZE, SIZE), generator=torch.Generator().manual_seed(case.seed))
    frames = 1 if key == "a" else FRAMES
    animation = generate(model, module, case.prompt, frames=frames, steps=steps, width=SIZE, height=SIZE,
                         seed=case.seed, context=None, motion_strength=0.0 if key == "a" else 1.0, progress=False,
                         latents=noise.expand(-1, -1, frames, -1, -1).contiguous(), **RECIPE)
    settings = {**animation.settings, "frames": FRAMES, "starting_noise": "torch.randn((1, 3, 1, 32, 32)) from the "
                "seed's torch.Generator, the same for every frame"}
    return replace(animation, frames=animation.frames.expand(FRAMES, -1, -1, -1),
                   latents=animation.latents.expand(-1, -1, FRAMES, -1, -1), settings=settings)


def displacement(row: dict, motion: str) -> float:
    """The net move of the object along `motion`'s direction (image units; positive = that way)."""
    return {"right": row["dx"], "left": -row["dx"], "down": row["dy"], "up": -row["dy"]}[motion]


def _save(frames: np.ndarray, folder: Path, slug: str, settings: dict) -> None:
    from motion_core.media import write_animation
    big = np.repeat(np.repeat(frames, 4, axis=1), 4, axis=2)  # nearest-neighbour 4x: 128 px files
    for suffix in (".gif", ".mp4"):
        write_animation(big, folder / f"{slug}{suffix}", fps=8, metadata={"motion_core": settings})


def contact_sheet(rows: list[tuple[str, list[np.ndarray]]], path: Path, scale: int = 3, label_width: int = 230,
                  labels_above: bool = False, optimize: bool = False) -> Path:
    """A PNG: one row per (label, [clip (f, h, w, 3) in [0, 1], ...]): each clip's frames side by side, clips
    separated by a gap, scaled `scale`x (nearest); each label left of its row, or above it;
    optimize: PNG optimisation (smaller, several seconds slower)."""
    from PIL import Image, ImageDraw
    pad, gap, above = 1, 10, 14 if labels_above else 0
    cell = SIZE * scale
    widths = [len(c) * (cell + pad) + gap for c in rows[0][1]]
    height = cell + pad + above
    sheet = Image.new("RGB", (label_width + sum(widths), len(rows) * height), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for r, (label, clips) in enumerate(rows):
        y = r * height + above
        draw.multiline_text((4, y - above + 1 if labels_above else y + 2), label.replace("\n", " ") if labels_above
                            else label, fill=(0, 0, 0))
        x = label_width
        for clip, width in zip(clips, widths):
            for i, frame in enumerate(clip):
                image = Image.fromarray(np.rint(frame * 255).astype(np.uint8)).resize((cell, cell), Image.NEAREST)
                sheet.paste(image, (x + i * (cell + pad), y))
            x += width
    atomic_write(path, lambda tmp: sheet.save(tmp, format="PNG", optimize=optimize))
    return path


def evaluate(models, motion, case_list=None, *, rows: str = "abcd", steps: int = STEPS, out: Path | None = None,
             progress: bool = True, domain: bool = True) -> list[dict]:
    """Generate the `rows` for every case; returns one metrics row per animation (and writes files when `out`).
    domain False: no domain score (it samples 32 reference stills per model)."""
    results, clips = _animate_cases(models, motion, cases() if case_list is None else case_list, rows, steps, out,
                                    progress, domain)
    if out is not None:
        _sheets(clips, rows, out)
    return results


def _animate_cases(models, motion, case_list, rows, steps, out, progress, domain):
    """(metrics rows, {(case, row key): frames}) for `case_list`; GIF + MP4 files into `out` when given."""
    refs = {name: (_stills(models[name], motion["base"], still_prompts(style), 7, steps),
                   _stills(models["base"], motion["base"], still_prompts("plain"), 7, steps))
            for name, style in MODEL_STYLES.items() if domain and any(c.model == name for c in case_list)}
    results, clips = [], {}
    for i, case in enumerate(case_list):
        for key in rows:
            module = motion[{"a": "base", "b": "base", "c": case.model, "d": "lora"}[key]]
            started = time.perf_counter()
            animation = animate(models[case.model], module, case, key, steps)
            frames = animation.frames.numpy()
            row = {"model": MODEL_STYLES[case.model], "row": f"({key}) {ROWS[key]}", "prompt": case.prompt}
            row.update(metrics.evaluate(frames))
            row[MOTION] = displacement(row, MOTION)
            row[LORA_MOTION] = displacement(row, LORA_MOTION)
            row["domain"] = metrics.domain_score(frames, *refs[case.model]) if domain else float("nan")
            row["seconds"] = round(time.perf_counter() - started, 2)
            results.append(row)
            clips[case, key] = frames
            if out is not None:
                _save(frames, out / MODEL_STYLES[case.model] / ROWS[key], case.slug, animation.settings)
        if progress:
            print(f"  {i + 1}/{len(case_list)}: {case.model}: {case.prompt}", flush=True)
    return results, clips


def _sheets(clips: dict, rows: str, out: Path) -> None:
    """contact_<style>.png per model (every prompt, every row) and overview.png (the README's picture)."""
    case_list = list(dict.fromkeys(case for case, _ in clips))
    for name, style in MODEL_STYLES.items():
        sheet = [(f"{c.prompt.replace(' on ', chr(10) + 'on ')}\n" + "  ".join(f"({k})" for k in rows),
                  [clips[c, k] for k in rows]) for c in case_list if c.model == name]
        if sheet:
            contact_sheet(sheet, out / f"contact_{style}.png")
    picked = [k for k in "abd" if k in rows]  # the README's picture: the first OVERVIEW prompts of each model
    sheet = [(f"{MODEL_STYLES[c.model]}, seed {c.seed}:\n" + "   ".join(f"({k}) {ROWS[k]}" for k in picked),
              [clips[c, k] for k in picked])
             for name in MODEL_STYLES for c in [c for c in case_list if c.model == name][:OVERVIEW]]
    contact_sheet(sheet, out / "overview.png", scale=2, label_width=0, labels_above=True, optimize=True)


def _part(weights, model: str | None, rows: str, steps: int, out: Path, threads: int | None = 1):
    """A part of `run`: every case of `model` (None: of every model) on `threads` (None: torch's default)."""
    if threads is not None:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    models, motion = load_models(weights)
    return _animate_cases(models, motion, [c for c in cases() if model in (None, c.model)], rows, steps, out, True,
                          True)


def summary(results: list[dict]) -> list[dict]:
    """Per model and row: how many clips move right / up (motion_core.metrics' direction), mean displacement along
    each, mean background flicker, domain score and shape IoU."""
    out = []
    for model in dict.fromkeys(r["model"] for r in results):
        for key in dict.fromkeys(r["row"] for r in results):
            group = [r for r in results if r["model"] == model and r["row"] == key]
            mean = lambda k: float(np.nanmean([r[k] for r in group]))  # noqa: E731
            count = lambda m: f"{sum(r['direction'] == m for r in group)}/{len(group)}"  # noqa: E731
            out.append({"model": model, "row": key, f"moves {MOTION}": count(MOTION),
                        f"moves {LORA_MOTION}": count(LORA_MOTION), f"dx ({MOTION})": mean(MOTION),
                        f"-dy ({LORA_MOTION})": mean(LORA_MOTION), "flicker": mean("flicker"),
                        "domain": mean("domain"), "shape IoU": mean("shape_iou")})
    return out


def run(weights: str | Path = WEIGHTS, out: str | Path = "build/demo", steps: int = STEPS,
        workers: int = 2) -> list[dict]:
    """The demo: every row of every case, files and tables into `out`. workers: 1 runs in this process (torch's
    threads); more runs each personalised model in a process of its own on one thread."""
    if steps < 1:
        raise ConfigError(f"steps={steps} must be at least 1")
    if workers < 1:
        raise ConfigError(f"workers={workers} must be at least 1")
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    started = time.perf_counter()
    out = Path(out)
    rows = "".join(ROWS)
    print(f"demo: {len(cases())} prompts x rows (a) image / (b) motion / (c) tuned / (d) LoRA, {FRAMES} frames, "
          f"{steps} DDIM steps, constant starting noise, {workers} worker process(es), into {out}", flush=True)
    if workers == 1:
        parts = [_part(weights, None, rows, steps, out, threads=None)]
    else:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            parts = list(pool.map(_part, *zip(*[(weights, name, rows, steps, out) for name in MODEL_STYLES])))
    results = [r for part, _ in parts for r in part]
    _sheets({k: v for _, clips in parts for k, v in clips.items()}, rows, out)
    atomic_write(out / "metrics.json", lambda tmp: Path(tmp).write_text(json.dumps(results, indent=2) + "\n"))
    print(metrics.table([{k: r[k] for k in ("model", "row", "prompt", "direction", MOTION, LORA_MOTION, "flicker",
                                             "domain", "shape_iou")} for r in results]))
    print()
    print(metrics.table(summary(results)))
    print(f"\nwrote {out}/<model>/<row>/*.gif|mp4, contact sheets and metrics.json "
          f"in {time.perf_counter() - started:.0f} s")
    return results
