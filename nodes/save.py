"""Save Animation: IMAGE frames -> GIF / WebP / MP4 in ComfyUI's output folder, with the workflow embedded."""

from __future__ import annotations

import os

from . import bridge
from .types import CATEGORY

FORMATS = ("webp", "gif", "mp4")


class SaveAnimation:
    DESCRIPTION = ("Save frames as an animated WebP, GIF or MP4 (H.264) in the output folder and show it. WebP and "
                   "GIF carry the workflow: drag the file back into ComfyUI to restore it (MP4: a .json beside it).")
    CATEGORY = f"{CATEGORY}/output"
    RETURN_TYPES = ()
    OUTPUT_NODE = True
    FUNCTION = "save"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "images": ("IMAGE", {"tooltip": "The frames, in order (e.g. from VAE Decode)."}),
                "filename_prefix": ("STRING", {"default": "motion_core/anim", "tooltip":
                                               "File name start; a number is added. A slash makes a subfolder."}),
                "format": (FORMATS, {"tooltip": "webp: small, keeps the workflow; gif: plays everywhere; mp4: "
                                     "H.264 video for editors and players."}),
                "fps": ("FLOAT", {"default": 8.0, "min": 0.1, "max": 240.0, "step": 0.1, "tooltip": "Frames per second."}),
                "loop": ("INT", {"default": 0, "min": 0, "max": 1000, "tooltip": "Plays: 0 = forever (WebP / GIF)."}),
                "quality": ("INT", {"default": 90, "min": 1, "max": 100, "tooltip": "WebP / MP4 quality."}),
            },
            "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"},
        }

    def save(self, images, filename_prefix, format, fps, loop, quality, prompt=None, extra_pnginfo=None):
        from ..motion_core.media import write_animation
        height, width = images.shape[1], images.shape[2]
        folder, base, counter, subfolder = bridge.output_target(filename_prefix, width, height)
        name = f"{base}_{counter:05}_.{format}"
        metadata = dict(extra_pnginfo or {})
        if prompt is not None:
            metadata["prompt"] = prompt
        write_animation(images, os.path.join(folder, name), fps=fps, loop=loop, quality=quality, metadata=metadata)
        entry = {"filename": name, "subfolder": subfolder, "type": "output"}
        # ComfyUI's front end plays animated WebP in the node and other animated outputs in a <video>; a <video> cannot
        # play a GIF, so js/motion_core.js shows GIFs in an <img> of its own. The queue history shows all three.
        return {"ui": {"images": [entry], "animated": (True,), "frame_rate": (fps,), "frames": (images.shape[0],)}}
