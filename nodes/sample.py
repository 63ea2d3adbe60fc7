"""Sample Frames: text-to-animation and video-to-video for a model with a motion module, with context windows for
clips longer than the module's window, per-frame conditioning (prompt travel), FreeNoise and FreeInit."""

from __future__ import annotations

import torch

from . import bridge
from .context import FREE_INIT_INPUT, batch_offset, context_inputs, context_options, with_context
from .inject import KEY
from .types import CATEGORY


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
                **context_inputs(0),
                "denoise": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip":
                                      "1 = from noise; below 1, how much of a connected latent to redo (video-to-video)."}),
            },
            "optional": {"latent": ("LATENT", {"tooltip": "Frames to start from (video-to-video), one latent per frame; "
                                                 "a noise mask on it (Set Latent Noise Mask) keeps what lies "
                                                 "outside each frame's mask."}),
                         "free_init": FREE_INIT_INPUT, "meta_batch": bridge.META_BATCH},
            "hidden": bridge.META_HIDDEN,
        }

    def sample(self, model, positive, negative, frames, width, height, seed, steps, cfg, sampler_name, scheduler,
               context_length, context_overlap, context_schedule, closed_loop, fuse_method, noise_type, denoise,
               latent=None, free_init=None, meta_batch=None, prompt=None, unique_id=None):
        from ..motion_core import ConfigError
        info = model.model_options.get("transformer_options", {}).get(KEY)
        if info is None:
            raise ConfigError("the model has no motion module: connect it through Inject into Model first")
        if latent is not None:
            samples = latent["samples"]
        else:
            samples = torch.zeros([frames, 4, height // 8, width // 8], device="cpu")
        samples = bridge.fix_empty_latent_channels(model, samples)
        frames = samples.shape[0]
        windowed = bool(context_length) and frames > context_length
        if windowed:
            options = context_options(model, context_length, context_overlap, context_schedule, closed_loop,
                                      fuse_method)
        elif frames > info["pe_length"]:
            raise ConfigError(f"this motion module holds {info['pe_length']} frames; got {frames}: set "
                              f"context_length to at most {info['pe_length']} to sample longer clips in windows")
        # the model's own Context Options give way to these inputs (0: the whole clip at once)
        offset = batch_offset(meta_batch, prompt, unique_id, closed_loop)
        m = with_context(model, options if windowed else None, noise_type, free_init, offset)
        noise = bridge.prepare_noise(samples, seed)
        mask = latent.get("noise_mask") if latent is not None else None  # inpainting: one mask per frame, or one
        out = bridge.sample(m, noise, steps, cfg, sampler_name, scheduler, positive, negative, samples, denoise, seed,
                            noise_mask=mask)
        result = dict(latent) if latent is not None else {}
        result["samples"] = out
        return (result,)
