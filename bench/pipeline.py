"""Standalone generation: ours (`motion_core.pipeline.generate`) vs diffusers' `AnimateDiffPipeline`, same components.

One run prints, each configuration measured in its own fresh process (so its peak RSS is its own), medians of
--repeats runs:
  - seconds per sampling step and peak RSS, ours / diffusers, on the tiny config and on full-size SD1.5 shapes
    (random weights: UNet 860M, v2 motion module 453M, VAE, CLIP-L; 64x64 px, 16 frames, 2 steps, CFG on), each
    after a 1-step warm-up run (ours maps the weights and pages them in on first use; diffusers' from_unet2d copies
    them before sampling: without the warm-up the first step would carry ours' loading);
  - ours at 64 frames through 16-frame context windows: peak RSS against our 16-frame run (target <= 1.3);
  - the loop seam: mean |frame 63 - frame 0| against the mean neighbouring-frame difference, static vs looped.
    python bench/pipeline.py [--repeats 3] [--skip-full]
Needs the test extra (diffusers, transformers). Models are built once under build/bench/ (a few GB, fp32).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build" / "bench"
PROMPT, NEGATIVE = "a cat running", "sitting"


def build(size: str) -> tuple[Path, Path]:
    import torch

    from motion_core import MotionModule, MotionModuleConfig, save_motion_module
    from motion_core.tiny import build_tiny_base
    folder, mm_file = BUILD / f"base_{size}", BUILD / f"mm_{size}.safetensors"
    if not (folder / "model_index.json").exists():
        print(f"building the {size} base model under {folder} ...", flush=True)
        if size == "tiny":
            build_tiny_base(folder, seed=0)
        else:
            _build_full_base(folder)
    if not mm_file.exists():
        channels = (32, 64, 64, 64) if size == "tiny" else (320, 640, 1280, 1280)
        torch.manual_seed(0)
        mm = MotionModule(MotionModuleConfig(family="sd15", version="v2", channels=channels, mid_block=True,
                                             heads=2 if size == "tiny" else 8))
        with torch.no_grad():
            for name, p in mm.named_parameters():
                if ".proj_out." in name:
                    p.normal_(std=0.02)
        save_motion_module(mm, mm_file)
    return folder, mm_file


def _build_full_base(folder: Path) -> None:
    """A full-size SD1.5-shaped diffusers folder with random weights (the tiny tokenizer: ids fit CLIP-L's 49408)."""
    import json as js

    import diffusers
    import torch
    import transformers

    from motion_core.tiny import build_tiny_base
    build_tiny_base(folder, seed=0)  # tokenizer, scheduler, model_index; the components are replaced below
    torch.manual_seed(0)
    diffusers.UNet2DConditionModel(sample_size=64, cross_attention_dim=768).save_pretrained(folder / "unet")
    diffusers.AutoencoderKL(block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
                            up_block_types=("UpDecoderBlock2D",) * 4, layers_per_block=2,
                            sample_size=512).save_pretrained(folder / "vae")
    config = transformers.CLIPTextConfig(vocab_size=49408, hidden_size=768, intermediate_size=3072,
                                         num_hidden_layers=12, num_attention_heads=12, max_position_embeddings=77,
                                         hidden_act="quick_gelu", projection_dim=768)
    transformers.CLIPTextModel(config).save_pretrained(folder / "text_encoder")
    (folder / "built.json").write_text(js.dumps({"random": True, "shapes": "SD1.5"}))


def worker(kind: str, size: str, frames: int, steps: int, schedule: str) -> dict:
    import torch
    torch.manual_seed(0)
    folder, mm_file = build(size)
    stamps: list[float] = []
    if kind == "ours":
        from motion_core import load_motion_module
        from motion_core.base import load_base
        from motion_core.context import ContextOptions
        from motion_core.pipeline import generate
        base, mm = load_base(folder), load_motion_module(mm_file)
        context = None if frames <= 16 else ContextOptions(length=16, overlap=4, schedule=schedule,
                                                           closed_loop=schedule == "looped")
        run = dict(negative_prompt=NEGATIVE, frames=frames, guidance=7.5, width=64, height=64, seed=0,
                   context=context, progress=False)
        generate(base, mm, PROMPT, steps=1, **run)  # warm-up: pages the weights in, as diffusers' copy already did
        stamps.append(time.perf_counter())
        out = generate(base, mm, PROMPT, steps=steps, callback=lambda d: stamps.append(time.perf_counter()),
                       **run).frames  # (f, h, w, 3)
    else:
        import diffusers

        from motion_core import save_motion_module
        from motion_core.base import load_base
        base = load_base(folder)
        adapter_dir = BUILD / f"adapter_{size}"
        if not (adapter_dir / "config.json").exists():
            from motion_core import load_motion_module
            save_motion_module(load_motion_module(mm_file), adapter_dir, layout="diffusers")
        adapter = diffusers.MotionAdapter.from_pretrained(adapter_dir)
        unet = diffusers.UNetMotionModel.from_unet2d(base.unet, adapter)
        base.unet = None  # the pipeline holds the motion UNet only, as from_pretrained leaves it
        from motion_core.schedule import make_scheduler
        pipe = diffusers.AnimateDiffPipeline(vae=base.vae, text_encoder=base.text_encoder, tokenizer=base.tokenizer,
                                             unet=unet, motion_adapter=adapter, scheduler=make_scheduler("sd15"))
        pipe.set_progress_bar_config(disable=True)

        def on_step(pipe, i, t, kwargs):
            stamps.append(time.perf_counter())
            return kwargs
        run = dict(negative_prompt=NEGATIVE, num_frames=frames, guidance_scale=7.5, height=64, width=64,
                   output_type="pt")
        pipe(PROMPT, num_inference_steps=1, generator=torch.Generator().manual_seed(0), **run)  # the same warm-up
        stamps.append(time.perf_counter())
        out = pipe(PROMPT, num_inference_steps=steps, generator=torch.Generator().manual_seed(0),
                   callback_on_step_end=on_step, **run).frames[0].permute(0, 2, 3, 1)
    per_step = [b - a for a, b in zip(stamps, stamps[1:])]
    neighbours = (out[1:] - out[:-1]).abs().mean().item()
    return {"s_per_step": statistics.median(per_step), "rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            / 2**20, "seam": (out[-1] - out[0]).abs().mean().item(), "neighbours": neighbours}


def measure(kind, size, frames, steps, repeats, schedule="static") -> dict:
    runs = []
    for _ in range(repeats):
        cmd = [sys.executable, __file__, "--worker", kind, "--size", size, "--frames", str(frames),
               "--steps", str(steps), "--schedule", schedule]
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            sys.exit(f"worker {kind} {size} {frames} failed:\n{p.stderr[-3000:]}")
        runs.append(json.loads(p.stdout.strip().splitlines()[-1]))
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--skip-full", action="store_true", help="tiny config only (seconds instead of minutes)")
    ap.add_argument("--worker", choices=("ours", "diffusers"))
    ap.add_argument("--size", choices=("tiny", "full"), default="tiny")
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--schedule", default="static")
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.size, args.frames, args.steps, args.schedule)))
        return
    sizes = ["tiny"] + ([] if args.skip_full else ["full"])
    for size in sizes:
        build(size)
        ours = measure("ours", size, 16, args.steps, args.repeats)
        theirs = measure("diffusers", size, 16, args.steps, args.repeats)
        print(f"{size:>4} 16 frames 64x64, {args.steps} steps, CFG, medians of {args.repeats} fresh processes:")
        print(f"     s/step  ours {ours['s_per_step']:.3f}  diffusers {theirs['s_per_step']:.3f}  "
              f"ratio {ours['s_per_step'] / theirs['s_per_step']:.2f}")
        print(f"     peak RSS ours {ours['rss_gib']:.2f} GiB  diffusers {theirs['rss_gib']:.2f} GiB  "
              f"ratio {ours['rss_gib'] / theirs['rss_gib']:.2f}")
        long = measure("ours", size, 64, args.steps, max(1, args.repeats // 2))
        print(f"     64 frames (16-frame windows): s/step {long['s_per_step']:.3f}, peak RSS {long['rss_gib']:.2f} GiB "
              f"= {long['rss_gib'] / ours['rss_gib']:.2f}x the 16-frame run (target <= 1.3)")
        looped = measure("ours", size, 64, args.steps, 1, schedule="looped")
        print(f"     seam |f63 - f0| / mean |f(i+1) - f(i)|: static {long['seam']:.4f} / {long['neighbours']:.4f} "
              f"= {long['seam'] / long['neighbours']:.2f}; looped+closed {looped['seam']:.4f} / "
              f"{looped['neighbours']:.4f} = {looped['seam'] / looped['neighbours']:.2f}")


if __name__ == "__main__":
    main()
