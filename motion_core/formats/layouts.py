"""Key layouts: what a state dict is (pure predicates over its keys) and pure conversions between layouts.

The ORIGINAL AnimateDiff layout is the hub: every other layout converts to it and back. Conversions only rename
keys; the tensors are the same objects, so round trips are exact.
"""

from __future__ import annotations

import re
from typing import Callable, Iterable, Mapping

from ..errors import NotAMotionModuleError, UnknownLayoutError

LAYOUTS = ("original", "diffusers", "hotshot")


def _any(keys: Iterable[str], test: Callable[[str], bool]) -> bool:
    return any(test(k) for k in keys)


# ---- predicates ---------------------------------------------------------------------------------------------------

def is_lora_key(key: str) -> bool:
    return bool(re.search(r"(_lora\.(down|up)\.|\.lora_[AB]\.|\.lora_(down|up)\.|lora_unet_|lora_te\d?_|\.alpha$)", key))


def is_motion_key(key: str) -> bool:
    return ".motion_modules." in key or ".temporal_attentions." in key


def is_motion_lora(keys) -> bool:
    return _any(keys, lambda k: is_lora_key(k) and is_motion_key(k))


def describe_other(keys: list[str]) -> str | None:
    """What a checkpoint that is not a motion module is, in words; None if it could be one."""
    if not keys:
        return None
    if is_motion_lora(keys):
        return ("a MotionLoRA (LoRA weights for a motion module), not a motion module: load the motion module and "
                "add this file as a LoRA (load_motion_module(path, loras=[(lora, 1.0)]))")
    if _any(keys, is_lora_key):
        return "a LoRA for the image model (no motion-module weights): load it with the image model's LoRA loader"
    if _any(keys, lambda k: k.startswith(("controlnet_cond_embedding.", "controlnet_down_blocks."))):
        return ("a SparseCtrl ControlNet (v3_sd15_sparsectrl_rgb / _scribble), not a motion module: load it with "
                "Load SparseCtrl (from models/controlnet), generate --sparse-ctrl or motion_core.sparsectrl."
                "load_sparsectrl")
    if _any(keys, is_motion_key):
        return None
    if _any(keys, lambda k: k.startswith("conditioner.embedders.")):
        return "an SDXL image-model checkpoint (no motion-module weights): load it as the base model"
    if _any(keys, lambda k: k.startswith(("model.diffusion_model.", "first_stage_model.", "cond_stage_model."))):
        return "a Stable Diffusion image-model checkpoint (no motion-module weights): load it as the base model"
    if _any(keys, lambda k: ".resnets." in k or k.startswith("conv_in.")):
        return "an image UNet (diffusers layout) without motion modules: load it as the base model"
    if _any(keys, lambda k: k.startswith(("encoder.down.", "decoder.up.", "quant_conv."))):
        return "a VAE, not a motion module"
    if _any(keys, lambda k: k.startswith(("text_model.", "transformer.text_model."))):
        return "a text encoder, not a motion module"
    return None


def related_method(state_dict: Mapping) -> str | None:
    """The name and shape of a related method's checkpoint that holds motion modules beside inputs a plain
    text-to-video module lacks (loading only its motion modules would run it as something it is not); else None."""
    keys = list(state_dict)
    if _any(keys, lambda k: "img_encoder." in k or "image_encoder." in k):
        return "AnimateLCM-I2V (an image encoder beside the motion modules, for image-to-video)"
    if _any(keys, lambda k: "pose_encoder" in k or "qkv_merge" in k or "cc_projection" in k):
        return "CameraCtrl (a camera-pose encoder and pose-conditioned temporal attention)"
    conv_in = next((v for k, v in state_dict.items() if k == "conv_in.weight" or k.endswith(".conv_in.weight")
                    and not k.startswith(("first_stage_model.", "encoder.", "decoder."))), None)
    shape = tuple(getattr(conv_in, "shape", ()))
    if len(shape) == 4 and shape[1] > 4 and _any(keys, is_motion_key):
        return (f"PIA (Personalized Image Animator: its UNet input takes {shape[1]} channels, the latent plus an image "
                "condition and its mask)")
    return None


def strip_prefixes(state_dict: Mapping) -> tuple[dict, list[str]]:
    """Drop `module.` (DDP training checkpoints), `unet.`, and keep only motion weights of a whole-UNet file."""
    notes = []
    sd = dict(state_dict)
    for prefix in ("module.", "unet.", "model."):
        if sd and all(k.startswith(prefix) for k in sd):
            sd = {k[len(prefix):]: v for k, v in sd.items()}
            notes.append(f"removed the '{prefix}' prefix of every key")
    if _any(sd, is_motion_key) and not all(is_motion_key(k) for k in sd):
        kept = {k: v for k, v in sd.items() if is_motion_key(k)}
        notes.append(f"whole-UNet checkpoint: kept its {len(kept)} motion-module tensors, "
                     f"ignored {len(sd) - len(kept)} image-model tensors")
        sd = kept
    return sd, notes


def detect_layout(state_dict: Mapping) -> str:
    """'original', 'diffusers' or 'hotshot' for a motion-module state dict; a typed error for anything else."""
    keys = list(state_dict)
    other = describe_other(keys)
    if other:
        raise NotAMotionModuleError(f"this file is {other}")
    if not keys:
        raise UnknownLayoutError("the checkpoint holds no tensors")
    if _any(keys, lambda k: ".temporal_attentions." in k):
        return "hotshot"
    if _any(keys, lambda k: ".motion_modules." in k and ".temporal_transformer." in k):
        return "original"
    if _any(keys, lambda k: ".motion_modules." in k):
        return "diffusers"
    raise UnknownLayoutError(f"no known motion-module layout matches; first keys: {keys[:5]}. Expected keys like "
                             "'down_blocks.0.motion_modules.0.temporal_transformer.norm.weight' (AnimateDiff), "
                             "'down_blocks.0.motion_modules.0.norm.weight' (diffusers) or "
                             "'down_blocks.0.temporal_attentions.0.norm.weight' (HotShot-XL)")


# ---- per-key renames ------------------------------------------------------------------------------------------------
# diffusers MotionAdapter: `motion_modules.j.` without `temporal_transformer.`, attn1/attn2 for attention_blocks.0/1,
# norm1/norm2 for norms.0/1, norm3 for ff_norm; its position encoding sits on the block (`pos_embed.pe`).

def diffusers_key_to_original(key: str) -> str:
    key = re.sub(r"\.motion_modules\.(\d+)\.", r".motion_modules.\1.temporal_transformer.", key)
    key = re.sub(r"\.attn(\d+)\.", lambda m: f".attention_blocks.{int(m[1]) - 1}.", key)
    key = re.sub(r"\.norm([12])\.", lambda m: f".norms.{int(m[1]) - 1}.", key)
    return key.replace(".norm3.", ".ff_norm.")


def original_key_to_diffusers(key: str) -> str:
    key = key.replace(".temporal_transformer.", ".")
    key = re.sub(r"\.attention_blocks\.(\d+)\.", lambda m: f".attn{int(m[1]) + 1}.", key)
    key = re.sub(r"\.norms\.(\d+)\.", lambda m: f".norm{int(m[1]) + 1}.", key)
    return key.replace(".ff_norm.", ".norm3.")


def hotshot_key_to_original(key: str) -> str:
    key = re.sub(r"\.temporal_attentions\.(\d+)\.", r".motion_modules.\1.temporal_transformer.", key)
    return key.replace(".pos_encoder.positional_encoding", ".pos_encoder.pe")


def original_key_to_hotshot(key: str) -> str:
    key = re.sub(r"\.motion_modules\.(\d+)\.temporal_transformer\.", r".temporal_attentions.\1.", key)
    return key.replace(".pos_encoder.pe", ".pos_encoder.positional_encoding")


def _rename(state_dict: Mapping, rename: Callable[[str], str]) -> dict:
    out = {}
    for key, value in state_dict.items():
        new = rename(key)
        if new in out:
            raise UnknownLayoutError(f"two keys map to {new!r}: the file mixes layouts")
        out[new] = value
    return out


def diffusers_to_original(state_dict: Mapping) -> dict:
    """diffusers keeps one `transformer_blocks.t.pos_embed.pe` per block; the original one per attention block."""
    pes = {k[:-len("pos_embed.pe")]: v for k, v in state_dict.items() if k.endswith(".pos_embed.pe")}
    out = _rename({k: v for k, v in state_dict.items() if not k.endswith(".pos_embed.pe")}, diffusers_key_to_original)
    for block, pe in pes.items():
        prefix = diffusers_key_to_original(block)
        attention = {m[1] for k in out if (m := re.match(re.escape(prefix) + r"attention_blocks\.(\d+)\.", k))}
        for i, a in enumerate(sorted(attention)):  # own storage each: safetensors refuses shared tensors
            out[f"{prefix}attention_blocks.{a}.pos_encoder.pe"] = pe if i == 0 else pe.clone()
    return out


def original_to_diffusers(state_dict: Mapping) -> dict:
    out, pes = {}, {}
    for key, value in state_dict.items():
        if key.endswith(".pos_encoder.pe"):
            pes.setdefault(key.split("attention_blocks.")[0], []).append((key, value))
        else:
            out[original_key_to_diffusers(key)] = value
    for block, entries in pes.items():
        first_key, first = entries[0]
        for key, value in entries[1:]:
            if value.shape != first.shape or not bool((value == first).all()):
                raise UnknownLayoutError(f"{key} differs from {first_key}: diffusers stores one position encoding "
                                         "per transformer block, so this file cannot be written in its layout")
        out[original_key_to_diffusers(block) + "pos_embed.pe"] = first
    return out


_TO_ORIGINAL = {"original": dict, "diffusers": diffusers_to_original,
                "hotshot": lambda sd: _rename(sd, hotshot_key_to_original)}
_FROM_ORIGINAL = {"original": dict, "diffusers": original_to_diffusers,
                  "hotshot": lambda sd: _rename(sd, original_key_to_hotshot)}


def to_original(state_dict: Mapping, layout: str) -> dict:
    """Rename a `layout` state dict to the original AnimateDiff keys (same tensor objects)."""
    return _TO_ORIGINAL[layout](state_dict)


def from_original(state_dict: Mapping, layout: str) -> dict:
    """Rename original keys to `layout` (same tensor objects)."""
    return _FROM_ORIGINAL[layout](state_dict)
