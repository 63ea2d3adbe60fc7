"""Training speed and memory: seconds per optimizer step (median) and peak RSS, each configuration in its own fresh
process (so its peak RSS is its own), through the real loop (`motion_core.train.train`, AdamW, checkpoint at the end):
  - tiny: the test suite's synthetic clips (opencv-decoded mp4 / gif / PNG folders) and tiny pixel-space UNet,
    8 frames at 16 px, batch 2;
  - SD1.5: a full-size SD1.5 UNet (860M parameters, context 768) and a new full-size v3 motion module (417M, all
    trainable), random weights, 8 frames at 64x64 px (latents 8x8), batch 1, without and with gradient
    checkpointing; the baseline is the run without, the ratio is with / without.
    python bench/train.py [--steps 3] [--only tiny|sd15]
Needs the train and test extras (accelerate, opencv, diffusers). CPU fp32.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class LatentClips:
    """`dataset[(index, seed)] -> (latents (4, f, h, w), caption)`: the data set protocol of the loop, no VAE."""

    def __init__(self, latents):
        self.latents = latents

    def __len__(self) -> int:
        return len(self.latents)

    def __getitem__(self, item):
        return self.latents[item[0]], ""


def worker(kind: str, steps: int, checkpointing: bool, threads: int) -> None:
    import torch
    torch.set_num_threads(threads)
    sys.path.insert(0, str(ROOT / "tests"))
    from train_helpers import WordEncoder, tiny_unet, write_clips

    from motion_core.train import TrainConfig, new_motion_module, open_dataset, train
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        if kind == "tiny":
            config = TrainConfig(frames=8, stride=1, size=16, batch=2, steps=steps, save_every=steps, lr=1e-3,
                                 gradient_checkpointing=checkpointing)
            dataset = open_dataset(write_clips(Path(tmp) / "clips", corrupt=False), config)
            unet, encode_text = tiny_unet(), WordEncoder()
            module = new_motion_module(unet, heads=2)
        else:
            from diffusers import UNet2DConditionModel
            config = TrainConfig(frames=8, stride=1, size=64, batch=1, steps=steps, save_every=steps,
                                 gradient_checkpointing=checkpointing, mixed_precision="no")
            unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768).eval()  # SD1.5 shapes
            module = new_motion_module(unet, version="v3")
            dataset = LatentClips(torch.randn(4, 4, 8, 8, 8))  # 4 clips already in latent space: (c=4, f=8, 8, 8)

            def encode_text(captions):
                return torch.randn(len(captions), 77, 768, generator=torch.Generator().manual_seed(0))
        started = time.perf_counter()
        train(config, unet, module, encode_text, dataset, Path(tmp) / "out", progress=False)
        total = time.perf_counter() - started
        rows = [json.loads(line) for line in (Path(tmp) / "out" / "loss.jsonl").read_text().splitlines()]
    seconds = [r["seconds"] for r in rows[1:]] or [rows[0]["seconds"]]  # the first step warms up
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"s_per_step": statistics.median(seconds), "first_step": rows[0]["seconds"],
                      "peak_rss": peak, "total_s": total, "trainable": module.num_parameters()}))


def measure(kind: str, steps: int, checkpointing: bool, threads: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--worker", kind, "--steps", str(steps), "--threads", str(threads)]
                         + (["--checkpointing"] if checkpointing else []),
                         capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if out.returncode != 0:
        sys.exit(f"{kind} worker failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=3, help="optimizer steps per full-size run (the tiny run does 20)")
    p.add_argument("--only", choices=("tiny", "sd15"))
    p.add_argument("--threads", type=int, default=1, help="torch threads per run (default 1: stable timings on a "
                                                          "shared machine)")
    p.add_argument("--worker", choices=("tiny", "sd15"), help=argparse.SUPPRESS)
    p.add_argument("--checkpointing", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args.worker, args.steps, args.checkpointing, args.threads)
    import torch
    print(f"torch {torch.__version__}, {args.threads} thread(s) per run, CPU fp32")
    gib = 1024 ** 3
    for kind, steps in (("tiny", 20), ("sd15", args.steps)):
        if args.only and kind != args.only:
            continue
        runs = {ckpt: measure(kind, steps, ckpt, args.threads) for ckpt in (False, True)}
        for ckpt, r in runs.items():
            print(f"{kind:5s} gradient checkpointing {'on ' if ckpt else 'off'}: {r['s_per_step']:8.3f} s/step "
                  f"(median of {steps - 1}; first {r['first_step']:.2f} s), peak RSS {r['peak_rss'] / gib:6.2f} GiB, "
                  f"{r['trainable']:,} trainable parameters")
        off, on = runs[False], runs[True]
        print(f"{kind:5s} checkpointing on / off: time x{on['s_per_step'] / off['s_per_step']:.2f}, "
              f"peak RSS x{on['peak_rss'] / off['peak_rss']:.2f}")


if __name__ == "__main__":
    main()
