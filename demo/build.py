"""`python -m demo train` (`make demo-train`): every demo model, from nothing, on this machine's CPU (or --device).

Stages, each a pure function of the seed (fixed threads, seeded generators), each writing into `--work`:
  1. base     the text-to-image model on still images of the world (plain, striped and dotted backgrounds,
              BASE_STYLES): stills of still scenes, and the first frame
              of moving scenes captioned with their motion word (as a web photo is captioned "a car driving
              left": a snapshot, with the word tied to where things start); it never sees a clip.
  2. neon     a full fine-tune of the base UNet on neon-style stills ("..., neon style"), no video.
  3. checker  a LoRA on the base UNet's cross-attention on checkerboard-background stills, no video: the far domain.
  3b. patterned  a LoRA on the base UNet's cross-attention on a few hundred stills of the base's scenes with the
              object striped (captions as the base's), no video: the near domain.
  4. motion   a v3 motion module trained on the base's clips (its own styles) of one motion (the object moving
              right; captioned as still scenes) with the BASE model frozen, through `python -m motion_core train`
              (the product's own trainer, in a subprocess).
  5. lora     a MotionLoRA (moving up) on that module, from 200 of the base's clips: `train --lora`.
  6. tuned    the motion module fine-tuned on the checkerboard model with clips in its style: the remedy the paper
              names for a personalised model far from the base's videos (row (c)).
  7. ship     fp16 copies of everything into `--out` with their configs and the model card's numbers.
Resumable: a finished stage is logged in `work/stages.jsonl` and skipped when run again; an interrupted one
continues from its last checkpoint (image stages: `work/<stage>.resume.pt`; motion stages: the trainer's --resume).
Everything except `ship` only writes into `--work`; `ship` replaces `--out` atomically. `adopt` (`--adopt WEIGHTS`)
takes a shipped folder's models as finished stages (in fp32, their log rows from its demo.json), so a change to the
later stages retrains only those.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from motion_core.errors import ConfigError
from motion_core.formats.files import atomic_folder

from . import world
from .models import FRAMES, SIZE, new_base, save_folder, train_images
from .ship import ship

SEED = 0
# the base model's world: half plain backgrounds, a quarter each striped and dotted (textures of its own, so that
# its motion module learns to leave a texture still while the object moves); neon and checkerboard stay unseen
BASE_STYLES = ("plain", "plain", "striped", "dotted")
# (steps, batch, learning rate) per image stage; the times are in demo/weights/MODEL_CARD.md
BASE = dict(steps=2500, batch=32, lr=1e-3, images=12000)
NEON = dict(steps=600, batch=32, lr=2e-4, images=2000)
# the checkerboard LoRA on cross-attention only (attn2: how the text maps to the image): on every attention it
# drew crisp boards too, but the base-trained module then wiped the objects out (demo/NOTES.md, session 12)
CHECKER = dict(steps=600, batch=32, lr=1e-3, images=2000, rank=16, attentions=("attn2",))
# motion stages (demo/NOTES.md has how each setting was found): `python -m motion_core train` flags, plus the clips
# rendered for it (`clips`, of `motion`, in `style`). noise_sharing: the demo samples from one starting noise for all
# frames (run.RECIPE); training on noise that is mostly shared teaches the module to move things from such a start.
# the near-domain model: a LoRA from a few hundred stills, on cross-attention as the checkerboard one (on every
# attention the base-trained module wiped its objects out: demo/NOTES.md, sessions 12 and 16)
PATTERNED = dict(steps=600, batch=32, lr=1e-3, images=400, rank=16, attentions=("attn2",))
MOTION = dict(motion="right", clips=300, seed=0, steps=900, batch=4, lr=1e-3, timestep_bias=3.0, loss_weighting="v",
              noise_sharing=0.9, warmup=50)
# the MotionLoRA: 17 minutes of this CPU (400 / 600 / 800 / 1150 steps moved 1 / 3 / 7 / 9 of 12 up; 1850 steps, its
# 30-minute budget, constant or cosine, moved 5 and 7: demo/NOTES.md, sessions 12, 16 and 18)
LORA = dict(motion="up", clips=200, steps=1150, batch=4, lr=1e-3, timestep_bias=3.0, loss_weighting="v",
            noise_sharing=0.9, warmup=20, rank=8)
# row (c): the module tuned on the checkerboard model's own clips, at most 10 minutes of this CPU (4 min: 380 steps
# drifted the style further and moved fewer clips steadily, demo/NOTES.md session 16)
TUNED = dict(motion="right", clips=200, steps=200, batch=4, lr=5e-4, timestep_bias=3.0, loss_weighting="v",
             noise_sharing=0.9, warmup=20)
STYLES = {"checker": "checkerboard"}  # the models tuned for row (c): the far domain's
_TRAIN_FLAGS = ("steps", "batch", "lr", "timestep_bias", "loss_weighting", "noise_sharing", "warmup")


def still_images(n: int, seed: int, style: str | tuple[str, ...] = "plain", with_motion: bool = False):
    """(n, SIZE, SIZE, 3) uint8 stills and their captions. with_motion: half of them are the first frames of moving
    scenes, captioned with the motion word. (Frames at random times were tried first: the model then learned to
    ignore motion words, its output moved by 5e-4 between "moving left" and "moving right", and a motion module
    had nothing to tell the directions apart by.)"""
    rng = np.random.default_rng(seed)
    moving = n // 2 if with_motion else 0
    scenes = world.sample_scenes(n - moving, seed, motion=False, style=style) + \
        world.sample_scenes(moving, seed + 1, motion=True, style=style)
    order = rng.permutation(n)
    images = np.stack([world.render(scenes[i], SIZE, 0.0) for i in order])
    return images, [world.caption(scenes[i]) for i in order]


def _text_parts(folder: Path):
    import diffusers
    import transformers
    unet = diffusers.UNet2DConditionModel.from_pretrained(folder / "unet")
    text = transformers.CLIPTextModel.from_pretrained(folder / "text_encoder")
    tokenizer = transformers.CLIPTokenizer.from_pretrained(folder / "tokenizer")
    return unet, text, tokenizer


def finished_rows(work: Path) -> list[dict]:
    """The log rows of the finished stages in build order (also a stage rerun in a later sitting)."""
    rows = logged(work)
    return [rows[row] for stage_rows in STAGE_ROWS.values() for row in stage_rows if row in rows]


def logged(work: Path) -> dict[str, dict]:
    """{stage: its row} of the finished stages in work/stages.jsonl (a stage run twice: its last row)."""
    log = work / "stages.jsonl"
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()] if log.is_file() else []
    return {row["stage"]: row for row in rows}


def _log(work: Path, stage: str, **values) -> None:
    with open(work / "stages.jsonl", "a") as f:
        f.write(json.dumps({"stage": stage, **values}) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _image_stage(work: Path, name: str, settings: dict, seed: int, parts, *, mode: str, device: str,
                 style: str | tuple[str, ...] = "plain", with_motion: bool = False, desc: str):
    """Train (unet, text encoder, tokenizer) `parts` on stills of `style`, log the stage as `name`; returns what
    `train_images` returns for `mode` (the trained models, or a LoRA state dict)."""
    started = time.perf_counter()
    images, captions = still_images(settings["images"], seed, style=style, with_motion=with_motion)
    unet, text, tokenizer = parts
    resume = work / f"{name}.resume.pt"
    lora = {f"lora_{key}": settings[key] for key in ("rank", "attentions") if key in settings}  # else its defaults
    result, losses, seconds = train_images(unet, text, tokenizer, images, captions, steps=settings["steps"],
                                           batch=settings["batch"], lr=settings["lr"], seed=seed, mode=mode,
                                           desc=desc, device=device, resume=resume, **lora)
    return result, dict(seconds=round(seconds, 1), wall_seconds_this_run=round(time.perf_counter() - started, 1),
                        device=device, loss_first=float(np.mean(losses[:100])),
                        loss_last=float(np.mean(losses[-100:])), **settings)


def stage_base(work: Path, device: str) -> None:
    (unet, text), row = _image_stage(work, "base", BASE, SEED, new_base(work / "init", SEED), mode="base",
                                     style=BASE_STYLES, with_motion=True, desc="base", device=device)
    atomic_folder(work / "base", lambda tmp: save_folder(tmp, unet, text, tokenizer_from=work / "init" / "tokenizer"))
    _log(work, "base", **row)


def stage_neon(work: Path, device: str) -> None:
    (unet, text), row = _image_stage(work, "neon", NEON, SEED + 10, _text_parts(work / "base"), mode="finetune",
                                     style="neon", desc="neon (full fine-tune)", device=device)
    atomic_folder(work / "neon", lambda tmp: save_folder(tmp, unet, text, tokenizer_from=work / "base" / "tokenizer"))
    _log(work, "neon", **row)


def stage_checker(work: Path, device: str) -> None:
    from safetensors.torch import save_file

    from motion_core.formats.files import atomic_write
    from motion_core.formats.lora import load_image_lora, merge_image_lora
    unet, text, tokenizer = _text_parts(work / "base")
    state, row = _image_stage(work, "checker", CHECKER, SEED + 20, (unet, text, tokenizer), mode="lora",
                              style="checkerboard", desc="checkerboard (LoRA)", device=device)
    atomic_write(work / "checker_lora.safetensors", lambda tmp: save_file(state, tmp))
    merge_image_lora(unet, load_image_lora(work / "checker_lora.safetensors"), 1.0)  # a folder to train (c) on
    atomic_folder(work / "checker", lambda tmp: save_folder(tmp, unet, text,
                                                            tokenizer_from=work / "base" / "tokenizer"))
    _log(work, "checker", **row)


def stage_patterned(work: Path, device: str) -> None:
    from safetensors.torch import save_file

    from motion_core.formats.files import atomic_write
    state, row = _image_stage(work, "patterned", PATTERNED, SEED + 60, _text_parts(work / "base"), mode="lora",
                              style="patterned", desc="patterned (LoRA)", device=device)
    atomic_write(work / "patterned_lora.safetensors", lambda tmp: save_file(state, tmp))
    _log(work, "patterned", **row)


# the stages each log row's stage builds on: a shipped stage is adopted only on adopted ones
DEPENDS = {"neon": ("base",), "checker": ("base",), "patterned": ("base",), "motion_base": ("base",),
           "motion_lora": ("motion_base",), "motion_checker": ("motion_base", "checker")}


def adopt(work: Path, weights: Path) -> None:
    """A shipped folder's models as finished stages of `work`: those whose settings are today's and whose upstream
    stages were adopted too (fp32 copies, each stage's row from its demo.json, noted as adopted); a stage `work`
    finished itself is kept, and so is everything after it."""
    from motion_core.formats.files import atomic_write
    from motion_core.formats.lora import load_image_lora, merge_image_lora

    from .ship import LORA_FILE, LORAS, MOTION_FILES, cast_file, cast_folder
    work.mkdir(parents=True, exist_ok=True)
    shipped = {row["stage"]: row for row in json.loads((weights / "demo.json").read_text())["stages"]}

    def folder(src: Path, dst: Path):
        return lambda: atomic_folder(dst, lambda tmp: cast_folder(src, tmp, torch.float32))

    def file(src: Path, dst: Path):
        return lambda: atomic_write(dst, lambda tmp: cast_file(src, Path(tmp), torch.float32))

    def merged_checker():  # the checkerboard model as a folder: what row (c) trains on
        unet, text, _ = _text_parts(work / "base")
        merge_image_lora(unet, load_image_lora(work / "checker_lora.safetensors"), 1.0)
        atomic_folder(work / "checker", lambda tmp: save_folder(tmp, unet, text,
                                                                tokenizer_from=work / "base" / "tokenizer"))

    copies = {"base": [folder(weights / "base", work / "base")],
              "neon": [folder(weights / "neon", work / "neon")],
              "checker": [file(weights / LORAS["checker"], work / "checker_lora.safetensors"), merged_checker],
              "patterned": [file(weights / LORAS["patterned"], work / "patterned_lora.safetensors")],
              "motion_base": [file(weights / MOTION_FILES["base"], work / "motion_base" / "motion_module.safetensors")],
              "motion_lora": [file(weights / LORA_FILE, work / "motion_lora" / "motion_lora.safetensors")],
              "motion_checker": [file(weights / MOTION_FILES["checker"],
                                      work / "motion_checker" / "motion_module.safetensors")]}
    for row, steps in copies.items():
        done = logged(work)
        settings = json.loads(json.dumps(settings_of(row)))  # (tuples as the log holds them: lists)
        same = row in shipped and all(shipped[row].get(k) == v for k, v in settings.items())
        upstream = all("adopted_from" in done.get(dep, {}) for dep in DEPENDS.get(row, ()))
        if row in done or not same or not upstream:
            continue
        for step in steps:
            step()
        values = {k: v for k, v in shipped[row].items() if k not in ("stage", "adopted_from")}
        _log(work, row, **values, adopted_from=str(weights))
        print(f"== demo train: adopted {row} from {weights} (same settings)", flush=True)


def _train_motion(work: Path, name: str, base: Path, style: str | tuple[str, ...], settings: dict, seed: int,
                  device: str, *, start_from: Path | None = None) -> None:
    """Clips of `settings["motion"]` in `style` into work/data_<name> (drawn with `seed`), then the product's
    trainer in a subprocess, seeded by settings["seed"] or `seed` (a MotionLoRA when settings has a rank;
    fine-tuning `start_from` when given)."""
    started = time.perf_counter()
    data = work / f"data_{name}"
    if not (data / "captions.csv").is_file():
        atomic_folder(data, lambda tmp: world.write_dataset(tmp, settings["clips"], seed, motion=True, frames=FRAMES,
                                                            size=SIZE, style=style, motions=(settings["motion"],),
                                                            motion_words=False))
    out = work / f"motion_{name}"
    command = [sys.executable, "-m", "motion_core", "train", "--data", str(data), "--base", str(base),
               "--out", str(out), "--frames", str(FRAMES), "--stride", "1", "--size", str(SIZE), "--no-flip",
               "--save-every", "50", "--seed", str(settings.get("seed", seed)), "--mixed-precision", "no",
               "--resume"]
    for key in _TRAIN_FLAGS:
        command += [f"--{key.replace('_', '-')}", str(settings[key])]
    if "rank" in settings:
        command += ["--lora", str(settings["rank"])]
    if start_from is not None:
        command += ["--motion-module", str(start_from)]
    env = dict(os.environ, **({"CUDA_VISIBLE_DEVICES": ""} if device == "cpu" else {}))
    print("$", " ".join(command), flush=True)
    subprocess.run(command, check=True, env=env)
    rows = [json.loads(line) for line in (out / "loss.jsonl").read_text().splitlines() if line.strip()]
    losses = [row["loss"] for row in rows]
    _log(work, f"motion_{name}", seconds=round(sum(row["seconds"] for row in rows), 1),
         wall_seconds_this_run=round(time.perf_counter() - started, 1), device=device,
         loss_first=float(np.mean(losses[:100])), loss_last=float(np.mean(losses[-100:])), **settings)


def stage_motion(work: Path, device: str) -> None:
    _train_motion(work, "base", work / "base", BASE_STYLES, MOTION, SEED + 30, device)


def stage_lora(work: Path, device: str) -> None:
    _train_motion(work, "lora", work / "base", BASE_STYLES, LORA, SEED + 50, device,
                  start_from=work / "motion_base" / "motion_module.safetensors")


def stage_tuned(work: Path, device: str) -> None:
    for name, style in STYLES.items():
        if f"motion_{name}" not in logged(work):
            _train_motion(work, name, work / name, style, TUNED, SEED + 40, device,
                          start_from=work / "motion_base" / "motion_module.safetensors")


def settings_of(row: str) -> dict:
    """The settings a log row's stage trains with today: a shipped stage whose row has them is adopted as it is."""
    return {"base": BASE, "neon": NEON, "checker": CHECKER, "patterned": PATTERNED, "motion_base": MOTION,
            "motion_lora": LORA, **{f"motion_{name}": TUNED for name in STYLES}}[row]


STAGES = {"base": stage_base, "neon": stage_neon, "checker": stage_checker, "patterned": stage_patterned,
          "motion": stage_motion, "lora": stage_lora, "tuned": stage_tuned}
# the rows in stages.jsonl each stage leaves when it is finished
STAGE_ROWS = {"base": ["base"], "neon": ["neon"], "checker": ["checker"], "patterned": ["patterned"],
              "motion": ["motion_base"], "lora": ["motion_lora"], "tuned": [f"motion_{name}" for name in STYLES]}


def run(work: str | Path, out: str | Path, stages: list[str] | None = None, *, device: str = "cpu",
        adopt_from: str | Path | None = None) -> None:
    """Run `stages` (default: all, then ship) in order, skipping those already finished in `work`; adopt_from: a
    shipped weights folder whose stages count as finished (`adopt`)."""
    torch.set_num_threads(2)
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    if adopt_from is not None:
        adopt(work, Path(adopt_from))
    for name in stages or list(STAGES) + ["ship"]:
        if name == "ship":
            ship(work, Path(out), finished_rows(work))
        elif name not in STAGES:
            raise ConfigError(f"stage {name!r} is not one of {', '.join(list(STAGES) + ['ship'])}")
        elif all(row in logged(work) for row in STAGE_ROWS[name]):
            print(f"== demo train: {name}: finished before (in {work / 'stages.jsonl'}), skipped", flush=True)
        else:
            print(f"== demo train: {name}", flush=True)
            STAGES[name](work, device)
