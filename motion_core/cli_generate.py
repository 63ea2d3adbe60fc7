"""`python -m motion_core generate`: text (or video) to animation from the command line."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from .errors import ConfigError

DESCRIPTION = """\
Animate a text prompt with a Stable Diffusion model (SD1.5 or SDXL) and an AnimateDiff motion module, and write
the frames as GIF, WebP, MP4 (H.264) or a folder of PNGs, with every setting embedded in the file (and in a JSON
sidecar beside an MP4) so a result can be reproduced.

The image model is a diffusers folder, or a single-file checkpoint (.safetensors / .ckpt); a single file holds
weights only, so its configs and tokenizer come from --config (a diffusers folder of the same family, weights not
needed) or the Hugging Face cache. Nothing is downloaded. The motion module is any file `inspect` reads.

Sampling follows the original AnimateDiff: its beta schedule (linspace 0.00085..0.012 for SD1.5 modules), DDIM with
steps_offset 1 for SD1.5 and Euler for SDXL by default, classifier-free guidance against --negative-prompt.

CLIPS LONGER THAN THE MODULE
  A motion module sees at most its position encoding's frames (24 for v1, 32 for v2/v3) and was trained on 16.
  Longer clips are denoised in overlapping context windows whose predictions are fused per frame: by default
  windows of 16 frames overlapping by 4 whenever --frames exceeds 16 (--context-length 0 turns them off).
  --context-schedule looped with --closed-loop makes the last frames flow into the first (a seamless loop).

PROMPT TRAVEL
  Give --prompt several times as "FRAME: text"; each frame's text embedding is interpolated linearly between the
  keyframes around it (frames before the first keyframe hold it).

VIDEO TO VIDEO
  --init-video FILE (GIF, WebP, MP4 or a folder of images) starts from its first --frames frames, resized and
  centre-cropped to --size; --strength is the fraction of the schedule run on them (low keeps the video).
"""

EPILOG = """\
examples:
  python -m motion_core generate --model models/sd15 --motion-module mm_sd_v15_v2.ckpt \\
      --prompt "a cat walking in the snow" --frames 16 --steps 25 --size 512x512 --seed 42 --out cat.gif
  python -m motion_core generate --model v1-5-pruned-emaonly.safetensors --config sd15-configs \\
      --motion-module v3_sd15_mm.ckpt --domain-adapter v3_sd15_adapter.ckpt:0.8 \\
      --prompt "0: a cat sitting" --prompt "32: a cat running" --frames 64 --out long.mp4 --out long.gif
  python -m motion_core generate ... --motion-module v3_sd15_mm.ckpt --sparse-ctrl v3_sd15_sparsectrl_rgb.ckpt \
      --keyframe 0:first.png --keyframe -1:last.png --prompt "a sailboat on the ocean" --out between.mp4

exit codes: 0 ok, 2 bad input (the message says the fix), 1 a bug (please report it)
"""


def _size(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*[xX*]\s*(\d+)\s*", text)
    if m is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not WIDTHxHEIGHT, e.g. 512x512")
    return int(m[1]), int(m[2])


def _weighted(text: str) -> tuple[str, float]:
    """PATH or PATH:STRENGTH (a Windows drive letter is not a strength)."""
    path, sep, value = text.rpartition(":")
    if sep and path and re.fullmatch(r"-?\d+(\.\d*)?|-?\.\d+", value):
        return path, float(value)
    return text, 1.0


def _keyframe(text: str) -> tuple[list[int], str]:
    """FRAMES:FILE with FRAMES one index or several, comma-separated (split at the first colon: paths may hold more)."""
    indices, sep, path = text.partition(":")
    try:
        frames = [int(i) for i in indices.split(",")]
    except ValueError:
        frames = None
    if not sep or not path or frames is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not FRAMES:FILE, e.g. 0:first.png or 0,15:keyframes.gif")
    return frames, path


def keyframes_from(specs) -> dict:
    """{frame: image} from --keyframe values; a file must hold one image per index given with it."""
    from .media import read_frames
    keyframes = {}
    for frames, path in specs:
        if not Path(path).exists():
            raise ConfigError(f"--keyframe {','.join(map(str, frames))}:{path}: no such file")
        images = read_frames(path)
        if len(images) != len(frames):
            raise ConfigError(f"--keyframe {','.join(map(str, frames))}:{path}: the file holds {len(images)} images "
                              f"but {len(frames)} frame indices were given: give one index per image")
        for frame, image in zip(frames, images):
            if frame in keyframes:
                raise ConfigError(f"keyframe {frame} is given twice")
            keyframes[frame] = image
    return keyframes


def _number_or_curve(text: str):
    """A number, or a curve "frame:value, ..." (checked now: a typo fails before any model loads)."""
    try:
        return float(text)
    except ValueError:
        from .control import Curve
        try:
            Curve.parse(text, "curve")
        except ConfigError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
        return text


def add_parser(sub) -> None:
    from .pipeline import NOISE_TYPES
    s = sub.add_parser("generate", help="animate a prompt: text (or video) to GIF / WebP / MP4 / PNG frames",
                       description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = s.add_argument_group("models")
    g.add_argument("--model", required=True, metavar="PATH",
                   help="image model: a diffusers folder or a single-file SD1.5 / SDXL checkpoint")
    g.add_argument("--config", metavar="DIR", help="for a single-file --model: a diffusers folder of the same family "
                                                   "holding the components' configs and tokenizer")
    g.add_argument("--motion-module", required=True, metavar="PATH", help="motion module file or MotionAdapter folder")
    g.add_argument("--motion-lora", action="append", default=[], metavar="PATH[:STRENGTH]", type=_weighted,
                   help="MotionLoRA merged into the module (repeatable; strength default 1)")
    g.add_argument("--domain-adapter", metavar="PATH[:SCALE]", type=_weighted,
                   help="AnimateDiff v3 domain-adapter LoRA on the image layers (v3_sd15_adapter.ckpt), for sampling")
    g.add_argument("--dtype", choices=("fp32", "fp16", "bf16"), default=None,
                   help="compute precision (default fp32 on CPU, fp16 on CUDA)")
    g.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: cuda when available)")

    g = s.add_argument_group("what to draw")
    g.add_argument("--prompt", action="append", required=True, metavar="TEXT",
                   help='the prompt; repeat as "FRAME: text" for prompt travel')
    g.add_argument("--negative-prompt", default="", metavar="TEXT", help="what to steer away from (default empty)")
    g.add_argument("--frames", type=int, default=16, help="clip length in frames (default 16)")
    g.add_argument("--size", type=_size, default=(512, 512), metavar="WxH", help="width x height in pixels, "
                                                                                 "multiples of 8 (default 512x512)")
    g.add_argument("--init-video", metavar="FILE", help="video-to-video: start from this video's frames")
    g.add_argument("--strength", type=float, default=0.6,
                   help="with --init-video: fraction of the schedule run (0..1, default 0.6)")

    g = s.add_argument_group("sampling")
    g.add_argument("--steps", type=int, default=25, help="sampling steps (default 25)")
    g.add_argument("--guidance", type=float, default=7.5, help="classifier-free guidance scale (default 7.5; "
                                                              "1 turns it off)")
    g.add_argument("--seed", type=int, default=42, help="random seed (default 42): same seed, same animation")
    from .schedule import SCHEDULERS
    g.add_argument("--scheduler", choices=sorted(SCHEDULERS), default=None,
                   help="sampler on AnimateDiff's betas (default: ddim for SD1.5, euler for SDXL)")
    g.add_argument("--noise", choices=NOISE_TYPES, default="default",
                   help="initial noise: independent per frame (default), FreeNoise (windows share shuffled noise), "
                        "repeated_context (the first window's noise repeated), constant (one noise for every frame)")
    g.add_argument("--motion-scale", type=_number_or_curve, default=1.0, metavar="X|CURVE",
                   help='amount of motion (attention key scale, default 1); per frame: a curve "0:1.0, 15:1.3"')
    g.add_argument("--motion-strength", type=_number_or_curve, default=1.0, metavar="X|CURVE",
                   help='0 = the plain image model, 1 = the full motion module (default 1); per frame: a curve '
                        '"0:1.0, 15:0.2" (frame:value, interpolated)')
    g.add_argument("--motion-mask", metavar="FILE", help="where the motion acts: an image (white = full motion, black "
                   "= the plain image model), or a video / folder of frames with one mask per frame")
    g.add_argument("--motion-start", type=float, default=0.0, metavar="P",
                   help="fraction of the sampling at which the motion starts acting (default 0)")
    g.add_argument("--motion-end", type=float, default=1.0, metavar="P",
                   help="fraction of the sampling at which it stops (default 1)")

    g = s.add_argument_group("SparseCtrl (keyframes steer the clip; AnimateDiff v3)")
    g.add_argument("--sparse-ctrl", metavar="FILE", help="a SparseCtrl file: v3_sd15_sparsectrl_rgb.ckpt (keyframe "
                   "images) or v3_sd15_sparsectrl_scribble.ckpt (scribbles)")
    g.add_argument("--keyframe", action="append", default=[], metavar="FRAMES:FILE", type=_keyframe,
                   help="a keyframe: 0:first.png (frame 0), -1:last.png (the last frame), or 0,8,15:frames.gif (one "
                        "index per image of a GIF / WebP / video / folder); repeatable")
    g.add_argument("--sparse-strength", type=float, default=1.0, help="scale of SparseCtrl's residuals (default 1)")

    g = s.add_argument_group("FreeInit (steadier clips, N samplings' time)")
    g.add_argument("--free-init", type=int, default=1, metavar="N",
                   help="FreeInit iterations: sample, re-noise, keep the low spatio-temporal frequencies, sample "
                        "again (default 1 = off; 2-3 typical)")
    g.add_argument("--free-init-filter", choices=("gaussian", "butterworth", "ideal", "box"), default="butterworth",
                   help="low-pass filter of the kept frequencies (default butterworth, order 4)")
    g.add_argument("--free-init-spatial", type=float, default=0.25, help="spatial stop frequency in (0, 1] (0.25)")
    g.add_argument("--free-init-temporal", type=float, default=0.25, help="temporal stop frequency in (0, 1] (0.25)")
    g.add_argument("--free-init-fast", action="store_true",
                   help="coarse to fine: early iterations take fewer steps (diffusers' use_fast_sampling)")

    g = s.add_argument_group("context windows (clips longer than the module)")
    g.add_argument("--context-length", type=int, default=None,
                   help="frames per window (default: 16 when --frames exceeds 16; 0 = no windows)")
    g.add_argument("--context-overlap", type=int, default=4, help="frames neighbouring windows share (default 4)")
    g.add_argument("--context-schedule", choices=("static", "uniform", "looped"), default="static",
                   help="window placement (default static)")
    g.add_argument("--context-stride", type=int, default=1, help="uniform / looped: strided windows up to 2^(n-1)")
    g.add_argument("--closed-loop", action="store_true", help="looped: the last window wraps onto the first frames")
    g.add_argument("--fuse", choices=("pyramid", "flat"), default="pyramid",
                   help="how overlapping windows are averaged (default pyramid: seams fade)")

    g = s.add_argument_group("output")
    g.add_argument("--out", action="append", required=True, metavar="PATH",
                   help="output file, format by suffix: .gif .webp .mp4, or a folder / .png for PNG frames "
                        "(repeatable: one sampling, several files)")
    g.add_argument("--fps", type=float, default=8.0, help="frames per second (default 8, as AnimateDiff)")
    g.add_argument("--decode-chunk", type=int, default=8, help="frames the VAE decodes at once (default 8)")
    g.add_argument("--quiet", action="store_true", help="no progress bars")
    s.set_defaults(run=run)


def _context(args, frames: int, motion_module):
    from .context import ContextOptions
    from .pipeline import auto_context
    if args.context_length == 0:
        return None
    if args.context_length is None and args.context_schedule == "static" and not args.closed_loop:
        return auto_context(frames, motion_module)
    length = args.context_length or min(16, motion_module.config.pe_length)
    return ContextOptions(length=length, overlap=args.context_overlap, schedule=args.context_schedule,
                          stride=args.context_stride, closed_loop=args.closed_loop, fuse=args.fuse)


def run(args) -> None:
    import torch

    from .base import load_base
    from .formats import load_motion_module
    from .media import format_of
    from .pipeline import generate
    from .freeinit import check
    for out in args.out:
        format_of(out)  # a bad suffix fails before minutes of sampling
    check(args.free_init, args.free_init_filter, 4, args.free_init_spatial, args.free_init_temporal)
    from .control import MotionControl
    mask = None
    if args.motion_mask:
        from .media import read_mask
        mask = read_mask(args.motion_mask)
    MotionControl(args.motion_strength, args.motion_scale, mask=mask, start=args.motion_start,
                  end=args.motion_end).check_length(args.frames)  # refused before the models load
    keyframes = keyframes_from(args.keyframe)
    if bool(args.sparse_ctrl) != bool(keyframes):
        raise ConfigError("--sparse-ctrl and --keyframe go together: give the SparseCtrl file and at least one keyframe")
    if keyframes:
        from .sparsectrl import keyframe_indices
        keyframe_indices(list(keyframes), args.frames)  # refused before the models load
        if not Path(args.sparse_ctrl).exists():
            raise ConfigError(f"--sparse-ctrl {args.sparse_ctrl} does not exist")
    if args.init_video and not Path(args.init_video).exists():
        raise ConfigError(f"--init-video {args.init_video} does not exist: pass a GIF, WebP, MP4 or a folder of frames")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[
        args.dtype or ("fp16" if str(device).startswith("cuda") else "fp32")]
    motion_module = load_motion_module(args.motion_module, loras=args.motion_lora, dtype=dtype)
    for note in motion_module.info.notes:
        print(f"note: {note}", file=sys.stderr)
    base = load_base(args.model, dtype=dtype, config=args.config, device=device)
    motion_module.to(device)
    width, height = args.size
    animation = generate(
        base, motion_module, args.prompt, negative_prompt=args.negative_prompt, frames=args.frames, steps=args.steps,
        guidance=args.guidance, width=width, height=height, seed=args.seed, scheduler=args.scheduler,
        context=_context(args, args.frames, motion_module), noise=args.noise, init_video=args.init_video,
        strength=args.strength, motion_scale=args.motion_scale, motion_strength=args.motion_strength,
        motion_mask=mask, motion_start=args.motion_start, motion_end=args.motion_end,
        domain_adapter=args.domain_adapter[0] if args.domain_adapter else None,
        domain_adapter_scale=args.domain_adapter[1] if args.domain_adapter else 1.0,
        decode_chunk=args.decode_chunk, progress=not args.quiet, free_init=args.free_init,
        free_init_filter=args.free_init_filter, free_init_spatial=args.free_init_spatial,
        free_init_temporal=args.free_init_temporal, free_init_fast=args.free_init_fast,
        sparse_ctrl=args.sparse_ctrl, keyframes=keyframes or None, sparse_strength=args.sparse_strength)
    for out in args.out:
        written = animation.save(Path(out), fps=args.fps)
        print(f"wrote {written} ({args.frames} frames, {width}x{height}, {args.fps:g} fps)")


def add_create_base_parser(sub) -> None:
    s = sub.add_parser("create-base", help="write a tiny random image model (diffusers folder) for demos and tests",
                       description="Write a tiny SD1.5- or SDXL-shaped diffusers model folder with seeded random "
                                   "weights (UNet channels 32/64/64/64, a small VAE and CLIP text encoder, a "
                                   "character-level tokenizer). It draws noise, not pictures: it proves the whole "
                                   "path end to end in seconds. Tiny motion modules fit it: "
                                   "`create OUT --channels 32,64,64,64 --heads 2`.")
    s.add_argument("out", help="destination folder")
    s.add_argument("--family", choices=("sd15", "sdxl"), default="sd15", help="model family (default sd15)")
    s.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    s.set_defaults(run=run_create_base)


def run_create_base(args) -> None:
    from .tiny import build_tiny_base
    print(f"wrote {build_tiny_base(args.out, args.family, seed=args.seed)} (tiny random {args.family} model)")
