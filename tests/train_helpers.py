"""Tiny things to train on: synthetic moving-shape clips (mp4, gif, PNG folders), a word-embedding text encoder, a
pixel-space tiny UNet. Shared by the training tests and tests/train_worker.py (subprocess / accelerate runs)."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import torch
from torch import nn

TINY_UNET = dict(sample_size=32, in_channels=3, out_channels=3, block_out_channels=(32, 64, 64, 64),
                 layers_per_block=1, cross_attention_dim=32, attention_head_dim=2, norm_num_groups=32,
                 down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                 up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3)
COLORS = {"red": (230, 40, 40), "green": (40, 200, 60), "blue": (50, 80, 230), "yellow": (230, 220, 40)}


def shape_frames(frames: int, size: int, color: str, direction: int, square: bool) -> np.ndarray:
    """(frames, size, size, 3) uint8: a disc or square crossing a grey background, left to right or back."""
    out = np.full((frames, size, size, 3), 96, np.uint8)
    r = size // 6
    yy, xx = np.mgrid[:size, :size]
    for i in range(frames):
        cx = r + (size - 2 * r) * (i / max(1, frames - 1))
        cx = cx if direction > 0 else size - cx
        cy = size // 2 + int(r * np.sin(i / 2))
        mask = (np.abs(xx - cx) <= r) & (np.abs(yy - cy) <= r) if square else (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
        out[i][mask] = COLORS[color]
    return out


def write_clips(folder: Path, *, frames: int = 12, size: int = 40, corrupt: bool = True) -> Path:
    """Eight captioned clips: mp4 (sidecar .txt captions), gif, PNG frame folders (captions.csv), plus a corrupt
    mp4 and an empty frame folder that must be skipped with a warning."""
    import cv2
    from PIL import Image
    folder.mkdir(parents=True, exist_ok=True)
    rows = ["file,caption"]
    names = [(c, d, s) for c in COLORS for d, s in ((1, False), (-1, True))]
    for k, (color, direction, square) in enumerate(names):
        video = shape_frames(frames, size, color, direction, square)
        caption = f"a {color} {'square' if square else 'disc'} moving {'right' if direction > 0 else 'left'}"
        kind = k % 3
        if kind == 0:
            path = folder / f"clip{k}.mp4"
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 8, (size, size))
            for frame in video:
                writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
            writer.release()
            path.with_suffix(".txt").write_text(caption)
        elif kind == 1:
            images = [Image.fromarray(f) for f in video]
            images[0].save(folder / f"clip{k}.gif", save_all=True, append_images=images[1:], duration=125, loop=0)
            rows.append(f"clip{k}.gif,{caption}")
        else:
            sub = folder / f"clip{k}"
            sub.mkdir()
            for i, frame in enumerate(video):
                Image.fromarray(frame).save(sub / f"{i:04d}.png")
            rows.append(f"clip{k},{caption}")
    (folder / "captions.csv").write_text("\n".join(rows) + "\n")
    if corrupt:
        (folder / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4)
        (folder / "empty_frames").mkdir()
    return folder


class WordEncoder(nn.Module):
    """A frozen stand-in text encoder: captions -> (b, 8, 32), one seeded embedding per word (crc32 into 64 slots)."""

    def __init__(self, dim: int = 32, tokens: int = 8, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.embed = nn.Embedding(65, dim)  # slot 64: padding / the empty caption
        self.tokens = tokens
        self.requires_grad_(False)

    def forward(self, captions: list[str]) -> torch.Tensor:
        ids = [[zlib.crc32(w.encode()) % 64 for w in c.split()][:self.tokens] for c in captions]
        ids = torch.tensor([row + [64] * (self.tokens - len(row)) for row in ids], device=self.embed.weight.device)
        return self.embed(ids)


def tiny_unet(seed: int = 0):
    from diffusers import UNet2DConditionModel
    torch.manual_seed(seed)
    return UNet2DConditionModel(**TINY_UNET).eval()


def state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def record_first_grads(store: dict):
    """A replacement for torch.optim.AdamW.step that copies the gradients it sees on its first call into `store`
    ({"0": grad of the first parameter, ...}) before stepping: the all-reduced, accumulated, clipped gradients."""
    real_step = torch.optim.AdamW.step

    def step(self, *args, **kwargs):
        if not store:
            params = [p for group in self.param_groups for p in group["params"]]
            store.update({str(i): p.grad.detach().clone() for i, p in enumerate(params) if p.grad is not None})
        return real_step(self, *args, **kwargs)
    return step


def compare_updates(grads_a: dict, grads_b: dict, weights_a: dict, weights_b: dict, before: dict, names: list[str]):
    """(max gradient difference, max weight difference where |grad| > 1e-6, elements left out, max raw difference).

    AdamW's first update is lr * g / (|g| + eps) with eps 1e-8: where |g| is at rounding level, the sign of g (and
    so a full +-lr step) depends on summation order, which differs between one batch of 2B and two halves."""
    grad_diff = max((grads_a[k] - grads_b[k]).abs().max().item() for k in grads_a)
    weight_diff, left_out, raw = 0.0, 0, 0.0
    for i, name in enumerate(names):
        g = grads_a[str(i)]
        diff = (weights_a[name] - weights_b[name]).abs()
        keep = g.abs() > 1e-6
        weight_diff = max(weight_diff, diff[keep].max().item() if keep.any() else 0.0)
        left_out += int((~keep).sum())
        raw = max(raw, diff.max().item())
    moved = max((weights_a[n] - before[n]).abs().max().item() for n in names)
    return grad_diff, weight_diff, left_out, raw, moved
