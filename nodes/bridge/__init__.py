"""The one place in the pack that touches ComfyUI, a module per concept. Every ComfyUI import happens inside a
function, at run time, so node definitions import (and are checked in CI) without ComfyUI; at pack import only the
release check (unsupported_comfy) looks at modules ComfyUI has already loaded. Sanctioned extension points only:
ModelPatcher clones, injections, model patches, wrappers, object patches."""

from __future__ import annotations

from .host import (
    OLDEST, comfy_version, missing_extension_points, unsupported_comfy, TRAIN_OLDEST, training_unsupported,
    in_comfy, WRAPPERS, prompt_server,
)
from .files import (
    MODULE_FOLDER, LORA_FOLDER, SPARSECTRL_FOLDER, register_model_folders, model_files, model_path,
    mmap_torch_files, output_target, model_folder, training_folder,
)
from .models import (
    default_dtypes, model_dtypes, operations, motion_for, patcher_injection, module_patcher, load_model,
    model_sampling_with_betas,
)
from .windows import (
    core_context_handler, sampling_options, sample_core_windows_over_frames, frames_handler, core_window,
    set_wrapper, slice_conds, slices_itself, ControlWindows, SamplingRounds,
)
from .sparsectrl import (
    sparsectrl_controlnet, sparsectrl_control_class, load_sparsectrl_control, attach_control,
)
from .sampling import (
    samplers_and_schedulers, sample, META_BATCH, META_HIDDEN, meta_batch_offset, prepare_noise,
    fix_empty_latent_channels, training_callback,
)

__all__ = [
    "OLDEST", "comfy_version", "missing_extension_points", "unsupported_comfy", "TRAIN_OLDEST",
    "training_unsupported", "in_comfy", "WRAPPERS", "prompt_server", "MODULE_FOLDER", "LORA_FOLDER",
    "SPARSECTRL_FOLDER", "register_model_folders", "model_files", "model_path", "mmap_torch_files", "output_target",
    "model_folder", "training_folder", "default_dtypes", "model_dtypes", "operations", "motion_for",
    "patcher_injection", "module_patcher", "load_model", "model_sampling_with_betas", "core_context_handler",
    "sampling_options", "sample_core_windows_over_frames", "frames_handler", "core_window", "set_wrapper",
    "slice_conds", "slices_itself", "ControlWindows", "SamplingRounds", "sparsectrl_controlnet",
    "sparsectrl_control_class", "load_sparsectrl_control", "attach_control", "samplers_and_schedulers", "sample",
    "META_BATCH", "META_HIDDEN", "meta_batch_offset", "prepare_noise", "fix_empty_latent_channels",
    "training_callback",
]
