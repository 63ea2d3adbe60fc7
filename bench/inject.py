"""Full-size SD1.5 UNet (860M params, context 768) with a full-size v2 motion module (453M), random weights, CPU fp32.

One run prints, each configuration measured in its own fresh process (so its peak RSS is its own):
  - seconds per UNet call and peak RSS: the bare host (images only) vs host + our motion module (overhead ratio);
  - diffusers' UNetMotionModel with the same weights (ratio ours / diffusers; target <= 1.0 for time and memory);
  - our chunked temporal attention's memory at 64x64 px vs 128x128 px.
    python bench/inject.py [--frames 16] [--repeats 3]
    python bench/inject.py --before ../an-earlier-checkout [--rounds 3]   # the module's cost before / after a change
Needs diffusers (the test extra). Weights are built once under build/bench/ and memory-mapped by every worker.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

BUILD = Path(__file__).resolve().parents[1] / "build" / "bench"
UNET_FILE = BUILD / "unet_sd15_fp32.safetensors"
MM_FILE = BUILD / "mm_v2_random_fp32.safetensors"
SD15 = dict(sample_size=64, cross_attention_dim=768)  # diffusers defaults are SD1.5's: 320/640/1280/1280


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def build() -> None:
    import torch
    from diffusers import UNet2DConditionModel
    from safetensors.torch import save_file

    from motion_core import MotionModule, MotionModuleConfig, save_motion_module
    BUILD.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    if not UNET_FILE.exists():
        print("building a random SD1.5 UNet ...", flush=True)
        save_file({k: v.contiguous() for k, v in UNet2DConditionModel(**SD15).state_dict().items()}, UNET_FILE)
    if not MM_FILE.exists():
        print("building a random full-size v2 motion module ...", flush=True)
        mm = MotionModule(MotionModuleConfig(family="sd15", version="v2", channels=(320, 640, 1280, 1280),
                                             mid_block=True))
        with torch.no_grad():
            for name, p in mm.named_parameters():
                if ".proj_out." in name:
                    p.normal_(std=0.02)
        save_motion_module(mm, MM_FILE)


def worker(kind: str, frames: int, px: int, repeats: int) -> None:
    import torch
    from diffusers import UNet2DConditionModel, UNetMotionModel
    from safetensors.torch import load_file

    from motion_core import inject, load_motion_module
    from motion_core.formats import from_original
    torch.manual_seed(0)
    torch.set_grad_enabled(False)
    with torch.device("meta"):
        unet = UNet2DConditionModel(**SD15)
    unet_sd = load_file(str(UNET_FILE))
    if kind == "diffusers":
        from diffusers import MotionAdapter
        with torch.device("meta"):
            model = UNetMotionModel.from_unet2d(unet, MotionAdapter(), load_weights=False)
        mm = load_motion_module(MM_FILE)
        model.load_state_dict({**unet_sd, **from_original(mm.state_dict(), "diffusers")}, strict=True, assign=True)
    else:
        unet.load_state_dict(unet_sd, strict=True, assign=True)
        model = inject(unet, load_motion_module(MM_FILE)) if kind == "ours" else unet
    model.eval()
    latent = px // 8
    sample = torch.randn(1, 4, frames, latent, latent)
    context = torch.randn(1, 77, 768)
    t = torch.tensor([500])
    if kind == "host":  # the image model on every frame: ((b f), c, h, w)
        args = (sample.transpose(1, 2).reshape(frames, 4, latent, latent), t.repeat(frames), context.repeat(frames, 1, 1))
    elif kind == "diffusers":  # UNetMotionModel takes the text embeddings already repeated per frame
        args = (sample, t, context.repeat_interleave(frames, 0))
    else:
        args = (sample, t, context)

    def call():
        out = model(*args)
        return out.sample if hasattr(out, "sample") else out

    for param in model.parameters():  # page every weight in, so what follows measures activations
        param.sum()
    base = _rss()
    call()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = call()
        times.append(time.perf_counter() - start)
    assert torch.isfinite(out).all()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"seconds": statistics.median(times), "peak": peak, "weights_rss": base,
                      "shape": list(out.shape)}))


def measure(kind: str, frames: int, px: int, repeats: int, checkout: Path | None = None) -> dict:
    """One configuration in a fresh process; `checkout`: another checkout of this repository (its own bench/inject.py
    and motion_core, on the weights built here)."""
    script = (checkout / "bench" / "inject.py") if checkout else Path(__file__)
    cmd = [sys.executable, str(script), "--worker", kind, "--frames", str(frames), "--px", str(px),
           "--repeats", str(repeats)]
    env = {**os.environ, "PYTHONPATH": str(checkout)} if checkout else None
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env,
                         cwd=checkout or Path(__file__).resolve().parents[1]).stdout
    return json.loads(out.strip().splitlines()[-1])


def before_and_after(before: Path, frames: int, px: int, repeats: int, rounds: int) -> None:
    """This checkout's injected UNet against an earlier checkout's, interleaved ABAB over `rounds` processes each (a
    drift of the machine hits both alike); medians over processes."""
    (before / "build").mkdir(exist_ok=True)
    link = before / "build" / "bench"
    if not link.exists():
        link.symlink_to(BUILD)  # the same weight files for both
    runs = {"after": [], "before": []}
    for _ in range(rounds):
        runs["after"].append(measure("ours", frames, px, repeats))
        runs["before"].append(measure("ours", frames, px, repeats, before))
    med = {k: statistics.median(r["seconds"] for r in v) for k, v in runs.items()}
    peak = {k: max(r["peak"] for r in v) for k, v in runs.items()}
    print(f"before ({before}) / after (this checkout), host + module, {rounds} processes each, ABAB: "
          f"{med['before']:.3f} / {med['after']:.3f} s per call")
    print(f"after / before: time {med['after'] / med['before']:.3f}x, peak RSS {peak['after'] / peak['before']:.3f}x")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--px", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3, help="timed calls per configuration (median)")
    p.add_argument("--before", type=Path, help="an earlier checkout of this repository (git worktree add ...): "
                                                "measure its injected UNet against this one's, interleaved, and stop")
    p.add_argument("--rounds", type=int, default=3, help="with --before: processes per checkout")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args.worker, args.frames, args.px, args.repeats)
    build()
    if args.before:
        return before_and_after(args.before.resolve(), args.frames, args.px, args.repeats, args.rounds)
    gb = 1024 ** 3
    rows = {kind: measure(kind, args.frames, args.px, args.repeats) for kind in ("host", "ours", "diffusers")}
    print(f"SD1.5 UNet + v2 motion module, random weights, fp32 CPU, 1 clip x {args.frames} frames at "
          f"{args.px}x{args.px} px; median of {args.repeats} calls, each configuration in a fresh process")
    print(f"{'':34}{'s / call':>10}{'peak RSS GiB':>14}")
    names = {"host": "bare host (image model)", "ours": "host + motion_core module",
             "diffusers": "diffusers UNetMotionModel"}
    for kind, r in rows.items():
        print(f"{names[kind]:34}{r['seconds']:10.3f}{r['peak'] / gb:14.2f}")
    ours, host, dif = rows["ours"], rows["host"], rows["diffusers"]
    print(f"overhead of the module: time {ours['seconds'] / host['seconds']:.2f}x, peak RSS "
          f"{ours['peak'] / host['peak']:.2f}x the bare host")
    print(f"ours / diffusers: time {ours['seconds'] / dif['seconds']:.2f}x, peak RSS {ours['peak'] / dif['peak']:.2f}x "
          "(target <= 1.0 for both)")
    big = measure("ours", args.frames, 2 * args.px, 1)
    print(f"chunked temporal attention: peak RSS above the loaded weights {(ours['peak'] - ours['weights_rss']) / gb:.2f} "
          f"GiB at {args.px}x{args.px} px, {(big['peak'] - big['weights_rss']) / gb:.2f} GiB at "
          f"{2 * args.px}x{2 * args.px} px (4x the tokens); {big['seconds']:.3f} s / call there")


if __name__ == "__main__":
    main()
