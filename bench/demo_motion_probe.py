"""Does a demo motion module take its motion from the prompt, or from the clip it is denoising?

For clips of the demo world moving left / right / up / down, at timesteps near the noisy end: noise the TRUE clip,
let the base model + module predict x0 (averaged over a few noise draws), track the predicted object's path, and do
it again with the caption's direction reversed. A module that reads the prompt moves the predicted object the
caption's way at the noisiest steps, where the noisy clip shows nothing yet; one that only continues what it sees
gives the same path for both captions, and none at all at t = 999. Sampling starts there, so such a module holds
objects steady but never moves them as prompted.

    python bench/demo_motion_probe.py [--weights motion_core/demo/weights] [--module FILE] [--clips 8]

Prints, per timestep and caption, how many predicted paths move the clip's true way (by more than 0.05 image units)
and the signed moves. Then, where the prompt could reach the module at all: the relative change of each motion
block's input (the frozen base's features, where cross-attention put the text) when the caption's motion word
changes, beside the change for its colour word and its shape word. CPU, fp32, about a minute.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from motion_core import metrics  # noqa: E402
from motion_core.base import load_base  # noqa: E402
from motion_core.demo import world  # noqa: E402
from motion_core.demo.ship import WEIGHTS  # noqa: E402
from motion_core.formats import load_motion_module  # noqa: E402
from motion_core.patch import inject  # noqa: E402
from motion_core.pipeline import _Text  # noqa: E402
from motion_core.train.config import TrainConfig, alphas_cumprod  # noqa: E402

OPPOSITE = {"left": "right", "right": "left", "up": "down", "down": "up"}
SIGN = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}


def predicted_move(model, base, clip: torch.Tensor, caption: str, t: int, alphas, draws: int, seed: int):
    """The x0 prediction's net move (dx, dy) in image units, for the clip (1, 3, f, h, w) in [-1, 1] noised at t."""
    frames = clip.shape[2]
    cond, added = _Text(base, caption, "", frames, clip.shape[-1], clip.shape[-2], False).window(list(range(frames)))
    a = alphas[t]
    x0 = []
    for d in range(draws):
        noise = torch.randn(clip.shape, generator=torch.Generator().manual_seed(seed + d))
        noisy = a.sqrt() * clip + (1 - a).sqrt() * noise
        eps = model(noisy, torch.tensor([t]), cond, added_cond_kwargs=added)
        x0.append(((noisy - (1 - a).sqrt() * eps) / a.sqrt()).clamp(-1, 1))
    mean = torch.stack(x0).mean(0)[0].permute(1, 2, 3, 0)  # (f, h, w, 3)
    path = metrics.motion_direction(((mean + 1) / 2).numpy())
    return path["dx"], path["dy"]


def input_sensitivity(model, base, t: int, seed: int = 0) -> dict[str, dict[str, float]]:
    """{block: {word kind: |input(caption) - input(caption with that word changed)| / |input(caption)|}}, for the
    inputs of every motion block on one pure-noise clip at timestep t."""
    import motion_core.hosts.diffusers as host
    names = {id(m): n for n, m in model.motion_module.named_modules()}
    seen, apply = {}, host.apply_temporal

    def recording(module, x, *args, **kwargs):
        seen[names.get(id(module), "?")] = x.detach().clone()
        return apply(module, x, *args, **kwargs)
    caption = "a red circle moving left on a blue background"
    changed = {"motion word": caption.replace("left", "right"), "colour word": caption.replace("red", "yellow"),
               "shape word": caption.replace("circle", "square")}
    x = torch.randn(1, base.unet.config.in_channels, 16, 32, 32, generator=torch.Generator().manual_seed(seed))

    def inputs(text: str) -> dict[str, torch.Tensor]:
        cond, added = _Text(base, text, "", 16, 32, 32, False).window(list(range(16)))
        seen.clear()
        model(x, torch.tensor([t]), cond, added_cond_kwargs=added)
        return dict(seen)
    host.apply_temporal = recording
    try:
        reference = inputs(caption)
        out = {block: {} for block in reference}
        for kind, text in changed.items():
            other = inputs(text)
            for block, value in reference.items():
                out[block][kind] = float((other[block] - value).norm() / value.norm().clamp_min(1e-12))
    finally:
        host.apply_temporal = apply
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", default=str(WEIGHTS), help="a demo weights folder (its base/ and motion module)")
    p.add_argument("--module", default=None, help="motion module file (default: WEIGHTS/motion_module.safetensors)")
    p.add_argument("--clips", type=int, default=8, help="clips of the four directions (default 8)")
    p.add_argument("--draws", type=int, default=4, help="noise draws averaged per prediction (default 4)")
    p.add_argument("--timesteps", default="999,950,900,800", help="comma-separated timesteps")
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    weights = Path(args.weights)
    base = load_base(weights / "base")
    module = load_motion_module(args.module or weights / "motion_module.safetensors", dtype=torch.float32)
    alphas = alphas_cumprod(TrainConfig())
    scenes = [s for s in world.sample_scenes(20 * args.clips, 999, motion=True) if s.motion in OPPOSITE][:args.clips]
    model = inject(base.unet, module)
    try:
        with torch.no_grad():
            for t in (int(x) for x in args.timesteps.split(",")):
                for which in ("true", "reversed"):
                    moves = []
                    for k, scene in enumerate(scenes):
                        clip = torch.from_numpy(world.render_clip(scene, 16, 32)).float()
                        clip = clip.permute(3, 0, 1, 2)[None] / 127.5 - 1  # (1, 3, f, h, w)
                        said = scene if which == "true" else dataclasses.replace(scene, motion=OPPOSITE[scene.motion])
                        dx, dy = predicted_move(model, base, clip, world.caption(said), t, alphas, args.draws, 10 * k)
                        sx, sy = SIGN[scene.motion]
                        moves.append(sx * dx + sy * dy)  # > 0: the clip's true way
                    good = sum(m > 0.05 for m in moves)
                    print(f"t={t:4d} caption {which:8s}: {good}/{len(moves)} move the clip's true way, "
                          f"mean {np.mean(moves):+.3f} {np.round(moves, 2).tolist()}", flush=True)
            print("\nrelative change of each motion block's input at t=999 (pure noise) when one caption word changes:")
            changes = input_sensitivity(model, base, 999)
            kinds = list(next(iter(changes.values())))
            print(f"  {'block':34s}" + "".join(f"{k:>13s}" for k in kinds))
            for block, row in changes.items():
                print(f"  {block:34s}" + "".join(f"{row[k]:13.2e}" for k in kinds))
    finally:
        model.eject()
    return 0


if __name__ == "__main__":
    sys.exit(main())
