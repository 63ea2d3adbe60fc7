"""SparseCtrl (AnimateDiff v3, arXiv 2311.16933): a ControlNet with its own motion modules that steers a whole clip
from a few keyframes: RGB images (as VAE latents) or scribbles.

The model is the original SparseControlNetModel (guoyww/AnimateDiff, animatediff/models/sparse_controlnet.py):
  - the image UNet's encoder: conv_in, the time embedding, the down blocks and the mid block (diffusers'
    ControlNetModel holds the same layers under the same key names; the original runs them per frame);
  - a condition embedding over the condition channels plus the keyframe mask: RGB files use the simplified one (a
    single zero-initialised 3x3 conv over 4 latent channels + mask, `use_simplified_condition_embedding`), scribble
    files the ControlNet one (3x3 convs, three of stride 2, over 3 pixel channels + mask);
  - a zero 1x1 conv on each skip connection and on the mid block, scaled by `conditioning_scale`;
  - a motion module (one temporal self-attention, 8 heads, 32-frame position encoding) after each resnet /
    attention of the down blocks (none in the mid block).
Both official files zero the noisy sample (`set_noisy_sample_input_to_zero`): the residuals depend only on the
keyframes, their mask, the timestep and the text. The condition is zero and the mask 0 on frames without a keyframe,
1 on keyframes, as the original pipeline builds them (`keyframe_condition`).

`load_sparsectrl(source, unet)` builds it for a base diffusers UNet (its configuration, not its weights) and loads an
official checkpoint (`v3_sd15_sparsectrl_rgb.ckpt`, `v3_sd15_sparsectrl_scribble.ckpt`); `SparseCtrl.forward` returns
the residuals in the host's `((b f), c, h, w)` layout, to pass as `down_block_additional_residuals` /
`mid_block_additional_residual`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch
from einops import rearrange
from torch import nn

from .config import MotionModuleConfig
from .control import MotionControl
from .errors import ConfigError, NotAMotionModuleError, UnknownLayoutError
from .frames import frames_context
from .hosts.diffusers import DiffusersHost
from .module import MotionBlock, TorchOps, cast_module

KINDS = ("rgb", "scribble")


@dataclass(frozen=True)
class SparseCtrlConfig:
    kind: str  # "rgb" (VAE latents of keyframe images) or "scribble" (keyframe images in pixels)
    condition_channels: int  # channels of a keyframe (4 latent channels, or 3 pixel channels), without the mask
    embedding_channels: tuple[int, ...] = (16, 32, 96, 256)  # scribble's condition embedding (unused for rgb)
    heads: int = 8  # the motion modules' attention heads (not stored in the files; 8 in both official ones)
    pe_length: int = 32
    zero_sample: bool = True  # set_noisy_sample_input_to_zero (both official files)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ConfigError(f"SparseCtrl kind {self.kind!r} is not one of {', '.join(KINDS)}")

    @property
    def factor(self) -> int:
        """Pixels per latent of the condition: 1 for rgb (latents), 8 for scribble (three stride-2 convs)."""
        return 1 if self.kind == "rgb" else 2 ** (len(self.embedding_channels) - 1)


def is_sparsectrl(keys) -> bool:
    return any(k.startswith(("controlnet_cond_embedding.", "controlnet_down_blocks.")) for k in keys)


def infer_config(state_dict: Mapping, heads: int = 8) -> SparseCtrlConfig:
    """The kind and condition shapes of a SparseCtrl state dict (original key layout)."""
    shape = lambda k: tuple(state_dict[k].shape)  # noqa: E731
    if "controlnet_cond_embedding.weight" in state_dict:
        return SparseCtrlConfig("rgb", shape("controlnet_cond_embedding.weight")[1] - 1, heads=heads)
    if "controlnet_cond_embedding.conv_in.weight" in state_dict:
        first = shape("controlnet_cond_embedding.conv_in.weight")
        blocks = sorted({int(k.split(".")[2]) for k in state_dict if k.startswith("controlnet_cond_embedding.blocks.")})
        widths = [first[0]] + [shape(f"controlnet_cond_embedding.blocks.{i}.weight")[0] for i in blocks if i % 2]
        return SparseCtrlConfig("scribble", first[1] - 1, tuple(widths), heads=heads)
    raise UnknownLayoutError("no SparseCtrl condition embedding (controlnet_cond_embedding.*) in the checkpoint: it "
                             "is not a SparseCtrl file")


class SparseMotion(nn.Module):
    """The SparseCtrl's own motion modules, at `down_blocks.i.motion_modules.j` (the original keys)."""

    def __init__(self, config: MotionModuleConfig, operations=TorchOps):
        super().__init__()
        self.config = config
        self.down_blocks = nn.ModuleList([MotionBlock(c, config.layers_per_block, config, operations)
                                          for c in config.channels])


class SparseCtrl(nn.Module):
    """controlnet: a diffusers ControlNetModel (image layers, condition embedding, zero convs); motion: SparseMotion."""

    def __init__(self, controlnet: nn.Module, motion: SparseMotion, config: SparseCtrlConfig):
        super().__init__()
        self.controlnet, self.motion, self.config = controlnet, motion, config
        control = MotionControl()
        for path, point in DiffusersHost.points(controlnet, motion_paths(motion.config)).items():  # active inside frames_context only
            DiffusersHost.attach(point, motion.get_submodule(path), control)

    def forward(self, sample: torch.Tensor, timestep, encoder_hidden_states: torch.Tensor, condition: torch.Tensor,
                mask: torch.Tensor, scale: float = 1.0) -> tuple[list[torch.Tensor], torch.Tensor]:
        """sample (b, 4, f, h, w); encoder_hidden_states (b, n, d) or per frame (b, f, n, d); condition
        (b, condition_channels, f, h * factor, w * factor) and mask (b, 1, f, ...), zero on frames without a
        keyframe. Returns (down residuals, mid residual), each ((b f), c, h', w')."""
        b, _, f = sample.shape[:3]
        if condition.shape[1] != self.config.condition_channels or condition.shape[:3] != (b, condition.shape[1], f):
            raise ConfigError(f"SparseCtrl condition has shape {tuple(condition.shape)}; expected (clips={b}, "
                              f"{self.config.condition_channels}, frames={f}, height, width)")
        x = rearrange(sample, "b c f h w -> (b f) c h w")
        if self.config.zero_sample:
            x = torch.zeros_like(x)
        t = torch.as_tensor(timestep, device=x.device)
        t = t.expand(b) if t.ndim == 0 else t
        t = t.repeat_interleave(f) if t.shape[0] == b else t
        text = encoder_hidden_states
        text = rearrange(text, "b f n d -> (b f) n d") if text.ndim == 4 else text.repeat_interleave(f, dim=0)
        cond = rearrange(torch.cat([condition, mask.to(condition)], dim=1), "b c f h w -> (b f) c h w")
        with frames_context(f):
            down, mid = self.controlnet(x, t, text, cond, conditioning_scale=scale, return_dict=False)
        return list(down), mid


def motion_config(channels, layers_per_block: int, config: SparseCtrlConfig) -> MotionModuleConfig:
    """The SparseCtrl motion modules' config: v3-shaped, one temporal self-attention each."""
    return MotionModuleConfig(family="sd15", version="v3", channels=tuple(channels), layers_per_block=layers_per_block,
                              heads=config.heads, pe_length=config.pe_length, attention_blocks=1)


def build_sparsectrl(unet, config: SparseCtrlConfig, *, load_weights_from_unet: bool = False) -> SparseCtrl:
    """An empty SparseCtrl for the base diffusers `unet` (its configuration; with `load_weights_from_unet`, also its
    image weights, as the original's from_unet)."""
    import diffusers
    channels = tuple(unet.config.block_out_channels)
    controlnet = diffusers.ControlNetModel.from_unet(
        unet, conditioning_embedding_out_channels=config.embedding_channels,
        conditioning_channels=config.condition_channels + 1, load_weights_from_unet=load_weights_from_unet)
    if config.kind == "rgb":  # the simplified condition embedding: one zero-initialised conv
        controlnet.controlnet_cond_embedding = nn.Conv2d(config.condition_channels + 1, channels[0], 3, padding=1)
        nn.init.zeros_(controlnet.controlnet_cond_embedding.weight)
        nn.init.zeros_(controlnet.controlnet_cond_embedding.bias)
    motion = SparseMotion(motion_config(channels, unet.config.layers_per_block, config))
    return SparseCtrl(controlnet.eval(), motion.eval(), config).to(next(unet.parameters()).dtype)


def original_state_dict(model: SparseCtrl) -> dict[str, torch.Tensor]:
    """The model's tensors under the official files' keys (position encodings left out, as the original loads)."""
    sd = {k: v for k, v in model.controlnet.state_dict().items()}
    sd.update({k: v for k, v in model.motion.state_dict().items() if not k.endswith("pos_encoder.pe")})
    return sd


def save_sparsectrl(model: SparseCtrl, path) -> None:
    """A safetensors file in the official key layout (the heads in its metadata), written atomically."""
    from safetensors.torch import save_file

    from .formats.files import atomic_write
    tensors = {k: v.detach().contiguous() for k, v in original_state_dict(model).items()}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata={"heads": str(model.config.heads)}))


def read_sparsectrl(source) -> tuple[dict, int | None]:
    """(state dict in the official layout, heads from the file's metadata or None) of a SparseCtrl file (read safely)
    or state dict; a clear error when it is not one."""
    from .formats.files import read_checkpoint
    heads = None
    if isinstance(source, Mapping):
        sd = {k: v for k, v in source.items() if isinstance(v, torch.Tensor)}
    else:
        raw = read_checkpoint(source)
        heads = int(raw.metadata["heads"]) if "heads" in raw.metadata else None
        sd, nested = dict(raw.state_dict), raw.extras.get("controlnet")
        if not sd and isinstance(nested, Mapping):  # the original's training checkpoints: {"controlnet": {...}}
            sd = {k: v for k, v in nested.items() if isinstance(v, torch.Tensor)}
    if not is_sparsectrl(sd):
        raise NotAMotionModuleError("this file is not a SparseCtrl ControlNet (no controlnet_cond_embedding.* / "
                                    "controlnet_down_blocks.* keys): use v3_sd15_sparsectrl_rgb.ckpt or "
                                    "v3_sd15_sparsectrl_scribble.ckpt")
    return sd, heads


def check_fits(sd: Mapping, levels: int, width: int, text_width: int, family: str) -> None:
    """Refuse a SparseCtrl whose levels, conv_in width or text width differ from the base UNet's, naming both."""
    found = 1 + max((int(k.split(".")[1]) for k in sd if k.startswith("down_blocks.")), default=-1)
    conv_in = tuple(sd["conv_in.weight"].shape)[0] if "conv_in.weight" in sd else None
    text = sd.get("down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight")
    text = None if text is None else tuple(text.shape)[1]
    if (found, conv_in, text) != (levels, width, text_width):
        raise ConfigError(f"this SparseCtrl does not fit the base model: it has {found} levels, {conv_in} channels at "
                          f"conv_in and text width {text}; the {family} base UNet has {levels}, {width} and "
                          f"{text_width}. SparseCtrl exists for SD1.5 models: use an SD1.5 base")


def load_motion(sd: Mapping, motion: SparseMotion, dtype, pe_dtype=None) -> SparseMotion:
    """`motion` with the SparseCtrl's motion-module weights from its state dict (in `dtype`), strict; the position
    encodings stay the module's own (the original drops the file's too), rounded once to `pe_dtype` (default:
    dtype)."""
    tensors = {k: v.to(dtype) for k, v in sd.items() if ".motion_modules." in k and not k.endswith("pos_encoder.pe")}
    tensors.update({k: v for k, v in motion.state_dict().items() if k.endswith("pos_encoder.pe")})
    try:
        motion.load_state_dict(tensors, strict=True, assign=True)
    except RuntimeError as e:
        raise UnknownLayoutError(f"the SparseCtrl motion modules do not match: {str(e)[:600]}") from None
    return cast_module(motion, dtype, pe_dtype).eval()


def motion_paths(config: MotionModuleConfig) -> list[str]:
    return [f"down_blocks.{i}.motion_modules.{j}" for i in range(len(config.channels))
            for j in range(config.layers_per_block)]


def load_sparsectrl(source, unet, *, heads: int | None = None) -> SparseCtrl:
    """A SparseCtrl checkpoint (a file, read safely, or a state dict in the original key layout) for the base
    diffusers `unet`; a clear error when it is not one or does not fit the base. heads: the motion modules'
    attention heads (default: the file's metadata, else 8 as in both official files)."""
    sd, stored = read_sparsectrl(source)
    config = infer_config(sd, heads or stored or 8)
    family = "SDXL" if getattr(unet.config, "addition_embed_type", None) == "text_time" else "SD1.5"
    check_fits(sd, len(unet.config.block_out_channels), unet.config.block_out_channels[0],
               unet.config.cross_attention_dim, family)
    model = build_sparsectrl(unet, config)
    dtype = next(model.parameters()).dtype
    try:
        model.controlnet.load_state_dict({k: v.to(dtype) for k, v in sd.items() if ".motion_modules." not in k},
                                         strict=True)
    except RuntimeError as e:
        raise UnknownLayoutError(f"the SparseCtrl checkpoint does not fit the model built for it: {str(e)[:600]}") \
            from None
    load_motion(sd, model.motion, dtype)
    return model


def keyframe_condition(keyframes: Mapping[int, torch.Tensor], frames, like: torch.Tensor, clips: int = 1
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """(condition (clips, c, f, h, w), mask (clips, 1, f, h, w)) for the frames `frames` (indices into the clip):
    a frame's keyframe where it has one, zeros and mask 0 elsewhere, as the original pipeline builds them."""
    frames = list(frames)
    first = next(iter(keyframes.values()))
    cond = torch.zeros(clips, first.shape[0], len(frames), *first.shape[1:], dtype=like.dtype, device=like.device)
    mask = torch.zeros(clips, 1, len(frames), *first.shape[1:], dtype=like.dtype, device=like.device)
    for j, frame in enumerate(frames):
        if frame in keyframes:
            cond[:, :, j] = keyframes[frame].to(cond)
            mask[:, :, j] = 1
    return cond, mask


def cldm_state_dict(sd: Mapping, unet_map: Mapping[str, str], config: SparseCtrlConfig) -> dict:
    """A SparseCtrl's image layers under ComfyUI's cldm ControlNet keys: `unet_map` is ComfyUI's diffusers -> ldm
    UNet key map (comfy.utils.unet_to_diffusers); the zero convs, the mid zero conv and the condition embedding
    (its convs sit at every other index of input_hint_block, SiLUs between) are mapped here. Motion-module keys are
    left out; a key that maps nowhere raises."""
    out, left = {}, []
    blocks = sorted({int(k.split(".")[2]) for k in sd if k.startswith("controlnet_cond_embedding.blocks.")})
    for key, value in sd.items():
        if ".motion_modules." in key:
            continue
        name, _, leaf = key.rpartition(".")
        if key in unet_map:
            out[unet_map[key]] = value
        elif name == "controlnet_mid_block":
            out[f"middle_block_out.0.{leaf}"] = value
        elif name.startswith("controlnet_down_blocks."):
            out[f"zero_convs.{name.split('.')[1]}.0.{leaf}"] = value
        elif name == "controlnet_cond_embedding" or name == "controlnet_cond_embedding.conv_in":
            out[f"input_hint_block.0.{leaf}"] = value
        elif name.startswith("controlnet_cond_embedding.blocks."):
            out[f"input_hint_block.{2 * (int(name.split('.')[2]) + 1)}.{leaf}"] = value
        elif name == "controlnet_cond_embedding.conv_out":
            out[f"input_hint_block.{2 * (len(blocks) + 1)}.{leaf}"] = value
        else:
            left.append(key)
    if left:
        raise UnknownLayoutError(f"SparseCtrl keys with no place in ComfyUI's ControlNet: {left[:3]}")
    return out


def keyframe_indices(indices, frames: int) -> list[int]:
    """Keyframe indices checked against the clip (negative ones count from the end, as in the original's configs)."""
    out = []
    for i in indices:
        j = int(i) + frames if int(i) < 0 else int(i)
        if not 0 <= j < frames:
            raise ConfigError(f"keyframe {i} is outside the clip of {frames} frames: keyframes count from 0 (or from "
                              f"-1 = the last frame) and must be below {frames}")
        if j in out:
            raise ConfigError(f"keyframe {i} is given twice (frame {j})")
        out.append(j)
    return out


def prepare_keyframes(model: SparseCtrl, base, keyframes: Mapping[int, object], frames: int, width: int, height: int
                      ) -> dict[int, torch.Tensor]:
    """{frame: condition (c, h, w)} for `model` from keyframe images ((h, w, 3) uint8 / float in [0, 1], or a path):
    scaled to cover width x height and centre-cropped; RGB: VAE-encoded to latents (their mean, times the scaling
    factor: deterministic, where the original draws a sample); scribble: the pixels in [0, 1]."""
    from .media import fit_frames, read_frames
    from .vae import encode_video
    if not keyframes:
        raise ConfigError("SparseCtrl needs at least one keyframe (frame: image)")
    index = keyframe_indices(list(keyframes), frames)
    images = []
    for key in keyframes:
        image = keyframes[key]
        image = read_frames(image)[0] if isinstance(image, (str, bytes)) or hasattr(image, "__fspath__") else image
        image = torch.as_tensor(image)
        if image.ndim != 3 or image.shape[-1] not in (3, 4):
            raise ConfigError(f"keyframe {key} has shape {tuple(image.shape)}; expected (height, width, 3)")
        images.append(image[..., :3])
    param = next(model.parameters())
    if model.config.kind == "rgb":
        latents = encode_video(base.vae, torch.stack(images), len(images), width, height)[0]  # (4, n, h, w)
        conds = latents.movedim(1, 0)
    else:
        conds = fit_frames(torch.stack(images), width, height)  # (n, 3, height, width)
    if conds.shape[1] != model.config.condition_channels:
        raise ConfigError(f"keyframes have {conds.shape[1]} channels but this SparseCtrl takes "
                          f"{model.config.condition_channels}")
    return {j: c.to(param.device, param.dtype) for j, c in zip(index, conds)}


__all__ = ["KINDS", "SparseCtrl", "SparseCtrlConfig", "build_sparsectrl", "infer_config", "is_sparsectrl",
           "keyframe_condition", "keyframe_indices", "load_sparsectrl", "original_state_dict", "prepare_keyframes",
           "save_sparsectrl", "cldm_state_dict", "check_fits", "load_motion", "motion_config", "motion_paths",
           "read_sparsectrl"]
