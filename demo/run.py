"""`python -m demo` (`make demo`): animate the three personalised demo models and measure AnimateDiff's claim.

The claim: a motion module trained once on video with the BASE image model frozen animates personalised models made
from that base without tuning them, keeping their style; a MotionLoRA trained on top of it changes the motion. Its
stated limitation: a personalised model whose domain is far from the base's videos does not carry the motion, and
fine-tuning the module on a few clips of that domain is the remedy. Here: a neon full fine-tune and a patterned LoRA
(objects striped with the base's own texture: near the base's world, the claim), a checkerboard LoRA (a content the
base never drew: the limitation). The demo's module learned one motion, everything drifting right (MOTION); its
MotionLoRA learned moving up (LORA_MOTION). For each prompt of a personalised model, one seed, the rows MODEL_ROWS
names:
  (a) image   the personalised model alone (motion strength 0: no module runs);
  (b) motion  the personalised model + the module trained on the base (the claim; for checkerboard, the limitation);
  (c) tuned   the personalised model + that module fine-tuned on its own clips (the remedy, checkerboard only);
  (d) LoRA    (b) + the MotionLoRA.
Each model's distance from the base is measured too (`similarity`): the linear CKA of its UNet's features and the
base's at each level, on the same noisy inputs and prompts for every model (`motion_core.metrics.unet_feature_cka`).
One recipe for every row (RECIPE): DDIM, and one starting noise for all the frames of a clip (`noise="constant"`):
then (a) is a still, and every difference between frames is the motion module's.
Per animation (`motion_core.metrics`): the direction the object moves, its displacement, background flicker, shape
IoU between frames, and the domain score (the frames' style between the base model's stills, 0, and the personalised
model's own, 1). Files: GIF + MP4 per prompt and row, a contact sheet per model, metrics.json (every animation's
numbers, each model's CKA per level), the tables printed.
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
MODEL_STYLES = {"neon": "neon", "patterned": "patterned", "checker": "checkerboard"}
MODEL_ROWS = {"neon": "abd", "patterned": "abd", "checker": "abc"}  # each model's rows
LIMITATION = {"checker"}  # models whose row (b) shows the paper's stated limitation (far from the base's videos)
STEPS = 9
RECIPE = dict(guidance=4.0, scheduler="ddim", noise="constant")  # every row, every prompt
PROMPTS_PER_MODEL = 12
OVERVIEW = 3  # prompts per model in overview.png (the README's picture), with these rows:
OVERVIEW_ROWS = {"neon": "abd", "patterned": "abd", "checker": "bc"}
CKA_INPUTS = 32  # noisy inputs (the base's own scenes at timesteps spread over the schedule) for `similarity`


@dataclass(frozen=True)
class Case:
    model: str  # a MODEL_STYLES key
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


def label(model: str, key: str) -> str:
    """A row's name in the tables: "(b) motion", "(b) motion (limitation)" for a far-domain model."""
    return f"({key}) {ROWS[key]}" + (" (limitation)" if key == "b" and model in LIMITATION else "")


def similarity(models, n: int = CKA_INPUTS, seed: int = 11) -> dict[str, dict[str, float]]:
    """{model: {UNet level: linear CKA to the base, "mean": their mean}} for every personalised model in `models`,
    on the same n inputs: the base's own stills (plain, striped, dotted scenes) noised at timesteps spread evenly
    over the schedule, with their captions as prompts (one text encoder: the models share the base's)."""
    from motion_core.train.config import TrainConfig, alphas_cumprod

    from .build import BASE_STYLES
    scenes = world.sample_scenes(n, seed, motion=False, style=BASE_STYLES)
    pixels = torch.from_numpy(np.stack([world.render(s, SIZE) for s in scenes])).permute(0, 3, 1, 2)
    pixels = pixels.float() / 127.5 - 1
    alphas = alphas_cumprod(TrainConfig())
    timesteps = torch.linspace(0, len(alphas) - 1, n).round().long()
    a = alphas[timesteps].view(-1, 1, 1, 1)
    noise = torch.randn(pixels.shape, generator=torch.Generator().manual_seed(seed))
    sample = a.sqrt() * pixels + (1 - a).sqrt() * noise
    text, _ = models["base"].encode_prompt([world.caption(s) for s in scenes])
    return {name: metrics.unet_feature_cka(models["base"].unet, models[name].unet, sample, timesteps, text)
            for name in MODEL_STYLES if name in models}


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


def evaluate(models, motion, case_list=None, *, rows: str | None = None, steps: int = STEPS,
             out: Path | None = None, progress: bool = True, domain: bool = True) -> list[dict]:
    """Generate the rows of every case (`rows`, or each model's MODEL_ROWS); returns one metrics row per animation
    (and writes files when `out`). domain False: no domain score (it samples 16 reference stills per model)."""
    results, clips = _animate_cases(models, motion, cases() if case_list is None else case_list, rows, steps, out,
                                    progress, domain)
    if out is not None:
        _sheets(clips, out)
    return results


def _animate_cases(models, motion, case_list, rows, steps, out, progress, domain):
    """(metrics rows, {(case, row key): frames}) for `case_list`; GIF + MP4 files into `out` when given."""
    if domain:  # the domain score's two reference sets per model: its own stills and the base's (the same for all)
        base = _stills(models["base"], motion["base"], still_prompts("plain"), 7, steps)
        refs = {name: (_stills(models[name], motion["base"], still_prompts(MODEL_STYLES[name]), 7, steps), base)
                for name in dict.fromkeys(c.model for c in case_list)}
    results, clips = [], {}
    for i, case in enumerate(case_list):
        for key in rows or MODEL_ROWS[case.model]:
            module = motion[{"a": "base", "b": "base", "c": case.model, "d": "lora"}[key]]
            started = time.perf_counter()
            animation = animate(models[case.model], module, case, key, steps)
            frames = animation.frames.numpy()
            row = {"model": MODEL_STYLES[case.model], "row": label(case.model, key), "prompt": case.prompt}
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


def _sheets(clips: dict, out: Path) -> None:
    """contact_<style>.png per model (every prompt, every row) and overview.png (the README's picture: the first
    OVERVIEW prompts of each model, its OVERVIEW_ROWS)."""
    case_list = list(dict.fromkeys(case for case, _ in clips))
    for name, style in MODEL_STYLES.items():
        mine = [c for c in case_list if c.model == name]
        keys = [k for k in ROWS if mine and (mine[0], k) in clips]
        sheet = [(f"{c.prompt.replace(' on ', chr(10) + 'on ')}\n" + "  ".join(f"({k})" for k in keys),
                  [clips[c, k] for k in keys]) for c in mine]
        if sheet:
            contact_sheet(sheet, out / f"contact_{style}.png")
    sheet = []
    for name, style in MODEL_STYLES.items():
        for c in [c for c in case_list if c.model == name][:OVERVIEW]:
            keys = [k for k in OVERVIEW_ROWS[name] if (c, k) in clips]
            sheet.append((f"{style}, seed {c.seed}:\n" + "   ".join(label(name, k) for k in keys),
                          [clips[c, k] for k in keys]))
    sheet.sort(key=lambda row: -len(row[1]))  # contact_sheet sizes its columns from the first row
    if sheet:
        contact_sheet(sheet, out / "overview.png", scale=2, label_width=0, labels_above=True, optimize=True)


def _part(weights, case_list: list[Case], steps: int, out: Path, threads: int | None = 1, cka: bool = False):
    """A part of `run`: the cases `case_list` on `threads` (None: torch's default); cka: also `similarity`."""
    if threads is not None:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    models, motion = load_models(weights)
    results, clips = _animate_cases(models, motion, case_list, None, steps, out, True, True)
    return results, clips, similarity(models) if cka else {}


def split(case_list: list[Case], parts: int) -> list[list[Case]]:
    """`case_list` in `parts` consecutive runs of near-equal work (the animations of 16 frames: rows other than (a))
    that keep a model's cases together where they can (each part computes the domain references of its models)."""
    cost = np.cumsum([sum(k != "a" for k in MODEL_ROWS[c.model]) for c in case_list])
    bounds = [0] + [int(np.searchsorted(cost, cost[-1] * i / parts, side="right")) for i in range(1, parts)]
    bounds.append(len(case_list))
    return [case_list[a:b] for a, b in zip(bounds, bounds[1:]) if b > a]


def summary(results: list[dict], cka: dict[str, dict[str, float]] | None = None) -> list[dict]:
    """Per model and row: how many clips move right / up (motion_core.metrics' direction), mean displacement along
    each, mean background flicker, domain score and shape IoU; the model's mean CKA to the base (`similarity`)."""
    out = []
    names = {style: name for name, style in MODEL_STYLES.items()}
    for model in dict.fromkeys(r["model"] for r in results):
        for key in dict.fromkeys(r["row"] for r in results if r["model"] == model):
            group = [r for r in results if r["model"] == model and r["row"] == key]

            def mean(k, group=group):
                return float(np.nanmean([r[k] for r in group]))

            def count(m, group=group):
                return f"{sum(r['direction'] == m for r in group)}/{len(group)}"
            out.append({"model": model, "row": key, f"moves {MOTION}": count(MOTION),
                        f"moves {LORA_MOTION}": count(LORA_MOTION), f"dx ({MOTION})": mean(MOTION),
                        f"-dy ({LORA_MOTION})": mean(LORA_MOTION), "flicker": mean("flicker"),
                        "domain": mean("domain"), "shape IoU": mean("shape_iou"),
                        "CKA to base": (cka or {}).get(names.get(model), {}).get("mean", float("nan"))})
    return out


def run(weights: str | Path = WEIGHTS, out: str | Path = "build/demo", steps: int = STEPS,
        workers: int = 2) -> list[dict]:
    """The demo: every row of every case, files and tables into `out`. workers: 1 runs in this process (torch's
    threads); more split the cases (`split`) over as many processes of one thread each."""
    if steps < 1:
        raise ConfigError(f"steps={steps} must be at least 1")
    if workers < 1:
        raise ConfigError(f"workers={workers} must be at least 1")
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    started = time.perf_counter()
    out = Path(out)
    rows = ", ".join(f"{MODEL_STYLES[m]} {' / '.join(label(m, k) for k in keys)}" for m, keys in MODEL_ROWS.items())
    print(f"demo: {PROMPTS_PER_MODEL} prompts per model; rows: {rows}; {FRAMES} frames, {steps} DDIM steps, "
          f"constant starting noise, {workers} worker process(es), into {out}", flush=True)
    if workers == 1:
        parts = [_part(weights, cases(), steps, out, threads=None, cka=True)]
    else:
        chunks = split(cases(), workers)
        with ProcessPoolExecutor(len(chunks), mp_context=multiprocessing.get_context("spawn")) as pool:
            parts = list(pool.map(_part, *zip(*[(weights, chunk, steps, out, 1, i == 0)
                                                for i, chunk in enumerate(chunks)])))
    results = [r for part, _, _ in parts for r in part]
    cka = parts[0][2]
    _sheets({k: v for _, clips, _ in parts for k, v in clips.items()}, out)
    atomic_write(out / "metrics.json", lambda tmp: Path(tmp).write_text(json.dumps(results, indent=2) + "\n"))
    atomic_write(out / "similarity.json", lambda tmp: Path(tmp).write_text(json.dumps(cka, indent=2) + "\n"))
    print(metrics.table([{k: r[k] for k in ("model", "row", "prompt", "direction", MOTION, LORA_MOTION, "flicker",
                                             "domain", "shape_iou")} for r in results]))
    print()
    print(metrics.table([{"model": MODEL_STYLES[m], **levels} for m, levels in cka.items()]))
    print()
    print(metrics.table(summary(results, cka)))
    print(f"\nwrote {out}/<model>/<row>/*.gif|mp4, contact sheets, metrics.json and similarity.json "
          f"in {time.perf_counter() - started:.0f} s")
    return results
