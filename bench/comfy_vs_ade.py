"""motion_core vs ComfyUI-AnimateDiff-Evolved (the baseline) in the same ComfyUI: same checkpoint, same motion
module (mm_sd_v15_v2.ckpt), 16 frames at 64x64 px, stock KSampler, same seed. Each pack runs in its own fresh server
(so each peak RSS is its own), in ABBA order over --rounds servers per pack. Prints seconds per sampling step, peak
server RSS, ratios ours / theirs, and the max difference between the two packs' output latents.

    COMFYUI_PATH=... ADE_PATH=/path/to/ComfyUI-AnimateDiff-Evolved python bench/comfy_vs_ade.py [--steps 4]
    COMFYUI_PATH=... python bench/comfy_vs_ade.py --before ../an-earlier-checkout   # this pack before / after a change

With --before, an earlier checkout of this repository runs as one more pack in the same rotation (ratio after /
before); without ADE_PATH, ADE is left out.

Models come from tests/comfy_workspace.py (random-weight, full-size; built on first use). Seconds per step are
measured as the difference between a run with 2 + steps and one with 2 steps, divided by steps, so model loading and
decoding drop out; every run has its own seed (an identical prompt would be answered from ComfyUI's cache), and the
latents compared come from one more run with the same seed in both packs. Neither ComfyUI nor the baseline is
committed or installed by this script.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from comfy_server import ComfyServer  # noqa: E402


def workflow(pack: str, steps: int, seed: int = 42) -> dict:
    wf = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "v1-5-pruned-emaonly.safetensors"}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red fox running in snow", "clip": ["1", 1]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["1", 1]}},
        "6": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 16}},
        "7": {"class_type": "KSampler", "inputs": {"model": ["5", 0], "positive": ["2", 0], "negative": ["3", 0],
                                                   "latent_image": ["6", 0], "seed": seed, "steps": steps, "cfg": 7.5,
                                                   "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0}},
        "8": {"class_type": "SaveLatent", "inputs": {"samples": ["7", 0],
                                                     "filename_prefix": f"bench/{pack}_{steps}_{seed}"}},
    }
    if pack in ("ours", "before"):
        wf["4"] = {"class_type": "MC_LoadMotionModule", "inputs": {"model_name": "mm_sd_v15_v2.ckpt"}}
        wf["5"] = {"class_type": "MC_InjectMotionModule", "inputs": {"model": ["1", 0], "motion_module": ["4", 0],
                                                                    "scale": 1.0, "strength": 1.0,
                                                                    "beta_schedule": "auto"}}
    else:
        wf["5"] = {"class_type": "ADE_AnimateDiffLoaderGen1", "inputs": {
            "model": ["1", 0], "model_name": "mm_sd_v15_v2.ckpt", "beta_schedule": "autoselect"}}
    return wf


def seconds(entry: dict) -> float:
    stamps = {m[0]: m[1]["timestamp"] for m in entry["status"]["messages"]}
    return (stamps["execution_success"] - stamps["execution_start"]) / 1000


def comfy_workspace() -> tuple[Path, str, Path]:
    """(COMFYUI_PATH, ComfyUI's interpreter, the test workspace with its random full-size models, built if missing)."""
    comfy = Path(os.environ["COMFYUI_PATH"])
    python = os.environ.get("COMFYUI_PYTHON") or str(comfy / ".venv" / "bin" / "python")
    base = Path(os.environ.get("MOTION_CORE_COMFY_BASE", ROOT / "build" / "comfy_base"))
    subprocess.run([python, str(ROOT / "tests" / "comfy_workspace.py"), str(comfy), str(base)], check=True)
    return comfy, python, base


def peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def base_for(pack: str, shared: Path, node_path: Path) -> Path:
    """A base directory per pack: the shared models, its own custom_nodes / output."""
    base = shared.parent / f"bench_{pack}"
    shutil.rmtree(base, ignore_errors=True)
    (base / "custom_nodes").mkdir(parents=True)
    os.symlink(shared / "models", base / "models")
    os.symlink(node_path, base / "custom_nodes" / node_path.name)
    return base


def run_pack(pack: str, base: Path, comfy: Path, python: str, steps: int, repeats: int = 3):
    server = ComfyServer(comfy, base, python).start()
    try:
        results = {}
        plan = [2] + [2, 2 + steps] * repeats  # the first run loads the models; then alternate
        for seed, n in enumerate(plan, start=100):
            entry = server.run(workflow(pack, n, seed))
            if entry["status"]["status_str"] != "success":
                raise RuntimeError(f"{pack} failed: {entry['status']}\n{server.log()[-3000:]}")
            results.setdefault(n, []).append(seconds(entry))
        server.run(workflow(pack, 2 + steps, seed=42))  # the latents to compare between packs
        rss = peak_rss(server.proc.pid)
    finally:
        server.stop()
    per_step = (statistics.median(results[2 + steps]) - statistics.median(results[2][1:])) / steps
    from safetensors.torch import load_file
    latent = load_file(str(next((base / "output" / "bench").glob(f"{pack}_{2 + steps}_42_*.latent"))))["latent_tensor"]
    return per_step, rss, latent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--rounds", type=int, default=2, help="servers per pack, in ABBA order (ours, theirs, theirs, "
                                                         "ours, ...) so a drift of the machine cancels out")
    p.add_argument("--before", type=Path, help="an earlier checkout of this repository, run as a pack of its own")
    args = p.parse_args()
    packs = [("ours", ROOT)]
    if args.before:
        packs.append(("before", args.before.resolve()))
    if os.environ.get("ADE_PATH"):
        packs.append(("ade", Path(os.environ["ADE_PATH"])))
    if len(packs) == 1:
        raise SystemExit("nothing to compare with: set ADE_PATH and / or pass --before")
    comfy, python, shared = comfy_workspace()
    runs: dict[str, list] = {pack: [] for pack, _ in packs}
    order = []
    for r in range(args.rounds):
        order += packs if r % 2 == 0 else packs[::-1]
    for pack, node_path in order:
        runs[pack].append(run_pack(pack, base_for(pack, shared, node_path.resolve()), comfy, python, args.steps))
        print(f"  {pack}: {runs[pack][-1][0]:.3f} s/step", flush=True)
    rows = {pack: (statistics.median(r[0] for r in rs), max(r[1] for r in rs), rs[-1][2]) for pack, rs in runs.items()}
    gb = 1024 ** 3
    print(f"16 frames at 64x64 px, SD1.5 + mm_sd_v15_v2 (random full-size weights), euler, CPU fp32, fresh server "
          f"per pack, {args.rounds} servers per pack in ABBA order; seconds per step from the medians of 3 runs of 2 "
          f"and of {2 + args.steps} steps per server, median over servers; peak RSS the highest")
    print(f"{'':34}{'s / step':>10}{'peak RSS GiB':>14}")
    names = {"ours": "motion_core", "before": f"motion_core before ({args.before})",
             "ade": "AnimateDiff-Evolved (baseline)"}
    for pack in rows:
        print(f"{names[pack]:34}{rows[pack][0]:10.3f}{rows[pack][1] / gb:14.2f}")
    ours_s, ours_rss, ours_latent = rows["ours"]
    if "before" in rows:
        before_s, before_rss, before_latent = rows["before"]
        print(f"after / before: time {ours_s / before_s:.3f}x, peak RSS {ours_rss / before_rss:.3f}x; output latents "
              f"max |after - before| = {(ours_latent - before_latent).abs().max().item():.3e}")
    if "ade" in rows:
        ade_s, ade_rss, ade_latent = rows["ade"]
        print(f"ours / theirs: time {ours_s / ade_s:.2f}x, peak RSS {ours_rss / ade_rss:.2f}x (target <= 1.0 for both)")
        diff = (ours_latent - ade_latent).abs()
        print(f"output latents ({2 + args.steps} steps, same seed): max |ours - theirs| = {diff.max().item():.3e}, "
              f"mean {diff.mean().item():.3e}, latent max |x| = {ours_latent.abs().max().item():.3f}")


if __name__ == "__main__":
    main()
