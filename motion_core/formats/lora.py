"""MotionLoRA: low-rank updates of a motion module's attention projections, merged as `W += alpha * up @ down`.

Accepted namings, all normalised to the original AnimateDiff one:
  original  `<path>.temporal_transformer.transformer_blocks.0.attention_blocks.0.processor.to_q_lora.down.weight`
  diffusers `[unet.]<path>.transformer_blocks.0.attn1.processor.to_q_lora.down.weight`
  PEFT      `[unet.]<path>.transformer_blocks.0.attn1.to_q.lora_A.weight` (lora_B = up), `to_out.0.lora_A`
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Mapping

import torch

from ..errors import LoRAMismatchError, NotAMotionModuleError, UnknownLayoutError
from .files import from_state_dict, read_checkpoint
from .layouts import diffusers_key_to_original, hotshot_key_to_original, is_motion_lora

_LORA_KEY = re.compile(
    r"^(?:unet\.|module\.)?(?P<attn>.+?)\.(?:processor\.)?(?P<proj>to_q|to_k|to_v|to_out)"
    r"(?:_lora\.(?P<od>down|up)|(?:\.0)?\.lora_(?P<ab>A|B))\.weight$")


@dataclass(frozen=True)
class MotionLoRA:
    """Low-rank pairs keyed by the weight they update (original naming), e.g. `...attention_blocks.0.to_q.weight`."""
    pairs: dict[str, tuple[torch.Tensor, torch.Tensor]]  # weight key -> (down (r, in), up (out, r))
    source: str = "state dict"

    @property
    def rank(self) -> int:
        return max(down.shape[0] for down, _ in self.pairs.values())

    def num_parameters(self) -> int:
        return sum(d.numel() + u.numel() for d, u in self.pairs.values())


def _attention_path_to_original(path: str) -> str:
    if ".temporal_attentions." in path:
        return hotshot_key_to_original(path + ".")[:-1]
    if ".temporal_transformer." in path:
        return path
    return diffusers_key_to_original(path + ".")[:-1]


def parse_motion_lora(state_dict: Mapping[str, torch.Tensor], source: str = "state dict") -> MotionLoRA:
    """Pure: a MotionLoRA state dict in any accepted naming -> MotionLoRA in the original naming."""
    if not is_motion_lora(state_dict):
        raise NotAMotionModuleError(f"{source} is not a MotionLoRA: no LoRA weights inside motion modules "
                                    f"(first keys {list(state_dict)[:3]})")
    halves: dict[str, dict[str, torch.Tensor]] = {}
    unknown = []
    for key, tensor in state_dict.items():
        if key.endswith(".alpha"):
            raise UnknownLayoutError(
                f"{source} carries LoRA alpha scales ({key}); published MotionLoRAs merge as W += strength * up @ down "
                "without them, and guessing their meaning would merge at the wrong strength: convert the file first")
        m = _LORA_KEY.match(key)
        if m is None:
            unknown.append(key)
            continue
        proj = "to_out.0" if m["proj"] == "to_out" else m["proj"]
        target = f"{_attention_path_to_original(m['attn'])}.{proj}.weight"
        half = m["od"] or {"A": "down", "B": "up"}[m["ab"]]
        halves.setdefault(target, {})[half] = tensor
    if unknown:
        raise UnknownLayoutError(f"{source}: {len(unknown)} key(s) are not MotionLoRA weights, e.g. {unknown[:5]}")
    pairs = {}
    for target, h in halves.items():
        if set(h) != {"down", "up"}:
            raise LoRAMismatchError(f"{source}: {target} has only its {next(iter(h))} half; the file is incomplete")
        down, up = h["down"], h["up"]
        if down.ndim != 2 or up.ndim != 2 or up.shape[1] != down.shape[0]:
            raise LoRAMismatchError(f"{source}: {target} has down {tuple(down.shape)} and up {tuple(up.shape)}, "
                                    "which do not multiply (expected down (r, in) and up (out, r))")
        pairs[target] = (down, up)
    return MotionLoRA(pairs, source)


def load_motion_lora(source: str | os.PathLike | Mapping) -> MotionLoRA:
    if isinstance(source, MotionLoRA):
        return source
    raw = from_state_dict(dict(source)) if isinstance(source, Mapping) else read_checkpoint(source)
    return parse_motion_lora(raw.state_dict, raw.path or "the state dict")


@torch.no_grad()
def merge_motion_lora(module: torch.nn.Module, lora: MotionLoRA, alpha: float = 1.0) -> None:
    """`W += alpha * up @ down` for every pair, computed in fp32; updates `module`'s parameters."""
    params = dict(module.named_parameters())
    missing = [k for k in lora.pairs if k not in params]
    if missing:
        raise LoRAMismatchError(f"{lora.source} targets {len(missing)} weight(s) this motion module does not have, "
                                f"e.g. {missing[:3]}: the LoRA was trained for another module version")
    for key, (down, up) in lora.pairs.items():
        weight = params[key]
        if (up.shape[0], down.shape[1]) != tuple(weight.shape):
            raise LoRAMismatchError(f"{lora.source}: {key} is {tuple(weight.shape)} but the LoRA update is "
                                    f"{(up.shape[0], down.shape[1])}: the LoRA was trained for another module size")
    for key, (down, up) in lora.pairs.items():
        weight = params[key]
        delta = up.to(weight.device, torch.float32) @ down.to(weight.device, torch.float32)
        # new storage, not an in-place add: the old tensor may be shared with a caller's state dict or a mapped file
        weight.data = (weight.to(torch.float32) + alpha * delta).to(weight.dtype)


def load_image_lora(source: str | os.PathLike | Mapping) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """An image-layer LoRA such as AnimateDiff v3's domain adapter (`v3_sd15_adapter.ckpt`): `{UNet weight key
    (diffusers naming): (down, up)}`. Its keys name the image UNet's attention projections, e.g.
    `down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor.to_q_lora.down.weight`."""
    raw = from_state_dict(dict(source)) if isinstance(source, Mapping) else read_checkpoint(source)
    where = raw.path or "the state dict"
    halves: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in raw.state_dict.items():
        m = _LORA_KEY.match(key)
        if m is None or ".motion_modules." in key:
            raise UnknownLayoutError(f"{where}: {key} is not an image-layer LoRA weight (a domain adapter holds "
                                     "...attn1/attn2.processor.to_q_lora.down.weight style keys)")
        proj = "to_out.0" if m["proj"] == "to_out" else m["proj"]
        halves.setdefault(f"{m['attn']}.{proj}.weight", {})[m["od"] or {"A": "down", "B": "up"}[m["ab"]]] = tensor
    broken = [k for k, h in halves.items() if set(h) != {"down", "up"}]
    if broken or not halves:
        raise LoRAMismatchError(f"{where}: incomplete LoRA ({len(broken)} weight(s) lack a half, e.g. {broken[:2]})")
    return {k: (h["down"], h["up"]) for k, h in halves.items()}


@torch.no_grad()
def merge_image_lora(unet: torch.nn.Module, pairs: dict, scale: float) -> list[tuple[torch.nn.Parameter, torch.Tensor]]:
    """`W += scale * up @ down` into `unet`'s weights (new storage); returns [(parameter, old data)] to restore."""
    params = dict(unet.named_parameters())
    missing = [k for k in pairs if k not in params]
    if missing:
        raise LoRAMismatchError(f"the LoRA targets {len(missing)} weight(s) this UNet lacks, e.g. {missing[:3]}: "
                                "it was made for another model family")
    saved = []
    for key, (down, up) in pairs.items():
        weight = params[key]
        if (up.shape[0], down.shape[1]) != tuple(weight.shape):
            raise LoRAMismatchError(f"{key} is {tuple(weight.shape)} but the LoRA update is {(up.shape[0], down.shape[1])}")
        delta = up.to(weight.device, torch.float32) @ down.to(weight.device, torch.float32)
        saved.append((weight, weight.data))
        weight.data = (weight.to(torch.float32) + scale * delta).to(weight.dtype)
    return saved
