"""`python -m motion_core train`: train a motion module (or a MotionLoRA) on a folder of videos.

Multi-GPU / multi-node: start the same command through `accelerate launch` (or torchrun); nothing else changes.
"""

from __future__ import annotations

import argparse

from ..config import VERSION_DEFAULTS
from ..errors import ConfigError, MissingDependencyError
from .config import LOSS_WEIGHTINGS, LR_SCHEDULES, MIXED_PRECISION


def add_parser(sub) -> None:
    s = sub.add_parser(
        "train", help="train a motion module (or a MotionLoRA) on a folder of videos",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train a motion module on video files (mp4, webm, gif, ...) or folders of frames, with captions "
                    "from captions.csv (file,caption) or a .txt beside each clip. The base model stays frozen; only "
                    "the motion module (or, with --lora, only a MotionLoRA) trains. Writes into --out: "
                    "motion_module.safetensors (or motion_lora.safetensors) in the original AnimateDiff layout, "
                    "resume.pt and loss.jsonl; every write is atomic.",
        epilog="multi-GPU: accelerate launch --multi_gpu --num_processes 8 -m motion_core train ...")
    s.add_argument("--data", required=True, help="folder of video files and/or frame folders")
    s.add_argument("--base", required=True, help="the image model: a diffusers folder or a single-file SD checkpoint")
    s.add_argument("--out", required=True, help="output folder for the checkpoint, resume state and loss log")
    s.add_argument("--motion-module", help="start from this motion module (default: a new zero-initialised one); "
                                           "required with --lora")
    s.add_argument("--version", choices=sorted(VERSION_DEFAULTS),
                   help="layout of a new motion module (default: v3 for SD1.5 bases, sdxl-beta for SDXL; v2 adds the "
                        "mid-block module)")
    s.add_argument("--lora", type=int, metavar="RANK", help="train only a MotionLoRA of this rank on --motion-module")
    s.add_argument("--frames", type=int, default=16, help="frames per training clip (default 16)")
    s.add_argument("--stride", type=int, default=4, help="take every STRIDE-th frame (default 4)")
    s.add_argument("--size", type=int, default=256, help="square training size in pixels, a multiple of 8 (default 256)")
    s.add_argument("--no-flip", dest="flip", action="store_false",
                   help="do not flip clips horizontally at random (keep it off when captions name a direction: a "
                        "flipped 'moving left' clip moves right)")
    s.add_argument("--steps", type=int, default=1000, help="optimizer steps of the whole run (default 1000)")
    s.add_argument("--batch", type=int, default=1, help="clips per process per micro step (default 1)")
    s.add_argument("--grad-accum", type=int, default=1, help="micro steps per optimizer step (default 1)")
    s.add_argument("--lr", type=float, default=1e-4, help="AdamW learning rate (default 1e-4)")
    s.add_argument("--timestep-bias", type=float, default=1.0,
                   help="1: uniform timesteps (AnimateDiff, the default); above 1 draws the noisier timesteps more "
                        "often, where frames must agree on layout and colour (t = T(1 - (1 - u)^BIAS))")
    s.add_argument("--loss-weighting", choices=LOSS_WEIGHTINGS, default="epsilon",
                   help="epsilon: AnimateDiff's noise MSE (the default); v: the same error weighed by 1/alpha_bar, "
                        "the MSE of v, which counts the clip's error at the noisiest steps as much as at the others")
    s.add_argument("--noise-sharing", type=float, default=0.0, metavar="S",
                   help="share of the noise common to a clip's frames, in [0, 1] (default 0: independent per frame, "
                        "as AnimateDiff); train with it when you sample from shared noise (--noise constant)")
    s.add_argument("--warmup", type=int, default=0, help="steps of linear learning-rate warm-up (default 0)")
    s.add_argument("--lr-schedule", choices=LR_SCHEDULES, default="constant",
                   help="after warm-up: constant (the default), or cosine decay from --lr towards 0 at --steps (a "
                        "resumed cosine run keeps its --steps)")
    s.add_argument("--save-every", type=int, default=100, help="steps between checkpoints (default 100)")
    s.add_argument("--seed", type=int, default=0, help="seed of every random draw (default 0)")
    s.add_argument("--mixed-precision", choices=MIXED_PRECISION, default="auto",
                   help="autocast of the frozen model, with loss scaling for fp16 (the trained weights stay fp32); "
                        "auto: bf16 on a GPU that computes it natively (Ampere and newer), else fp16 on a GPU, none "
                        "on a CPU")
    s.add_argument("--gradient-checkpointing", action="store_true",
                   help="recompute activations in backward: less memory, slower (x1.1-1.5 in bench/train.py)")
    s.add_argument("--num-workers", type=int, default=0, help="DataLoader processes decoding video (default 0)")
    s.add_argument("--resume", action="store_true", help="continue from OUT/resume.pt when it exists")
    s.set_defaults(run=run)


def run(args) -> None:
    import torch

    from ..formats import load_motion_module
    from .config import TrainConfig
    from .data import open_dataset
    from .loop import mixed_precision, train
    from .model import new_motion_module, vae_encoder

    if args.lora is not None and not args.motion_module:
        raise ConfigError("--lora trains a MotionLoRA on an existing motion module: add --motion-module FILE")
    config = TrainConfig(frames=args.frames, stride=args.stride, size=args.size, steps=args.steps, batch=args.batch,
                         grad_accum=args.grad_accum, lr=args.lr, warmup=args.warmup,
                         lr_schedule=args.lr_schedule, save_every=args.save_every,
                         seed=args.seed, flip=args.flip, timestep_bias=args.timestep_bias,
                         loss_weighting=args.loss_weighting, noise_sharing=args.noise_sharing,
                         mixed_precision=args.mixed_precision, lora_rank=args.lora,
                         gradient_checkpointing=args.gradient_checkpointing, num_workers=args.num_workers)
    dataset = open_dataset(args.data, config)  # bad data fails here, before a model is loaded
    try:
        from accelerate import Accelerator

        from ..base import load_base
    except ImportError as e:
        raise MissingDependencyError(f"training needs {e.name}: pip install 'motion-core[train]'") from None
    accelerator = Accelerator()
    precision = mixed_precision(config, accelerator.device)
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision, torch.float32)  # frozen parts only
    # every part on the training device: the VAE and the text encoder encode there, beside the UNet
    base = load_base(args.base, dtype=dtype, device=accelerator.device)
    if args.motion_module:
        motion_module = load_motion_module(args.motion_module)
    else:
        version = args.version or {"sd15": "v3", "sdxl": "sdxl-beta"}.get(base.family, "v3")
        pe_length = max(config.frames, VERSION_DEFAULTS[version][1])
        motion_module = new_motion_module(base.unet, version=version, pe_length=pe_length, seed=config.seed)
    encode_video = vae_encoder(base.vae) if base.vae is not None else None
    train(config, base.unet, motion_module, base.encode_prompt, dataset, args.out, encode_video=encode_video,
          resume=args.resume, accelerator=accelerator)
    print(f"wrote {args.out}/{'motion_lora' if args.lora else 'motion_module'}.safetensors "
          f"({config.steps} steps; resume state and loss log beside it)")
