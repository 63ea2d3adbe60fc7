"""`python -m motion_core demo-train` (`make demo-train`): every demo model, from nothing, on this machine's CPU.

Stages, each a pure function of the seed (fixed threads, CPU, seeded generators), each writing into `--work`:
  1. base       the text-to-image model on still images of the world: stills of still scenes, and the first frame
                of moving scenes captioned with their motion word (as a web photo is captioned "a car driving
                left": a snapshot, with the word tied to where things start); it never sees a clip.
  2. neon       a full fine-tune of the base UNet on neon-style stills ("..., neon style"), no video.
  3. checker    a LoRA on the base UNet's attention on checkerboard-background stills, no video.
  4. motion     a v3 motion module trained on plain-style clips with the BASE model frozen, through
                `python -m motion_core train` (the product's own trainer, in a subprocess).
  5. specific   for comparison only: a motion module trained on each personalised model with clips in its own
                style, the per-model tuning the paper avoids.
  6. ship       fp16 copies of everything into `--out` with their configs and the model card's numbers.
Everything except `ship` only writes into `--work`; `ship` replaces `--out` atomically (a temporary folder renamed).
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

from ..errors import ConfigError
from . import world
from .models import FRAMES, SIZE, new_base, save_folder, train_images

SEED = 0
# (steps, batch, learning rate) per stage: `make demo-train` took 70.8 min on 2 CPU cores (about 61 alone)
BASE = dict(steps=2500, batch=32, lr=1e-3, images=12000)
NEON = dict(steps=600, batch=32, lr=2e-4, images=2000)
CHECKER = dict(steps=600, batch=32, lr=1e-3, images=2000, rank=16)
# motion: noisier timesteps drawn more often (--timestep-bias 3): with uniform draws (AnimateDiff's) 1200 steps left
# the frames of a clip disagreeing on background and position; the layout is decided at the noisiest steps
MOTION = dict(steps=1500, batch=2, lr=5e-4, clips=1200, timestep_bias=3.0)
SPECIFIC = dict(steps=400, batch=2, lr=5e-4, clips=600, timestep_bias=3.0)
STYLES = {"neon": "neon", "checker": "checkerboard"}


def still_images(n: int, seed: int, style: str = "plain", with_motion: bool = False):
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


def _log(work: Path, stage: str, **values) -> None:
    with open(work / "stages.jsonl", "a") as f:
        f.write(json.dumps({"stage": stage, **values}) + "\n")


def _image_stage(work: Path, name: str, settings: dict, seed: int, parts, *, mode: str, style: str = "plain",
                 with_motion: bool = False, desc: str):
    """Train (unet, text encoder, tokenizer) `parts` on stills of `style`, log the stage as `name`; returns what
    `train_images` returns for `mode` (the trained models, or a LoRA state dict)."""
    started = time.perf_counter()
    images, captions = still_images(settings["images"], seed, style=style, with_motion=with_motion)
    unet, text, tokenizer = parts
    result, losses = train_images(unet, text, tokenizer, images, captions, steps=settings["steps"],
                                  batch=settings["batch"], lr=settings["lr"], seed=seed, mode=mode,
                                  lora_rank=settings.get("rank", 16), desc=desc)
    _log(work, name, seconds=round(time.perf_counter() - started, 1), loss_first=float(np.mean(losses[:100])),
         loss_last=float(np.mean(losses[-100:])), **settings)
    return result


def stage_base(work: Path) -> None:
    unet, text = _image_stage(work, "base", BASE, SEED, new_base(work / "init", SEED), mode="base",
                              with_motion=True, desc="base")
    save_folder(work / "base", unet, text, tokenizer_from=work / "init" / "tokenizer")


def stage_neon(work: Path) -> None:
    unet, text = _image_stage(work, "neon", NEON, SEED + 10, _text_parts(work / "base"), mode="finetune",
                              style="neon", desc="neon (full fine-tune)")
    save_folder(work / "neon", unet, text, tokenizer_from=work / "base" / "tokenizer")


def stage_checker(work: Path) -> None:
    from safetensors.torch import save_file

    from ..formats.lora import load_image_lora, merge_image_lora
    unet, text, tokenizer = _text_parts(work / "base")
    state = _image_stage(work, "checker", CHECKER, SEED + 20, (unet, text, tokenizer), mode="lora",
                         style="checkerboard", desc="checkerboard (LoRA)")
    save_file(state, str(work / "checker_lora.safetensors"))
    merge_image_lora(unet, load_image_lora(work / "checker_lora.safetensors"), 1.0)  # a folder to train (c) on
    save_folder(work / "checker", unet, text, tokenizer_from=work / "base" / "tokenizer")


def _train_motion(work: Path, name: str, base: Path, style: str, settings: dict, seed: int) -> None:
    """Clips of `style` into work/data_<name>, then the product's trainer in a subprocess."""
    started = time.perf_counter()
    data = work / f"data_{name}"
    if not (data / "captions.csv").is_file():
        world.write_dataset(data.with_suffix(".tmp"), settings["clips"], seed, motion=True, frames=FRAMES, size=SIZE,
                            style=style)
        os.replace(data.with_suffix(".tmp"), data)
    command = [sys.executable, "-m", "motion_core", "train", "--data", str(data), "--base", str(base),
               "--out", str(work / f"motion_{name}"), "--frames", str(FRAMES), "--stride", "1", "--size", str(SIZE),
               "--no-flip", "--steps", str(settings["steps"]), "--batch", str(settings["batch"]),
               "--lr", str(settings["lr"]), "--timestep-bias", str(settings["timestep_bias"]), "--warmup", "50", "--save-every", "200", "--seed", str(seed),
               "--mixed-precision", "no", "--resume"]
    print("$", " ".join(command), flush=True)
    subprocess.run(command, check=True)
    log = work / f"motion_{name}" / "loss.jsonl"
    losses = [json.loads(line)["loss"] for line in log.read_text().splitlines() if line.strip()]
    _log(work, f"motion_{name}", seconds=round(time.perf_counter() - started, 1),
         loss_first=float(np.mean(losses[:100])), loss_last=float(np.mean(losses[-100:])), **settings)


def stage_motion(work: Path) -> None:
    _train_motion(work, "base", work / "base", "plain", MOTION, SEED + 30)


def stage_specific(work: Path) -> None:
    for name, style in STYLES.items():
        _train_motion(work, name, work / name, style, SPECIFIC, SEED + 40)


STAGES = {"base": stage_base, "neon": stage_neon, "checker": stage_checker, "motion": stage_motion,
          "specific": stage_specific}


def run(work: str | Path, out: str | Path, stages: list[str] | None = None) -> None:
    torch.set_num_threads(2)
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    for name in stages or list(STAGES) + ["ship"]:
        if name == "ship":
            from .ship import ship
            ship(work, Path(out))
        elif name in STAGES:
            print(f"== demo-train: {name}", flush=True)
            STAGES[name](work)
        else:
            raise ConfigError(f"stage {name!r} is not one of {', '.join(list(STAGES) + ['ship'])}")
