"""Trainable MotionLoRA: `W + up @ down` on every temporal-attention projection, saved in the original naming.

The low-rank pair is a torch parametrization of the frozen weight (`torch.nn.utils.parametrize`, per layer instance,
undone by `remove_lora`), so the module computes exactly what `merge_motion_lora` later bakes in. Initialised as the
original AnimateDiff / diffusers LoRA layers: `down ~ N(0, 1/rank)`, `up = 0`, so training starts from the module.
Saved keys: `<...>.attention_blocks.<i>.processor.<to_q|to_k|to_v|to_out>_lora.<down|up>.weight`, the layout of the
published MotionLoRAs (`v2_lora_ZoomIn.ckpt`), which `load_motion_module(..., loras=[(path, 1.0)])` and
ComfyUI-AnimateDiff-Evolved read.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn
from torch.nn.utils import parametrize

from ..formats.files import atomic_write
from ..module import MotionModule

# `...attention_blocks.0.to_q` / `...attention_blocks.0.to_out.0` -> (attention path, "to_q" | "to_out")
_PROJECTION = re.compile(r"^(.+\.attention_blocks\.\d+)\.(to_q|to_k|to_v|to_out)(?:\.0)?$")


class LoRAWeight(nn.Module):
    """A parametrization of a Linear's weight (out, in): `weight + up @ down`, down (rank, in), up (out, rank)."""

    def __init__(self, out_features: int, in_features: int, rank: int, generator: torch.Generator):
        super().__init__()
        self.down = nn.Parameter(torch.randn(rank, in_features, generator=generator) / rank)
        self.up = nn.Parameter(torch.zeros(out_features, rank))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight + (self.up @ self.down).to(weight.dtype)


def lora_targets(module: MotionModule) -> dict[str, nn.Linear]:
    """{module path of each temporal-attention projection: the Linear}, in registration order."""
    return {name: m for name, m in module.named_modules() if isinstance(m, nn.Linear) and _PROJECTION.match(name)}


def parametrize_loras(linears: dict[str, nn.Linear], rank: int, seed: int = 0) -> dict[str, LoRAWeight]:
    """Give every Linear of `linears` a trainable rank-`rank` pair (drawn in the dict's order from one generator
    seeded by `seed`), its own weight frozen; returns {name: LoRAWeight}. Any model's Linears: the motion module's
    projections here, an image UNet's attention in the demo. `unparametrize_loras` takes them off."""
    generator = torch.Generator().manual_seed(seed)
    out = {}
    for name, linear in linears.items():
        out_features, in_features = linear.weight.shape
        lora = LoRAWeight(out_features, in_features, rank, generator).to(linear.weight.device)
        parametrize.register_parametrization(linear, "weight", lora)
        linear.parametrizations.weight.original.requires_grad_(False)
        out[name] = lora
    return out


def unparametrize_loras(linears: dict[str, nn.Linear]) -> None:
    """Take the pairs off again: each Linear's weight is its frozen original, untouched."""
    for linear in linears.values():
        if parametrize.is_parametrized(linear, "weight"):
            parametrize.remove_parametrizations(linear, "weight", leave_parametrized=False)


def add_lora(module: MotionModule, rank: int, seed: int = 0) -> list[nn.Parameter]:
    """Freeze `module` and give every attention projection a trainable rank-`rank` pair; returns the new parameters."""
    module.requires_grad_(False)
    return [p for lora in parametrize_loras(lora_targets(module), rank, seed).values() for p in (lora.down, lora.up)]


def lora_state_dict(module: MotionModule) -> dict[str, torch.Tensor]:
    """The trained pairs in the original MotionLoRA naming (contiguous fp32 copies)."""
    out = {}
    for name, linear in lora_targets(module).items():
        attention, proj = _PROJECTION.match(name).groups()
        lora = linear.parametrizations.weight[0]
        for half in ("down", "up"):
            value = getattr(lora, half).detach().float().contiguous().cpu()
            out[f"{attention}.processor.{proj}_lora.{half}.weight"] = value
    return out


def remove_lora(module: MotionModule) -> None:
    """Take the pairs off again: the module's weights are the frozen originals, untouched."""
    unparametrize_loras(lora_targets(module))


def save_lora(module: MotionModule, path: str | os.PathLike) -> Path:
    """Write the MotionLoRA as safetensors, atomically, with its rank in the metadata."""
    sd = lora_state_dict(module)
    rank = next(v for k, v in sd.items() if k.endswith("_lora.down.weight")).shape[0]
    metadata = {"format": "pt", "kind": "motion-lora", "lora_rank": str(rank)}
    atomic_write(path, lambda tmp: save_file(sd, tmp, metadata=metadata))
    return Path(path)
