"""Standalone text-to-animation over diffusers components: `generate(base, motion_module, prompt, ...)`.

The loop is the original AnimateDiff pipeline's (and diffusers' AnimateDiffPipeline's): Gaussian latents
(1, 4, f, h/8, w/8) (pixel-space models without a VAE: (1, 3, f, h, w)) from a CPU generator seeded with `seed`,
classifier-free guidance over a [negative, positive] batch, the scheduler's step on the whole clip, VAE decoding at
the end. On top of it:
  - clips longer than a context window are denoised window by window and fused (`motion_core.context`);
  - per-frame prompts ("0: ..." / "32: ...") interpolate the keyframes' text embeddings;
  - video-to-video starts from the VAE-encoded frames of a video, noised to the timestep `strength` selects;
  - the VAE decodes in chunks of frames, so memory does not grow with the clip (`motion_core.vae`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from tqdm.auto import tqdm

from . import freeinit
from .context import ContextOptions, freenoise, sample_windows, starting_noise, windows
from .control import MotionControl
from .errors import ConfigError
from .frames import check_frames
from .module import MotionModule
from .patch import MotionUNet
from .prompts import interpolate, parse_schedule
from .schedule import make_scheduler
from .vae import decode, encode_video

# "default": independent per frame; "freenoise": shuffled repeats per window; "repeated_context": the first
# window's noise repeated; "constant": one noise for every frame (motion_core.context.starting_noise)
NOISE_TYPES = ("default", "freenoise", "repeated_context", "constant")
TRAINED_FRAMES = 16  # the clip length the published modules were trained on: the default context window


@dataclass
class Animation:
    frames: torch.Tensor  # (f, h, w, 3) float32 in [0, 1]
    latents: torch.Tensor  # (1, 4, f, h/8, w/8): the final latents, before decoding
    settings: dict[str, Any] = field(default_factory=dict)  # everything needed to reproduce it

    def save(self, path: str | Path, *, fps: float = 8.0, loop: int = 0, quality: int = 90) -> Path:
        """GIF / WebP / MP4 / PNG folder by suffix, with the settings embedded (and a JSON sidecar for MP4)."""
        from .media import write_animation
        return write_animation(self.frames, path, fps=fps, loop=loop, quality=quality,
                               metadata={"motion_core": self.settings})


def auto_context(frames: int, motion_module: MotionModule) -> ContextOptions | None:
    """Windows of the trained 16 frames (4 overlapping) when the clip is longer, else none."""
    length = min(TRAINED_FRAMES, motion_module.config.pe_length)
    return ContextOptions(length=length, overlap=min(4, length - 1)) if frames > length else None


def _check(frames, steps, guidance, width, height, strength, noise, decode_chunk):
    if not 1 <= frames <= 10_000:
        raise ConfigError(f"frames={frames} must be between 1 and 10000")
    if not 1 <= steps <= 1000:
        raise ConfigError(f"steps={steps} must be between 1 and 1000")
    if guidance < 0:
        raise ConfigError(f"guidance={guidance} must be at least 0 (1 or less turns classifier-free guidance off)")
    for name, v in (("width", width), ("height", height)):
        if v < 8 or v % 8 or v > 8192:
            raise ConfigError(f"{name}={v} must be a multiple of 8 between 8 and 8192 (the VAE works in 8x8 blocks)")
    if not 0 < strength <= 1:
        raise ConfigError(f"strength={strength} must be above 0 and at most 1 (1 = ignore the init video's content)")
    if noise not in NOISE_TYPES:
        raise ConfigError(f"noise {noise!r} is not one of {NOISE_TYPES}")
    if decode_chunk < 1:
        raise ConfigError(f"decode_chunk={decode_chunk} must be at least 1")


class _Text:
    """Positive and negative conditioning, per frame when the prompt has keyframes."""

    def __init__(self, base, prompt, negative_prompt: str, frames: int, width: int, height: int, cfg: bool):
        schedule = parse_schedule(prompt)
        late = [k for k, _ in schedule if k >= frames]
        if late:
            raise ConfigError(f"prompt keyframe {late[0]} is past the last frame ({frames - 1}): keyframes count "
                              "from 0 and must be below frames")
        keyframes = [k for k, _ in schedule]
        embeds, pooled = base.encode_prompt([text for _, text in schedule])  # (k, 77, d), SDXL: (k, 1280)
        if len(schedule) > 1 or keyframes[0] != 0:
            embeds = interpolate(embeds, keyframes, frames)[None]  # (1, f, 77, d)
            pooled = pooled and {"text_embeds": interpolate(pooled["text_embeds"], keyframes, frames)[None]}
        self.per_frame = embeds.ndim == 4
        self.schedule, self.cfg = schedule, cfg
        self.cond, self.pooled = embeds, pooled
        if cfg:
            neg, neg_pooled = base.encode_prompt([negative_prompt])
            if self.per_frame:
                neg = neg[:, None].expand(-1, frames, -1, -1)
                neg_pooled = neg_pooled and {"text_embeds": neg_pooled["text_embeds"][:, None].expand(-1, frames, -1)}
            self.cond = torch.cat([neg, embeds])  # diffusers' order: [negative, positive]
            if pooled:
                self.pooled = {"text_embeds": torch.cat([neg_pooled["text_embeds"], pooled["text_embeds"]])}
        self.time_ids = None
        if base.family == "sdxl":  # original size, crop top-left, target size
            ids = torch.tensor([[height, width, 0, 0, height, width]], dtype=embeds.dtype, device=embeds.device)
            self.time_ids = ids.repeat(2 if cfg else 1, 1)

    def window(self, index: list[int]) -> tuple[torch.Tensor, dict | None]:
        text, pooled = self.cond, self.pooled
        if self.per_frame:
            text = text[:, index]
            pooled = pooled and {"text_embeds": pooled["text_embeds"][:, index]}
        if self.time_ids is None:
            return text, None
        return text, {**pooled, "time_ids": self.time_ids}


@contextlib.contextmanager
def _domain_adapter(unet, adapter, scale: float):
    """Merge an image-layer LoRA (the v3 domain adapter) into the UNet for the block, then restore the weights."""
    if adapter is None or scale == 0:
        yield
        return
    from .formats.lora import load_image_lora, merge_image_lora
    saved = merge_image_lora(unet, load_image_lora(adapter), scale)
    try:
        yield
    finally:
        for param, data in saved:
            param.data = data


@torch.no_grad()
def generate(base, motion_module: MotionModule, prompt: str | list[str], *, negative_prompt: str = "",
             frames: int = 16, steps: int = 25, guidance: float = 7.5, width: int = 512, height: int = 512,
             seed: int = 42, scheduler: str | None = None, context: ContextOptions | None | str = "auto",
             noise: str = "default", init_video=None, strength: float = 0.6, motion_scale=1.0,
             motion_strength=1.0, motion_mask=None, motion_start: float = 0.0, motion_end: float = 1.0,
             domain_adapter=None, domain_adapter_scale: float = 1.0,
             decode_chunk: int = 8, progress: bool = True, latents: torch.Tensor | None = None,
             callback: Callable[[dict], None] | None = None, free_init: int = 1,
             free_init_filter: str = "butterworth", free_init_order: int = 4, free_init_spatial: float = 0.25,
             free_init_temporal: float = 0.25, free_init_fast: bool = False, sparse_ctrl=None,
             keyframes: dict | None = None, sparse_strength: float = 1.0) -> Animation:
    """Animate `prompt` with `base` (a `motion_core.base.BaseModel`) and `motion_module`.

    prompt: one prompt, or keyframes "0: a cat sitting\\n32: a cat running" (a string or a list of lines).
    context: ContextOptions, None (no windows: the clip must fit the module), or "auto" (16-frame windows, 4 frames
      overlapping, when the clip is longer than 16 frames).
    noise: "default" (independent per frame), "freenoise" (windows start from shuffled, repeated noise),
      "repeated_context" (every window starts from the first window's noise) or "constant" (one noise, every frame).
    init_video: (f, h, w, 3) frames (uint8, or float in [0, 1]) or a video file: video-to-video; `strength` is the
      fraction of the schedule run (1 = ignore the video's content).
    latents: the initial noise (1, 4, frames, height/8, width/8) (no VAE: (1, 3, frames, height, width)) instead of
      drawing it from `seed`.
    motion_scale, motion_strength: a number, or per frame (a curve "0:1.0, 15:0.2", one value per frame, or a
      callable of the call); motion_mask: (h, w) or (frames, h, w) in [0, 1], where the motion acts; motion_start /
      motion_end: the fraction of the sampling in which the module acts (`motion_core.control.MotionControl`).
    callback: called after every step with {"i", "t", "x" (latents), "steps"} (k-diffusion style).
    free_init: FreeInit iterations (`motion_core.freeinit`; 1 = off): sample, re-noise the result, keep its low
      frequencies (filter gaussian / butterworth of `free_init_order` / ideal / box, stop frequencies
      `free_init_spatial` and `free_init_temporal`), take the high ones from fresh noise, sample again; with
      `free_init_fast`, early iterations take fewer steps (diffusers' use_fast_sampling). N iterations cost N samplings.
    sparse_ctrl: a SparseCtrl (`motion_core.sparsectrl`; or its file, loaded for `base`) steering the clip from
      `keyframes` {frame: image ((h, w, 3) or a path); negative frames count from the end}: RGB images for an RGB
      SparseCtrl, scribbles for a scribble one; its residuals are scaled by `sparse_strength`. With context windows,
      a window gets the keyframes it holds; a window without one runs without SparseCtrl.
    """
    _check(frames, steps, guidance, width, height, strength, noise, decode_chunk)
    freeinit.check(free_init, free_init_filter, free_init_order, free_init_spatial, free_init_temporal)
    if free_init > 1 and init_video is not None:
        raise ConfigError("FreeInit re-noises a text-to-video result to the first step; it does not apply to "
                          "video-to-video (init_video): leave free_init at 1 there")
    control = MotionControl(motion_strength, motion_scale, mask=motion_mask, start=motion_start, end=motion_end)
    control.check_length(frames)
    if sparse_ctrl is not None:
        from .sparsectrl import SparseCtrl, keyframe_indices, load_sparsectrl
        if not keyframes:
            raise ConfigError("sparse_ctrl needs keyframes {frame: image}: give at least one")
        keyframe_indices(list(keyframes), frames)  # refused before anything runs
        if not isinstance(sparse_ctrl, SparseCtrl):
            sparse_ctrl = load_sparsectrl(sparse_ctrl, base.unet)
        if not 0 <= sparse_strength <= 10:
            raise ConfigError(f"sparse_strength={sparse_strength} must lie in [0, 10] (1 = as trained)")
    elif keyframes:
        raise ConfigError("keyframes were given without sparse_ctrl: pass the SparseCtrl file or model too")
    if context == "auto":
        context = auto_context(frames, motion_module)
    window = context.length if context is not None else frames
    check_frames(window, motion_module.config.pe_length)
    device, dtype = base.device, base.dtype
    sched = make_scheduler(base.family, scheduler)
    cfg = guidance > 1.0
    text = _Text(base, prompt, negative_prompt, frames, width, height, cfg)

    sched.set_timesteps(steps, device=device)
    timesteps = sched.timesteps
    if init_video is not None:  # img2img timesteps, as diffusers computes them
        start = steps - min(int(steps * strength), steps)
        timesteps = timesteps[start * sched.order:]
        if len(timesteps) == 0:
            raise ConfigError(f"strength={strength} with steps={steps} leaves no step to run: raise either")
    generator = torch.Generator("cpu").manual_seed(seed)
    factor = getattr(base, "scale_factor", 8)
    shape = (1, base.unet.config.in_channels, frames, height // factor, width // factor)
    if latents is None:
        latents = torch.randn(shape, generator=generator, dtype=dtype).to(device)  # as diffusers draws it
    elif tuple(latents.shape) != shape:
        raise ConfigError(f"latents have shape {tuple(latents.shape)}; expected {shape} for these frames and size")
    else:
        latents = latents.to(device, dtype)
    if noise == "freenoise" and context is not None:
        latents = freenoise(latents, context, generator)
    elif noise in ("repeated_context", "constant"):
        latents = starting_noise(latents, noise, context or ContextOptions(length=frames, overlap=0), seed)
    initial = latents  # unit-variance starting noise (FreeInit re-noises with it)
    if init_video is None:
        latents = latents * sched.init_noise_sigma
    else:
        clean = encode_video(base.vae, init_video, frames, width, height, decode_chunk)
        latents = sched.add_noise(clean, latents, timesteps[:1])

    sparse = None
    if sparse_ctrl is not None:
        from .sparsectrl import prepare_keyframes
        sparse_ctrl = sparse_ctrl.to(device, dtype)
        sparse = (sparse_ctrl, prepare_keyframes(sparse_ctrl, base, keyframes, frames, width, height), sparse_strength)
    started = time.perf_counter()
    model = MotionUNet(base.unet, motion_module, control=control)
    try:
        with _domain_adapter(base.unet, domain_adapter, domain_adapter_scale):
            mask = None if free_init == 1 else freeinit.low_pass_filter(
                *shape[2:], free_init_filter, free_init_order, free_init_spatial, free_init_temporal)
            for iteration in range(free_init):
                if iteration > 0:  # FreeInit: the last result's low frequencies, fresh noise's high ones
                    fresh = torch.randn(shape, generator=generator, dtype=torch.float32).to(device)
                    latents = freeinit.reinitialise(latents, initial, fresh, sched.alphas_cumprod[-1], mask)
                    latents = latents.to(dtype) * sched.init_noise_sigma
                if free_init > 1:
                    sched.set_timesteps(freeinit.iteration_steps(steps, free_init, iteration, free_init_fast),
                                        device=device)
                    timesteps = sched.timesteps
                latents = _denoise(model, sched, latents, timesteps, text, guidance, context, progress, callback,
                                   sparse)
    finally:
        model.eject()
    images = decode(base.vae, latents, decode_chunk, progress)
    settings = dict(prompt=prompt if isinstance(prompt, str) else "\n".join(prompt), negative_prompt=negative_prompt,
                    frames=frames, steps=steps, guidance=guidance, width=width, height=height, seed=seed,
                    scheduler=scheduler or type(sched).__name__, noise=noise,
                    context=None if context is None else dataclasses.asdict(context),
                    strength=strength if init_video is not None else None,
                    **{f"motion_{k}": v for k, v in control.describe().items()}, model=getattr(base, "source", ""),
                    free_init=None if free_init == 1 else dict(iterations=free_init, filter=free_init_filter,
                                                               order=free_init_order, spatial=free_init_spatial,
                                                               temporal=free_init_temporal, fast=free_init_fast),
                    motion_module=getattr(getattr(motion_module, "info", None), "path", None),
                    sparse_ctrl=None if sparse is None else dict(kind=sparse[0].config.kind, keyframes=sorted(sparse[1]),
                                                                 strength=sparse_strength),
                    seconds=round(time.perf_counter() - started, 2))
    return Animation(images, latents, settings)


def _denoise(model, sched, latents, timesteps, text: _Text, guidance, context, progress, callback, sparse=None):
    frames = latents.shape[2]
    bar = tqdm(timesteps, desc="sampling", unit="step", disable=not progress)
    for i, t in enumerate(bar):
        def predict(x: torch.Tensor, index: list[int]) -> torch.Tensor:
            x_in = torch.cat([x] * 2) if text.cfg else x
            x_in = sched.scale_model_input(x_in, t)
            cond, added = text.window(index)
            extra = {}
            if sparse is not None and any(i in sparse[1] for i in index):  # a window without keyframes: none
                from .sparsectrl import keyframe_condition
                ctrl, keys, strength = sparse
                hint, mask = keyframe_condition(keys, index, x_in, clips=x_in.shape[0])
                down, mid = ctrl(x_in, t, cond, hint, mask, strength)
                extra = {"down_block_additional_residuals": down, "mid_block_additional_residual": mid}
            eps = model(x_in, t, cond, added_cond_kwargs=added, window=index, length=frames, **extra)
            if not text.cfg:
                return eps
            uncond, positive = eps.chunk(2)
            return uncond + guidance * (positive - uncond)

        if context is None:
            eps = predict(latents, list(range(frames)))
        else:
            found = windows(frames, context, i)
            inner = tqdm(total=len(found), desc=f"step {i + 1} windows", unit="window", leave=False,
                         disable=not progress or len(found) < 2)

            def counted(x, index):
                out = predict(x, index)
                inner.update()
                return out
            eps = sample_windows(counted, latents, context, step=i, dim=2)
            inner.close()
        latents = sched.step(eps, t, latents).prev_sample
        if callback is not None:
            callback({"i": i, "t": t, "x": latents, "steps": len(timesteps)})
    return latents
