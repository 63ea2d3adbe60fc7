"""Prompt Travel: keyframed prompts -> a CONDITIONING batch with one entry per frame, interpolated between keyframes."""

from __future__ import annotations

from .types import CATEGORY


class PromptTravel:
    DESCRIPTION = ("Encode keyframed prompts, one per line as 'frame: prompt', into per-frame conditioning that "
                   "moves smoothly from one prompt to the next. Connect it as Sample Frames' positive.")
    CATEGORY = f"{CATEGORY}/conditioning"
    RETURN_TYPES = ("CONDITIONING",)
    OUTPUT_TOOLTIPS = ("One conditioning per frame (a batch as long as the clip).",)
    FUNCTION = "encode"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "clip": ("CLIP", {"tooltip": "The text encoder of the checkpoint."}),
            "text": ("STRING", {"multiline": True, "default": "0: a cat sitting on a wall\n12: a cat running",
                                "tooltip": "One keyframe per line, 'frame: prompt'; frames between keyframes blend "
                                           "the two, frames after the last keyframe keep it."}),
            "frames": ("INT", {"default": 16, "min": 1, "max": 4096, "tooltip":
                               "Length of the clip: the same number as Sample Frames' frames."}),
        }}

    def encode(self, clip, text, frames):
        import torch

        from ..motion_core import ConfigError
        from ..motion_core.prompts import interpolate, parse_schedule
        schedule = parse_schedule(text)
        conds, pooled = [], []
        for _, prompt in schedule:
            cond, pool = clip.encode_from_tokens(clip.tokenize(prompt), return_pooled=True)
            conds.append(cond[0])
            pooled.append(pool[0] if pool is not None else None)
        if len({c.shape for c in conds}) > 1:
            raise ConfigError("the keyframe prompts encode to different lengths (prompts over 75 tokens take more "
                              "chunks): shorten the long ones so every prompt fits the same number of chunks")
        keyframes = [frame for frame, _ in schedule]
        extra = {}
        if all(p is not None for p in pooled):
            extra["pooled_output"] = interpolate(torch.stack(pooled), keyframes, frames)
        return ([[interpolate(torch.stack(conds), keyframes, frames), extra]],)
