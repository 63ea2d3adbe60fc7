"""motion_core: the AnimateDiff motion module, exact to the original, with loading of every published format.

Plain torch + einops + safetensors; it never imports ComfyUI.
"""

from .config import MotionModuleConfig, infer_config, module_paths
from .errors import (CheckpointNotFoundError, ConfigError, CorruptCheckpointError, FrameCountError, LoRAMismatchError,
                     MotionCoreError, NotAMotionModuleError, UnknownLayoutError, UnsafeCheckpointError,
                     UnsupportedMethodError)
from .formats import (MotionLoRA, convert_file, describe, load_motion_lora, load_motion_module, merge_motion_lora,
                      save_motion_module)
from .module import MotionModule, VanillaTemporalModule, sinusoidal_pe
from .patch import MotionUNet, Patch, inject

__version__ = "0.1.0"

__all__ = [
    "CheckpointNotFoundError", "ConfigError", "CorruptCheckpointError", "FrameCountError", "LoRAMismatchError",
    "MotionCoreError", "MotionLoRA", "MotionModule", "MotionModuleConfig", "MotionUNet", "NotAMotionModuleError", "Patch",
    "UnknownLayoutError", "UnsafeCheckpointError", "UnsupportedMethodError", "VanillaTemporalModule", "convert_file", "describe",
    "infer_config", "inject", "load_motion_lora", "load_motion_module", "merge_motion_lora", "module_paths",
    "save_motion_module", "sinusoidal_pe",
]
