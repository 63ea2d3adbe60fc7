"""The shipped demo weights: what `python -m demo train` leaves in `demo/weights/` and how `python -m demo` loads it.

Layout (fp16 safetensors; the models compute in fp32 after loading):
  base/                          the text-to-image model: diffusers folder without vae/ (pixel space)
  neon/                          the neon personalised model: a full fine-tune of base's UNet (same text encoder)
  patterned_lora.safetensors     the patterned personalised model: a LoRA on base's cross-attention: near domain
  checkerboard_lora.safetensors  the checkerboard personalised model: a LoRA on base's cross-attention: far domain
  motion_module.safetensors      v3 motion module trained on the base's clips moving right, base frozen
  motion_lora_up.safetensors     a MotionLoRA (moving up) on it (original MotionLoRA layout)
  motion_module_checkerboard.safetensors
                                 the module fine-tuned on the checkerboard model with clips in its style: row (c)
  demo.json                      stage settings, seeds, times, devices, losses; MODEL_CARD.md says it in words"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from motion_core.errors import CheckpointNotFoundError
from motion_core.formats.files import atomic_folder

WEIGHTS = Path(__file__).parent / "weights"
MOTION_FILES = {"base": "motion_module.safetensors", "checker": "motion_module_checkerboard.safetensors"}
LORAS = {"checker": "checkerboard_lora.safetensors", "patterned": "patterned_lora.safetensors"}  # on base's UNet
LORA_FILE = "motion_lora_up.safetensors"  # the MotionLoRA (moving up) on motion_module.safetensors


def cast_file(src: Path, dst: Path, dtype: torch.dtype) -> None:
    """`src` with its floating tensors in `dtype`, its metadata kept (a MotionLoRA's says what it is)."""
    from safetensors import safe_open
    from safetensors.torch import save_file
    with safe_open(str(src), "pt") as f:
        metadata = f.metadata() or {"format": "pt"}
        state = {k: f.get_tensor(k) for k in f.keys()}
    state = {k: v.to(dtype).contiguous() if v.is_floating_point() else v for k, v in state.items()}
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(dst), metadata=metadata)


def cast_folder(src: Path, dst: Path, dtype: torch.dtype) -> None:
    """A copy of folder `src` in `dst` (which may exist, empty) with every safetensors file's tensors in `dtype`."""
    shutil.copytree(src, dst, dirs_exist_ok=True)
    for f in dst.rglob("*.safetensors"):
        cast_file(f, f, dtype)


def ship(work: Path, out: Path, stages: list[dict], dtype: torch.dtype = torch.float16) -> Path:
    """Copy the trained models from `work` into `out` (replaced atomically), in `dtype`, with demo.json and the card;
    `stages`: the finished stages' log rows, in build order (build.finished_rows)."""
    latest = {row["stage"]: row for row in stages}

    def write(tmp: Path) -> None:
        for name in ("base", "neon"):
            cast_folder(work / name, tmp / name, dtype)
        for name, file in LORAS.items():
            cast_file(work / f"{name}_lora.safetensors", tmp / file, dtype)
        for name, file in MOTION_FILES.items():
            cast_file(work / f"motion_{name}" / "motion_module.safetensors", tmp / file, dtype)
        cast_file(work / "motion_lora" / "motion_lora.safetensors", tmp / LORA_FILE, dtype)
        info = {"dtype": str(dtype).removeprefix("torch."), "stages": list(latest.values()),
                "train_seconds": round(sum(row["seconds"] for row in latest.values()), 1)}
        (tmp / "demo.json").write_text(json.dumps(info, indent=2) + "\n")
        (tmp / "MODEL_CARD.md").write_text(model_card(info))
    atomic_folder(out, write)
    print(f"wrote {out} ({sum(f.stat().st_size for f in out.rglob('*') if f.is_file()) / 2**20:.1f} MiB)")
    return out


def load_models(weights: str | Path = WEIGHTS):
    """{"base", "neon", "patterned", "checker"} -> BaseModel (fp32; each LoRA merged into a copy of base's UNet) and
    {"base", "checker", "lora"} -> MotionModule, from a `ship` folder."""
    import copy

    from motion_core.base import load_base
    from motion_core.formats import load_motion_module
    from motion_core.formats.lora import load_image_lora, merge_image_lora
    weights = Path(weights)
    if not (weights / "base" / "model_index.json").is_file():
        raise CheckpointNotFoundError(f"{weights} holds no demo weights (no base/model_index.json): run "
                                      "`make demo-train` to train them, or check out the repository's shipped ones")
    base = load_base(weights / "base")
    models = {"base": base, "neon": load_base(weights / "neon")}
    for name, file in LORAS.items():
        model = models[name] = copy.copy(base)
        model.unet = copy.deepcopy(base.unet)
        merge_image_lora(model.unet, load_image_lora(weights / file), 1.0)
        model.source = str(weights / file)
    motion = {name: load_motion_module(weights / file, dtype=torch.float32) for name, file in MOTION_FILES.items()
              if (weights / file).is_file()}
    if (weights / LORA_FILE).is_file():
        motion["lora"] = load_motion_module(weights / MOTION_FILES["base"], dtype=torch.float32,
                                            loras=[(weights / LORA_FILE, 1.0)])
    return models, motion


def model_card(info: dict) -> str:
    """MODEL_CARD.md from demo.json: what each file is, how it was trained, seeds, where and how long."""
    rows = "\n".join(f"| {r['stage']} | {r.get('steps', '-')} | {r.get('batch', '-')} | {r.get('lr', '-')} | "
                     f"{r.get('images', r.get('clips', '-'))} | {r.get('loss_first', float('nan')):.4f} -> "
                     f"{r.get('loss_last', float('nan')):.4f} | {r.get('device', 'cpu')} | {r['seconds'] / 60:.1f} |"
                     for r in info["stages"])
    notes = "".join(f"\n- {r['stage']}: {r['note']}" for r in info["stages"] if r.get("note"))
    return f"""# motion_core demo models

Tiny models of a procedural world of coloured shapes (`demo/world.py`), trained from nothing by `make demo-train`
(`python -m demo train`), to show AnimateDiff's claim at a small scale: a motion module trained once on video with the
base image model frozen animates personalised variants of that model that never saw a video, and a MotionLoRA on it
changes the motion; and the method's stated limitation, a personalised model far from the base's domain, with its
remedy. They draw 32x32 px shapes and nothing else; they are good for the demo, the tests and learning
how the method works, not for anything else.

## Files ({info["dtype"]} safetensors; computed in float32)
- `base/`: the text-to-image model, a diffusers folder without `vae/`: it denoises RGB pixels directly (pixel
  space; at 32x32 a VAE would only add a model to train). UNet2DConditionModel in SD1.5's 4-level layout
  (channels 32/32/64/64, cross-attention on levels 2-3), a 2-layer CLIP text encoder (width 64)
  over a word-level tokenizer of the world's 27 words. Trained on stills only (plain, striped and dotted
  backgrounds; never neon, patterned or checkerboard); it never saw a clip.
- `neon/`: "DreamBooth-style" full fine-tune of base's UNet on neon stills (trigger: ", neon style"); no video.
- `patterned_lora.safetensors`: a rank-16 LoRA on base's cross-attention projections, trained on 400 stills of the
  base's scenes with the object striped (the base's own stripe texture moved into the object), captioned as the
  base's (no trigger word: it draws every prompt's object striped); no video. The near-domain model.
- `checkerboard_lora.safetensors`: a rank-16 LoRA on base's cross-attention projections (attn2's to_q / to_k /
  to_v / to_out, diffusers' peft key layout) trained on stills with checkerboard backgrounds (trigger:
  "checkerboard background"); no video. The far-domain model (a content the base never drew).
- `motion_module.safetensors`: an AnimateDiff v3 motion module (original key layout) trained by
  `python -m motion_core train` on 8-frame clips in the base's styles (half plain, a quarter each striped and
  dotted) in which the object moves right, captioned as still scenes, base frozen (`--loss-weighting v
  --timestep-bias 3 --noise-sharing 0.9`: see `demo/NOTES.md`).
- `motion_lora_up.safetensors`: a MotionLoRA on that module (`train --lora`), from clips moving up in the base's styles.
- `motion_module_checkerboard.safetensors`: the module fine-tuned on the checkerboard model with clips in its
  style: the remedy the paper names for a personalised model far from the base's videos.

## Training (seeded; epsilon prediction on linspace(0.00085, 0.012, 1000) betas)

| stage | steps | batch | lr | images / clips | loss (first 100 -> last 100 steps) | device | minutes |
|---|---|---|---|---|---|---|---|
{rows}
{notes}

Total training time {info["train_seconds"] / 60:.1f} min (a stage resumed over several sittings counts each); the
CPU is this project's 2-core machine (fp32). Image stages keep an exponential moving average (0.999) of the weights
and ship it; motion stages ship the last weights. Rebuild: `make demo-train`. Evaluate: `make demo`.
"""
