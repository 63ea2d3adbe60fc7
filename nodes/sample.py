"""Sample Frames: text-to-animation and video-to-video for a model with a motion module, with context windows for
clips longer than the module's window, per-frame conditioning (prompt travel) and FreeNoise."""

from __future__ import annotations

import torch

from . import bridge
from .inject import KEY
from .types import CATEGORY

SCHEDULES = ("static", "uniform", "looped")
NOISE = ("independent", "freenoise")


def _slice_cond(cond_list, frames: int, index: torch.Tensor):
    """A cond list for one window: every per-frame tensor (batch == frames) sliced to the window's frames."""
    if cond_list is None:
        return None
    out = []
    for cond in cond_list:
        cond = dict(cond)
        for key, value in list(cond.items()):
            if isinstance(value, torch.Tensor) and value.ndim and value.shape[0] == frames:
                cond[key] = value.index_select(0, index.to(value.device))
            elif key == "model_conds":
                conds = dict(value)
                for name, c in conds.items():
                    t = getattr(c, "cond", None)
                    if isinstance(t, torch.Tensor) and t.ndim and t.shape[0] == frames:
                        conds[name] = c._copy_with(t.index_select(0, index.to(t.device)))
                cond[key] = conds
        out.append(cond)
    return out


def context_wrapper(options):
    """A calc_cond_batch wrapper: predictions per window of frames, fused per frame (motion_core.context)."""
    from ..motion_core.context import fuse_weights, windows

    def wrapper(executor, model, conds, x_in, timestep, model_options, *args, **kwargs):
        frames = x_in.shape[0]
        if frames <= options.length:
            return executor(model, conds, x_in, timestep, model_options, *args, **kwargs)
        transformer_options = model_options.setdefault("transformer_options", {})
        sigmas = transformer_options.get("sample_sigmas")
        step = 0
        if sigmas is not None:
            matches = torch.nonzero(torch.isclose(sigmas, timestep[:1].to(sigmas), rtol=1e-4))
            step = int(matches[0].item()) if matches.numel() else 0
        out = [torch.zeros_like(x_in) for _ in conds]
        total = torch.zeros(frames, dtype=x_in.dtype, device=x_in.device)
        for window in windows(frames, options, step):
            index = torch.tensor(window, device=x_in.device)
            transformer_options["ad_params"] = {"full_length": frames, "context_length": options.length,
                                                "sub_idxs": window, "video_length": len(window)}
            try:
                results = executor(model, [_slice_cond(c, frames, index) for c in conds], x_in.index_select(0, index),
                                   timestep.index_select(0, index), model_options, *args, **kwargs)
            finally:
                transformer_options.pop("ad_params", None)
            weight = fuse_weights(len(window), options.fuse).to(x_in)
            for i, result in enumerate(results):
                out[i].index_add_(0, index, result * weight.view(-1, *[1] * (x_in.ndim - 1)))
            total.index_add_(0, index, weight)
        return [o / total.view(-1, *[1] * (x_in.ndim - 1)) for o in out]
    return wrapper


class SampleFrames:
    DESCRIPTION = ("Sample an animation with a model from Inject into Model. Clips longer than the context length "
                   "are denoised in overlapping windows of frames and fused, so any length works. Batched "
                   "conditioning with one entry per frame (prompt travel) is followed frame by frame.")
    CATEGORY = f"{CATEGORY}/sampling"
    RETURN_TYPES = ("LATENT",)
    OUTPUT_TOOLTIPS = ("The animation's latents, one per frame; decode with VAE Decode.",)
    FUNCTION = "sample"

    @classmethod
    def INPUT_TYPES(cls):
        samplers, schedulers = bridge.samplers_and_schedulers()
        return {
            "required": {
                "model": ("MODEL", {"tooltip": "A model from Inject into Model."}),
                "positive": ("CONDITIONING", {"tooltip": "What to show; a batch of one per frame travels between prompts."}),
                "negative": ("CONDITIONING", {"tooltip": "What to avoid."}),
                "frames": ("INT", {"default": 16, "min": 1, "max": 4096, "tooltip":
                                   "Number of frames (ignored when a latent is connected: its batch is used)."}),
                "width": ("INT", {"default": 512, "min": 64, "max": 8192, "step": 8, "tooltip": "Width in pixels."}),
                "height": ("INT", {"default": 512, "min": 64, "max": 8192, "step": 8, "tooltip": "Height in pixels."}),
                "seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF, "control_after_generate": True,
                                 "tooltip": "Noise seed: the same seed gives the same animation."}),
                "steps": ("INT", {"default": 20, "min": 1, "max": 10000, "tooltip": "Denoising steps."}),
                "cfg": ("FLOAT", {"default": 7.5, "min": 0.0, "max": 100.0, "step": 0.1, "round": 0.01,
                                  "tooltip": "Classifier-free guidance: how strongly to follow the prompt."}),
                "sampler_name": (samplers, {"tooltip": "Sampling algorithm (as in KSampler)."}),
                "scheduler": (schedulers, {"tooltip": "Noise schedule spacing (as in KSampler)."}),
                "context_length": ("INT", {"default": 16, "min": 0, "max": 128, "tooltip":
                                           "Frames per window, at most the module's window (16 is the usual; 0 = "
                                           "no windows, the whole clip at once)."}),
                "context_overlap": ("INT", {"default": 4, "min": 0, "max": 127, "tooltip":
                                            "Frames shared by neighbouring windows: more = smoother seams, slower."}),
                "context_schedule": (SCHEDULES, {"tooltip": "static: fixed windows; uniform: windows that shift "
                                                 "every step; looped: windows wrap around for seamless loops."}),
                "closed_loop": ("BOOLEAN", {"default": False, "tooltip": "looped schedule: also join the last "
                                            "frames to the first."}),
                "fuse_method": (("pyramid", "flat"), {"tooltip": "How overlapping windows are blended: pyramid "
                                                      "weights frames by their distance from a window's edge."}),
                "noise_type": (NOISE, {"tooltip": "independent: fresh noise per frame (as KSampler); freenoise: "
                                       "windows start from shuffled copies of the first window's noise (steadier "
                                       "long clips)."}),
                "denoise": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip":
                                      "1 = from noise; below 1, how much of a connected latent to redo (video-to-video)."}),
            },
            "optional": {"latent": ("LATENT", {"tooltip": "Frames to start from (video-to-video), one latent per frame."})},
        }

    def sample(self, model, positive, negative, frames, width, height, seed, steps, cfg, sampler_name, scheduler,
               context_length, context_overlap, context_schedule, closed_loop, fuse_method, noise_type, denoise,
               latent=None):
        from ..motion_core import ConfigError
        from ..motion_core.context import ContextOptions, freenoise
        info = model.model_options.get("transformer_options", {}).get(KEY)
        if info is None:
            raise ConfigError("the model has no motion module: connect it through Inject into Model first")
        if latent is not None:
            samples = latent["samples"]
        else:
            samples = torch.zeros([frames, 4, height // 8, width // 8], device="cpu")
        samples = bridge.fix_empty_latent_channels(model, samples)
        frames = samples.shape[0]
        m = model
        if context_length and frames > context_length:
            if context_length > info["pe_length"]:
                raise ConfigError(f"context_length {context_length} is more than the motion module holds "
                                  f"({info['pe_length']} frames): set it to at most {info['pe_length']}")
            options = ContextOptions(length=context_length, overlap=context_overlap, schedule=context_schedule,
                                     closed_loop=closed_loop, fuse=fuse_method)
            m = model.clone()
            bridge.add_wrapper(m, "calc_cond_batch", KEY, context_wrapper(options))
        elif frames > info["pe_length"]:
            raise ConfigError(f"this motion module holds {info['pe_length']} frames; got {frames}: set "
                              f"context_length to at most {info['pe_length']} to sample longer clips in windows")
        noise = bridge.prepare_noise(samples, seed)
        if noise_type == "freenoise":
            length = context_length if context_length and frames > context_length else frames
            options = ContextOptions(length=length, overlap=min(context_overlap, length - 1))
            noise = freenoise(noise, options, generator=torch.Generator().manual_seed(seed), dim=0)
        out = bridge.sample(m, noise, steps, cfg, sampler_name, scheduler, positive, negative, samples, denoise, seed)
        result = dict(latent) if latent is not None else {}
        result["samples"] = out
        return (result,)
