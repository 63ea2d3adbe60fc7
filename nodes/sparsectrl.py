"""Load SparseCtrl and Apply SparseCtrl: AnimateDiff v3's keyframe control (RGB images or scribbles at chosen frames
steer the whole clip), on ComfyUI's own ControlNet, chained with other controls like core's Apply ControlNet."""

from __future__ import annotations

from . import bridge
from .types import CATEGORY, SPARSECTRL


def parse_indices(text: str) -> list[int]:
    """"0, 15" -> [0, 15]; negative indices count from the clip's end."""
    from ..motion_core import ConfigError
    try:
        indices = [int(p) for p in text.replace(";", ",").split(",") if p.strip()]
    except ValueError:
        raise ConfigError(f"keyframe_indices {text!r} is not a list of frame numbers, e.g. \"0, 15\" or \"0, -1\"") \
            from None
    if not indices:
        raise ConfigError("keyframe_indices is empty: give one frame number per keyframe image, e.g. \"0\"")
    if len(set(indices)) != len(indices):
        raise ConfigError(f"keyframe_indices {text!r} repeats a frame")
    return indices


class LoadSparseCtrl:
    DESCRIPTION = ("Load a SparseCtrl file from models/controlnet (v3_sd15_sparsectrl_rgb.ckpt for keyframe images, "
                   "v3_sd15_sparsectrl_scribble.ckpt for scribbles) for the connected SD1.5 model. Pickle files load "
                   "without running code.")
    CATEGORY = f"{CATEGORY}/loaders"
    RETURN_TYPES = (SPARSECTRL,)
    RETURN_NAMES = ("sparse_ctrl",)
    OUTPUT_TOOLTIPS = ("The SparseCtrl, ready for Apply SparseCtrl.",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        files = bridge.model_files(bridge.SPARSECTRL_FOLDER) if bridge.in_comfy() else []
        return {"required": {
            "sparsectrl_name": (files, {"tooltip": "A SparseCtrl file in models/controlnet."}),
            "model": ("MODEL", {"tooltip": "The SD1.5 model it will steer (its layout and precision are used)."}),
        }}

    def load(self, sparsectrl_name, model):
        return (bridge.load_sparsectrl_control(bridge.model_path(bridge.SPARSECTRL_FOLDER, sparsectrl_name), model),)


class ApplySparseCtrl:
    DESCRIPTION = ("Steer an animation with keyframes: each image of the batch is the keyframe of the frame at the same "
                   "place in keyframe_indices (\"0\" for image-to-video, \"0, -1\" for an in-between). Works with "
                   "Sample Frames and any sampler with context windows: a window gets the keyframes it holds. Chains "
                   "with other ControlNets.")
    CATEGORY = f"{CATEGORY}/conditioning"
    RETURN_TYPES = ("CONDITIONING", "CONDITIONING")
    RETURN_NAMES = ("positive", "negative")
    OUTPUT_TOOLTIPS = ("Positive conditioning with SparseCtrl.", "Negative conditioning with SparseCtrl.")
    FUNCTION = "apply"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "positive": ("CONDITIONING", {"tooltip": "The prompt's conditioning."}),
            "negative": ("CONDITIONING", {"tooltip": "The negative prompt's conditioning."}),
            "sparse_ctrl": (SPARSECTRL, {"tooltip": "From Load SparseCtrl."}),
            "images": ("IMAGE", {"tooltip": "Keyframe images (RGB SparseCtrl) or scribbles (scribble SparseCtrl), one "
                                 "per index."}),
            "keyframe_indices": ("STRING", {"default": "0", "tooltip":
                                            "The frame of each image, comma-separated: \"0\" (first frame), "
                                            "\"0, 15\", \"0, -1\" (first and last)."}),
            "strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 10.0, "step": 0.01, "tooltip":
                                   "Scale of SparseCtrl's residuals (1 = as trained)."}),
            "start_percent": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.001, "tooltip":
                                        "Fraction of the sampling at which it starts acting."}),
            "end_percent": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.001, "tooltip":
                                      "Fraction of the sampling at which it stops."}),
        }, "optional": {"vae": ("VAE", {"tooltip": "Needed by the RGB SparseCtrl: it encodes the keyframe images."})}}

    def apply(self, positive, negative, sparse_ctrl, images, keyframe_indices, strength, start_percent, end_percent,
              vae=None):
        from ..motion_core import ConfigError
        indices = parse_indices(keyframe_indices)
        if images.shape[0] != len(indices):
            raise ConfigError(f"{images.shape[0]} keyframe images but {len(indices)} keyframe_indices "
                              f"({keyframe_indices!r}): give one index per image")
        if sparse_ctrl.sparse_config.kind == "rgb" and vae is None:
            raise ConfigError("the RGB SparseCtrl encodes its keyframes with the VAE: connect the checkpoint's VAE")
        if start_percent > end_percent:
            raise ConfigError(f"start_percent={start_percent} is after end_percent={end_percent}")
        if strength == 0:
            return (positive, negative)
        span = (start_percent, end_percent)
        return (bridge.attach_control(positive, sparse_ctrl, images, indices, strength, span, vae),
                bridge.attach_control(negative, sparse_ctrl, images, indices, strength, span, vae))
