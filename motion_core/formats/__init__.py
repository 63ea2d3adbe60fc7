"""Checkpoint formats: reading (safely), layout detection, conversion, MotionLoRA, saving."""

from .files import RawCheckpoint, atomic_write, read_checkpoint
from .layouts import LAYOUTS, detect_layout, from_original, to_original
from .load import (LoadInfo, adapter_config, convert_file, copy_module, describe, load_motion_module,
                   read_motion_state_dict, save_motion_module, with_loras)
from .lora import MotionLoRA, load_motion_lora, merge_motion_lora, parse_motion_lora

__all__ = ["LAYOUTS", "LoadInfo", "MotionLoRA", "RawCheckpoint", "adapter_config", "atomic_write", "convert_file",
           "copy_module", "describe", "detect_layout", "from_original", "load_motion_lora", "load_motion_module",
           "merge_motion_lora", "parse_motion_lora", "read_checkpoint", "read_motion_state_dict", "save_motion_module",
           "to_original", "with_loras"]
