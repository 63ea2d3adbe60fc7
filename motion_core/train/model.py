"""What trains and what stays frozen: a new (zero-initialised) motion module for a host UNet, the VAE as a video
encoder, and gradient checkpointing that keeps the per-call frame count through recomputation."""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Callable, Sequence

import torch
import torch.utils.checkpoint
from einops import rearrange, repeat
from torch import nn

from ..config import VERSION_DEFAULTS, MotionModuleConfig
from ..errors import ConfigError
from ..frames import current_call, enter_call, exit_call, frames_context
from ..hosts import host_adapter
from ..module import MotionModule, VanillaTemporalModule
from ..patch import Patch, inject
from ..vae import vae_precision

NORM_GROUPS = 32  # the motion module's GroupNorm groups: fixed by the file format (not the host's own groups)

# captions -> (b, n, d) embeddings, or for SDXL ((b, n, d), pooled (b, 1280)); frozen, called without grad
EncodeText = Callable[[list[str]], torch.Tensor | tuple[torch.Tensor, torch.Tensor]]
# video (b, 3, f, H, W) in [-1, 1], one generator per clip (posterior sampling) -> latents (b, c, f, h, w)
EncodeVideo = Callable[[torch.Tensor, Sequence[torch.Generator]], torch.Tensor]


def new_motion_module(unet: nn.Module, *, version: str | None = None, heads: int = 8,
                      pe_length: int | None = None, seed: int | None = None) -> MotionModule:
    """A motion module shaped for `unet` (channels and modules per level read from its config), `proj_out`
    zero-initialised, so the injected UNet starts out computing exactly what the image model does.
    version: default v3 for an SD1.5-layout UNet (4 levels), sdxl-beta for an SDXL one (3 levels).
    seed: initialise from this seed (the global RNG is left as it was); None draws from the global RNG."""
    host = host_adapter(unet)
    host_family = "sdxl" if host.levels(unet) == 3 else "sd15"
    version = version or {"sd15": "v3", "sdxl": "sdxl-beta"}[host_family]
    if version not in VERSION_DEFAULTS:
        raise ConfigError(f"version {version!r} is not one of {sorted(VERSION_DEFAULTS)}")
    family, default_pe, mid = VERSION_DEFAULTS[version]
    if family != host_family:
        raise ConfigError(f"version {version!r} is a {family} motion module but the UNet has the {host_family} "
                          f"layout ({host.levels(unet)} levels): pick a {host_family} version")
    channels, layers = _host_shape(unet)
    odd = [c for c in channels if c % NORM_GROUPS]
    if odd:  # the file format has no field for it: every loader builds GroupNorm(32, c)
        raise ConfigError(f"the UNet has {odd[0]} channels on a level; a motion module's GroupNorm has "
                          f"{NORM_GROUPS} groups in every AnimateDiff file, so every level needs a multiple of "
                          f"{NORM_GROUPS} channels")
    if len(channels) != host.levels(unet):
        raise ConfigError(f"{type(unet).__name__} has {host.levels(unet)} levels but {len(channels)} channel counts: "
                          "build the MotionModule yourself (motion_core.MotionModule(MotionModuleConfig(...)))")
    config = MotionModuleConfig(family=family, version=version, channels=channels, layers_per_block=layers,
                                mid_block=mid, heads=heads, pe_length=pe_length or default_pe,
                                norm_groups=NORM_GROUPS)
    if seed is None:
        return MotionModule(config)  # proj_out weight and bias are zeros (module.py)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return MotionModule(config)


def trainable_copy(module: MotionModule) -> MotionModule:
    """A copy of `module` to train: every tensor its own, made outside inference mode, so that training the copy
    leaves `module` bit-identical. ComfyUI loads models under torch.inference_mode(), and autograd refuses to train
    such tensors; `with_loras` shares them, so it is no substitute here."""
    with torch.inference_mode(False):
        with torch.device("meta"):
            twin = MotionModule(module.config)
        twin.load_state_dict({k: v.detach().clone() for k, v in module.state_dict().items()}, strict=True,
                             assign=True)
    info = getattr(module, "info", None)
    if info is not None:
        twin.info = dataclasses.replace(info, notes=list(info.notes), loras=list(info.loras))
    return twin.requires_grad_(False).eval()


def _host_shape(unet: nn.Module) -> tuple[tuple[int, ...], int]:
    """(channels per level, modules per level) of a diffusers or ComfyUI UNet."""
    if hasattr(unet, "config") and hasattr(unet.config, "block_out_channels"):  # diffusers
        channels, layers = tuple(unet.config.block_out_channels), unet.config.layers_per_block
    else:  # ComfyUI's openaimodel UNetModel
        channels = tuple(unet.model_channels * m for m in unet.channel_mult)
        layers = unet.num_res_blocks
        layers = layers[0] if len(set(layers)) == 1 else tuple(layers)
    if not isinstance(layers, int):
        raise ConfigError(f"layers_per_block={layers!r} differs per level in this UNet; a motion module has the "
                          "same number of modules on every level")
    return channels, layers


def vae_encoder(vae: nn.Module, scaling_factor: float | None = None) -> EncodeVideo:
    """A diffusers AutoencoderKL as `encode_video`: posterior sample (noise from each clip's own generator, so the
    result does not depend on batch size or process count) times the VAE's scaling factor (0.18215 for SD1.5)."""
    scale = scaling_factor if scaling_factor is not None else vae.config.scaling_factor

    @torch.no_grad()
    def encode(video: torch.Tensor, generators: Sequence[torch.Generator]) -> torch.Tensor:
        b = video.shape[0]
        with vae_precision(vae):  # fp32 for an fp16 VAE that says force_upcast (SDXL's)
            images = rearrange(video, "b c f h w -> (b f) c h w").to(vae.device, vae.dtype)
            posterior = vae.encode(images).latent_dist
        mean = rearrange(posterior.mean, "(b f) c h w -> b c f h w", b=b)
        std = rearrange(posterior.std, "(b f) c h w -> b c f h w", b=b)
        noise = torch.stack([torch.randn(mean.shape[1:], generator=g, dtype=torch.float32) for g in generators])
        return ((mean + std * noise.to(mean)) * scale).float().contiguous()  # rearrange leaves odd strides
    return encode


def _checkpoint_keeping_frames(function, *args):
    """torch.utils.checkpoint for the host's blocks; the recomputation in backward runs outside the MotionUNet
    call, so the call the forward saw (its frame count) is put back around it (hooks on resnets need it)."""
    call = current_call()

    def run(*inner):
        previous = enter_call(call)
        try:
            return function(*inner)
        finally:
            exit_call(previous)
    return torch.utils.checkpoint.checkpoint(run, *args, use_reentrant=False)


@contextlib.contextmanager
def gradient_checkpointing(unet: nn.Module, motion_module: MotionModule):
    """Recompute activations in backward: the host's resnets (diffusers' own switch) and every motion module.
    Undone on exit (per instance; nothing global)."""
    if not hasattr(unet, "enable_gradient_checkpointing"):
        raise ConfigError(f"{type(unet).__name__} has no gradient checkpointing switch: train without it")
    unet.enable_gradient_checkpointing(_checkpoint_keeping_frames)
    modules = [m for m in motion_module.modules() if isinstance(m, VanillaTemporalModule)]
    for m in modules:  # an instance attribute over the class method, removed again on exit
        m.residual = lambda x, frames, scale=1.0, m=m: torch.utils.checkpoint.checkpoint(
            VanillaTemporalModule.residual, m, x, frames, scale, use_reentrant=False)
    try:
        yield
    finally:
        for m in modules:
            del m.residual
        unet.disable_gradient_checkpointing()


class ComfyMotionUNet(nn.Module):
    """ComfyUI's openaimodel `UNetModel` (duck-typed, nothing imported) with motion modules inserted by `Patch`, in
    MotionUNet's calling convention `(sample (b, c, f, h, w), timestep (b,), text (b, n, d)) -> (b, c, f, h, w)`.
    The frame count reaches the layers as ComfyUI's own sampling passes it: `cond_or_uncond` and the
    forward_timestep_embed patch in transformer_options. Inputs are cast as ComfyUI's `_apply_model` casts them:
    sample and text to `dtype` (the compute dtype: ComfyUI's manual-cast dtype, else its UNet's dtype), timesteps
    float; the prediction comes back float32. `eject()` removes the layers again."""

    def __init__(self, unet: nn.Module, motion_module: MotionModule, dtype: torch.dtype | None = None):
        super().__init__()
        self.dtype = dtype or getattr(unet, "dtype", None) or next(unet.parameters()).dtype
        from ..hosts.comfy import MotionLayer, forward_timestep_embed_handler
        if getattr(unet, "num_classes", None) is not None:
            raise ConfigError("this ComfyUI model needs class / size conditioning (SDXL): train SDXL motion modules "
                              "with `python -m motion_core train` on a diffusers model")
        self.unet, self.motion_module = unet, motion_module
        self.patch = Patch(unet, motion_module)
        self.handler = (MotionLayer, forward_timestep_embed_handler)

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor, encoder_hidden_states: torch.Tensor,
                added_cond_kwargs=None) -> torch.Tensor:
        b, f = sample.shape[0], sample.shape[2]
        options = {"cond_or_uncond": [0] * b, "patches": {"forward_timestep_embed_patch": [self.handler]}}
        x = rearrange(sample, "b c f h w -> (b f) c h w").to(self.dtype)
        context = repeat(encoder_hidden_states, "b n d -> (b f) n d", f=f).to(x.device, self.dtype)
        with frames_context(f):  # v1's cross-frame GroupNorms read it
            out = self.unet(x, timesteps=timestep.repeat_interleave(f).float(), context=context,
                            transformer_options=options)
        return rearrange(out.float(), "(b f) c h w -> b c f h w", f=f)

    def eject(self) -> nn.Module:
        self.patch.remove()
        return self.unet


def motion_unet(unet: nn.Module, motion_module: MotionModule, dtype: torch.dtype | None = None) -> nn.Module:
    """The host with the module inserted, MotionUNet's calling convention; `.eject()` takes it out again. dtype: a
    ComfyUI host's compute dtype (default: its UNet's)."""
    if host_adapter(unet).name == "diffusers":
        return inject(unet, motion_module)
    return ComfyMotionUNet(unet, motion_module, dtype)
