"""Load Motion Module, Apply Motion LoRA, Inject into Model."""

from __future__ import annotations

from ..motion_core.precision import WEIGHT_DTYPES
from . import bridge
from .types import CATEGORY, MOTION_MODULE

SCHEDULES = {  # beta schedule the module was trained with, in ComfyUI's names (bridge.model_sampling_with_betas)
    "auto": None,  # motion_core.schedule.MODULE_SCHEDULES by the module's version
    "sqrt_linear (AnimateDiff SD1.5)": ("sqrt_linear", 0.012),
    "linear (AnimateDiff SDXL beta)": ("linear", 0.020),
    "linear (HotShot-XL, SDXL's own)": ("linear", 0.012),
    "lcm (AnimateLCM)": ("lcm", 0.012),
    "keep the model's": "keep",
}


class LoadMotionModule:
    DESCRIPTION = ("Load an AnimateDiff motion module from models/animatediff_models: original v1/v2/v3, SDXL beta, "
                   "AnimateLCM, Lightning, HotShot-XL or diffusers files, told apart automatically. Pickle files "
                   "load without running code.")
    CATEGORY = f"{CATEGORY}/loaders"
    RETURN_TYPES = (MOTION_MODULE,)
    RETURN_NAMES = ("motion_module",)
    OUTPUT_TOOLTIPS = ("The motion module, ready for Inject into Model.",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model_name": (bridge.model_files(bridge.MODULE_FOLDER) if bridge.in_comfy() else [], {
            "tooltip": "A motion module file in models/animatediff_models (e.g. v3_sd15_mm.ckpt, mm_sd_v15_v2.ckpt)."})}}

    def load(self, model_name):
        from ..motion_core import load_motion_module
        from ..motion_core.formats import read_checkpoint
        # read as ComfyUI reads model files (its --mmap-torch-files flag decides whether pickles are mapped), and
        # made as models run here by default (dtype and ComfyUI's layer operations: motion_core.precision): Inject
        # then uses it as it is, unless its model was loaded in other dtypes
        raw = read_checkpoint(bridge.model_path(bridge.MODULE_FOLDER, model_name), mmap=bridge.mmap_torch_files())
        module = bridge.motion_for(load_motion_module(raw), *bridge.default_dtypes())
        for note in module.info.notes:
            print(f"[motion_core] {model_name}: {note}")
        return (module,)


class ApplyMotionLoRA:
    DESCRIPTION = ("Merge a MotionLoRA (camera moves such as zoom or pan) from models/animatediff_motion_lora into a "
                   "motion module. Chain several; the input module is left as it was.")
    CATEGORY = f"{CATEGORY}/loaders"
    RETURN_TYPES = (MOTION_MODULE,)
    RETURN_NAMES = ("motion_module",)
    OUTPUT_TOOLTIPS = ("The motion module with the LoRA merged.",)
    FUNCTION = "apply"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "motion_module": (MOTION_MODULE, {"tooltip": "The motion module to add the LoRA to."}),
            "lora_name": (bridge.model_files(bridge.LORA_FOLDER) if bridge.in_comfy() else [], {
                "tooltip": "A MotionLoRA file in models/animatediff_motion_lora (e.g. v2_lora_ZoomIn.ckpt)."}),
            "strength": ("FLOAT", {"default": 1.0, "min": -2.0, "max": 2.0, "step": 0.05,
                                   "tooltip": "How much of the LoRA to merge: W += strength * up @ down."}),
        }}

    def apply(self, motion_module, lora_name, strength):
        from ..motion_core.formats import with_loras
        return (with_loras(motion_module, [(bridge.model_path(bridge.LORA_FOLDER, lora_name), strength)]),)


def per_frame(name: str, base: float, curve: str, values):
    """A MotionControl strength / scale from the node's inputs: `base` times the curve string or the per-frame
    values from another node (one of the two), or `base` alone."""
    from ..motion_core import ConfigError
    from ..motion_core.control import Curve, frame_values
    if values is not None and curve.strip():
        raise ConfigError(f"{name}_curve and {name}_values are both given: keep one ({name}_values comes from a "
                          f"linked node, {name}_curve from the text box)")
    if values is not None:
        return frame_values(values, f"{name}_values") * base
    return Curve.parse(curve, f"{name}_curve").scaled(base) if curve.strip() else base


def motion_control(strength, scale, strength_curve="", scale_curve="", strength_values=None, scale_values=None,
                   **kw):
    from ..motion_core.control import MotionControl
    return MotionControl(per_frame("strength", strength, strength_curve, strength_values),
                         per_frame("scale", scale, scale_curve, scale_values), **kw)


class InjectMotionModule:
    DESCRIPTION = ("Put a motion module into a model (a clone: the input model is not changed). Sample the result "
                   "with Sample Frames, or with KSampler on a batch of frames no longer than the module's window. "
                   "Optional: a mask (motion in one region), per-frame strength / scale curves, and the part of the "
                   "sampling in which the motion acts.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("MODEL",)
    OUTPUT_TOOLTIPS = ("The model with the motion module: its batch is a clip of frames.",)
    FUNCTION = "inject"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL", {"tooltip": "An SD1.5 or SDXL model matching the motion module's family."}),
            "motion_module": (MOTION_MODULE, {"tooltip": "From Load Motion Module."}),
            "scale": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 10.0, "step": 0.01, "tooltip":
                                "Motion amount: multiplies the temporal attention's keys (1 = as trained)."}),
            "strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip":
                                   "Blend: 0 = the plain image model, 1 = the full motion module."}),
            "beta_schedule": (list(SCHEDULES), {"default": "auto", "tooltip":
                              "Noise schedule: auto picks the one the module was trained with (sqrt_linear for "
                              "AnimateDiff SD1.5 and Lightning, linear to 0.020 for the SDXL beta, SDXL's own for "
                              "HotShot-XL, lcm for AnimateLCM)."}),
        }, "optional": {
            "motion_mask": ("MASK", {"tooltip": "Where the motion acts: white = full motion, black = the still image "
                                     "model, grey blends. One mask for every frame or one per frame; resized to "
                                     "each layer."}),
            "strength_curve": ("STRING", {"default": "", "tooltip":
                                          "Per-frame strength as frame:value keyframes, interpolated between and held "
                                          "beyond, e.g. \"0:1.0, 15:0.2\"; multiplies strength. Empty = strength for "
                                          "every frame. Follows context windows."}),
            "scale_curve": ("STRING", {"default": "", "tooltip":
                                       "Per-frame scale as frame:value keyframes, e.g. \"0:1.0, 15:1.3\"; "
                                       "multiplies scale. Empty = scale for every frame."}),
            "strength_values": ("FLOAT,FLOATS", {"forceInput": True, "tooltip":
                                "Per-frame strength from another node: one number per frame (a FLOAT list, FLOATS, "
                                "a value schedule such as FizzNodes' or KJNodes'); multiplies strength. Instead of "
                                "strength_curve."}),
            "scale_values": ("FLOAT,FLOATS", {"forceInput": True, "tooltip":
                             "Per-frame scale from another node, one number per frame; multiplies scale. Instead of "
                             "scale_curve."}),
            "start_percent": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.001, "tooltip":
                                        "The motion starts acting at this fraction of the sampling (0 = from the "
                                        "first step); before it, the plain image model."}),
            "end_percent": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.001, "tooltip":
                                      "The motion stops acting at this fraction of the sampling (1 = to the end)."}),
            "weight_dtype": (list(WEIGHT_DTYPES), {"default": "auto", "tooltip":
                             "The motion module's weights: auto = the model's dtype (fp16 / bf16 / fp32; under fp8 "
                             "flags the dtype it computes in, so fp8 never quantises the module unasked); fp8_* = "
                             "store them in fp8 (half the memory of fp16, cast per layer as they run)."}),
        }}

    def inject(self, model, motion_module, scale, strength, beta_schedule, motion_mask=None, strength_curve="",
               scale_curve="", start_percent=0.0, end_percent=1.0, weight_dtype="auto", strength_values=None,
               scale_values=None):
        from .inject import injected_clone
        control = motion_control(strength, scale, strength_curve, scale_curve, strength_values, scale_values,
                                 mask=motion_mask, start=start_percent, end=end_percent)
        return (injected_clone(model, motion_module, scale, strength, SCHEDULES[beta_schedule], control,
                               weight_dtype=weight_dtype),)
