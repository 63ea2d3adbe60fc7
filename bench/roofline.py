"""How close the motion module runs to this machine's own fp32 GEMM rate (the roofline for a module that is almost all
matrix products). One run prints:
  - the GEMM rate: torch.mm at the module's own shapes (tokens x C by C x C, C x 8C and 4C x C, per level), its best
    taken as the machine's peak;
  - the achieved rate of a full-size SD1.5 motion module (v2: channels 320 / 640 / 1280 / 1280, 8 heads, 16 frames)
    at 64x64 and 32x32 latents: one module per level timed through `residual` (the host's path), weighted by the
    modules per level (5 per level, plus v2's mid module), FLOPs counted from the shapes (below);
  - the ratio achieved / peak, and with --profile, where a level-0 module's time goes (by operator).

FLOPs of one module, C channels, T = b * f * h * w tokens, f frames (multiply-adds count 2):
  proj_in 2TC^2; per attention block (2 of them): q, k, v, out 8TC^2, scores and weighted sum 4TfC;
  feed-forward (GEGLU to 8C, then 4C -> C) 24TC^2; proj_out 2TC^2. Total 44TC^2 + 8TfC. Norms, softmax, GELU and
  the layout changes are left out (a few operations per element: they cost time, not FLOPs).

    python bench/roofline.py [--frames 16] [--batch 1] [--repeats 3] [--profile]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

CHANNELS = (320, 640, 1280, 1280)  # SD1.5 levels
MODULES_PER_LEVEL = (5, 5, 5, 5)  # 2 down + 3 up per level; v2's mid module is counted at the deepest level
MID = 1


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up: allocator, kernels
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def module_flops(channels: int, tokens: int, frames: int) -> float:
    return 44 * tokens * channels ** 2 + 8 * tokens * frames * channels


def gemm_rates(tokens_by_level: list[int], repeats: int) -> list[tuple[str, float]]:
    rows = []
    for c, tokens in zip(CHANNELS[:3], tokens_by_level[:3]):
        for k, n in ((c, c), (c, 8 * c), (4 * c, c)):
            a, b = torch.randn(tokens, k), torch.randn(k, n)
            seconds = median_seconds(lambda: torch.mm(a, b), repeats)
            rows.append((f"mm ({tokens} x {k}) @ ({k} x {n})", 2 * tokens * k * n / seconds / 1e9))
    return rows


def module_rate(latent: int, frames: int, batch: int, repeats: int) -> tuple[float, float, list[str]]:
    """(GFLOP/s of the whole v2 module set, seconds per UNet call spent in it, per-level lines)."""
    from motion_core import MotionModuleConfig
    from motion_core.module import VanillaTemporalModule
    total_flops = total_seconds = 0.0
    lines = []
    for level, (c, count) in enumerate(zip(CHANNELS, MODULES_PER_LEVEL)):
        side = latent >> level
        config = MotionModuleConfig(family="sd15", version="v2", channels=CHANNELS, mid_block=True)
        torch.manual_seed(level)
        module = VanillaTemporalModule(c, config).eval()
        with torch.no_grad():
            module.temporal_transformer.proj_out.weight.normal_(std=0.02)
        x = torch.randn(batch * frames, c, side, side)
        with torch.no_grad():
            seconds = median_seconds(lambda: module.residual(x, frames), repeats)
        tokens = batch * frames * side * side
        flops = module_flops(c, tokens, frames)
        modules = count + (MID if level == len(CHANNELS) - 1 else 0)
        total_flops += modules * flops
        total_seconds += modules * seconds
        lines.append(f"  level {level}: C {c:4}, {side:2}x{side:<2} x {frames} frames: {seconds * 1000:8.1f} ms per "
                     f"module, {flops / seconds / 1e9:6.1f} GFLOP/s (x{modules} modules)")
    return total_flops / total_seconds / 1e9, total_seconds, lines


def profile(latent: int, frames: int, batch: int) -> None:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    from motion_core import MotionModuleConfig
    from motion_core.module import VanillaTemporalModule
    config = MotionModuleConfig(family="sd15", version="v2", channels=CHANNELS, mid_block=True)
    module = VanillaTemporalModule(CHANNELS[0], config).eval()
    x = torch.randn(batch * frames, CHANNELS[0], latent, latent)
    with torch.no_grad():
        module.residual(x, frames)
        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            module.residual(x, frames)
    print(f"\nwhere a level-0 module's time goes ({latent}x{latent}, {frames} frames), self CPU time by operator:")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=14, max_name_column_width=40))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--batch", type=int, default=1, help="clips per call (2 for classifier-free guidance)")
    p.add_argument("--latents", type=int, nargs="+", default=[64, 32], help="latent sizes (64 = 512 px)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--profile", action="store_true", help="also break a level-0 module's time down by operator")
    args = p.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, fp32, CPU")
    largest = max(args.latents)
    tokens = [args.batch * args.frames * (largest >> level) ** 2 for level in range(len(CHANNELS))]
    rates = gemm_rates(tokens, args.repeats)
    peak = max(rate for _, rate in rates)
    print("GEMM at the module's shapes (the roofline is the best of them):")
    for name, rate in rates:
        print(f"  {name:36} {rate:7.1f} GFLOP/s")
    print(f"  peak {peak:.1f} GFLOP/s")
    for latent in args.latents:
        rate, seconds, lines = module_rate(latent, args.frames, args.batch, args.repeats)
        print(f"v2 motion module (21 modules), {latent}x{latent} latents x {args.frames} frames, batch {args.batch}: "
              f"{seconds:.2f} s per UNet call, {rate:.1f} GFLOP/s = {rate / peak:.0%} of the GEMM peak")
        print("\n".join(lines))
    if args.profile:
        profile(min(args.latents), args.frames, args.batch)


if __name__ == "__main__":
    main()
