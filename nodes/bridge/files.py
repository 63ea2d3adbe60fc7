"""ComfyUI's folders: where model files are found and where outputs and training runs are written."""

from __future__ import annotations

import os


MODULE_FOLDER = "animatediff_models"  # the folder names users' existing files already live in
LORA_FOLDER = "animatediff_motion_lora"
SPARSECTRL_FOLDER = "controlnet"  # where users keep v3_sd15_sparsectrl_*.ckpt (ComfyUI's own ControlNet folder)


def register_model_folders() -> None:
    """Add the pack's model folders to ComfyUI's registry (no mkdir, no disk scan); keep any user-configured paths."""
    try:
        import folder_paths
    except ImportError:  # imported outside ComfyUI (tests, tools): nothing to register
        return
    for name in (MODULE_FOLDER, LORA_FOLDER):  # (SPARSECTRL_FOLDER is ComfyUI's own "controlnet")
        default = os.path.join(folder_paths.models_dir, name)
        if name not in folder_paths.folder_names_and_paths:
            folder_paths.folder_names_and_paths[name] = ([default], set(folder_paths.supported_pt_extensions))
        elif default not in folder_paths.folder_names_and_paths[name][0]:
            folder_paths.folder_names_and_paths[name][0].append(default)


def model_files(folder: str) -> list[str]:
    import folder_paths
    return folder_paths.get_filename_list(folder)


def model_path(folder: str, name: str) -> str:
    import folder_paths
    return folder_paths.get_full_path_or_raise(folder, name)


def mmap_torch_files() -> bool:
    """Whether ComfyUI memory-maps .ckpt / .pt files (its --mmap-torch-files flag; off by default)."""
    import comfy.utils
    return bool(getattr(comfy.utils, "MMAP_TORCH_FILES", False))


def output_target(prefix: str, width: int, height: int) -> tuple[str, str, int, str]:
    """(folder, file name base, counter, subfolder) in ComfyUI's output folder, as core's savers number files."""
    import folder_paths
    folder, base, counter, subfolder, _ = folder_paths.get_save_image_path(
        prefix, folder_paths.get_output_directory(), width, height)
    return folder, base, counter, subfolder


def model_folder(folder: str) -> str:
    """The first (default) directory of a model folder, where new files go."""
    import folder_paths
    return folder_paths.get_folder_paths(folder)[0]


def training_folder(name: str) -> str:
    """Where a training run keeps its resume state and loss log: output/motion_core_train/<name> (not under
    models/, whose file lists would show resume.pt)."""
    import folder_paths
    return os.path.join(folder_paths.get_output_directory(), "motion_core_train", name)
