"""The image model's VAE for the standalone paths (generate, SparseCtrl keyframes, training): latents to frames in
chunks of frames, and a video's frames to latents. Below both the pipeline and SparseCtrl, which need it.

An fp16 VAE whose config says `force_upcast` (SDXL's: its activations overflow fp16 and the frames come out black)
runs in fp32 while it works, as diffusers' pipelines upcast it (`vae_precision`)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch
from einops import rearrange
from tqdm.auto import tqdm

from .errors import ConfigError


@contextlib.contextmanager
def vae_precision(vae):
    """Within this block the VAE runs in its working dtype: fp32 when it is stored in fp16 and its config says
    force_upcast, else its own (put back on exit)."""
    upcast = vae is not None and next(vae.parameters()).dtype == torch.float16 and \
        bool(getattr(vae.config, "force_upcast", False))
    if upcast:
        vae.to(torch.float32)
    try:
        yield
    finally:
        if upcast:
            vae.to(torch.float16)


def decode(vae, latents: torch.Tensor, chunk: int = 8, progress: bool = False) -> torch.Tensor:
    """(1, 4, f, h, w) latents -> (f, 8h, 8w, 3) float32 in [0, 1], decoding `chunk` frames at a time; without a
    VAE (pixel space) the latents are the frames in [-1, 1]."""
    if vae is None:
        return rearrange((latents / 2 + 0.5).clamp(0, 1), "b c f h w -> (b f) h w c").float().cpu()
    out = []
    with vae_precision(vae):
        dtype = next(vae.parameters()).dtype
        z = rearrange(latents, "b c f h w -> (b f) c h w").to(dtype) / vae.config.scaling_factor
        for start in tqdm(range(0, z.shape[0], chunk), desc="decoding", unit="chunk", disable=not progress,
                          leave=False):
            x = vae.decode(z[start:start + chunk]).sample
            out.append(rearrange((x / 2 + 0.5).clamp(0, 1), "f c h w -> f h w c").float().cpu())
    return torch.cat(out)


def encode_video(vae, video, frames: int, width: int, height: int, chunk: int = 8) -> torch.Tensor:
    """The first `frames` frames of `video` (a file, or (f, h, w, 3) frames), resized and centre-cropped to
    width x height, as latents (1, 4, f, h/8, w/8) scaled by the VAE's scaling factor (the latent mean)."""
    from .media import fit_frames, read_frames
    images = read_frames(video) if isinstance(video, (str, Path)) else video
    images = torch.as_tensor(images)
    if images.ndim != 4 or images.shape[-1] not in (3, 4):
        raise ConfigError(f"init video frames have shape {tuple(images.shape)}; expected (frames, height, width, 3)")
    if images.shape[0] < frames:
        raise ConfigError(f"the init video has {images.shape[0]} frames but {frames} were asked for: lower frames "
                          f"to {images.shape[0]} or use a longer video")
    images = fit_frames(images[:frames, ..., :3], width, height)  # (f, 3, h, w) float in [0, 1]
    if vae is None:  # pixel space
        return rearrange(images * 2 - 1, "(b f) c h w -> b c f h w", b=1)
    stored = next(vae.parameters()).dtype
    with vae_precision(vae):
        param = next(vae.parameters())
        x = (images * 2 - 1).to(param.device, param.dtype)
        latents = torch.cat([vae.encode(x[s:s + chunk]).latent_dist.mean for s in range(0, frames, chunk)])
    return rearrange(latents.to(stored) * vae.config.scaling_factor, "(b f) c h w -> b c f h w", b=1)
