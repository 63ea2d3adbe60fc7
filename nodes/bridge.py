"""The one module of the pack that touches ComfyUI. Every ComfyUI import happens inside a function, at run time,
so node definitions import (and are checked in CI) without ComfyUI, and nothing of ComfyUI loads at pack import.
Sanctioned extension points only: ModelPatcher clones, injections, model patches, wrappers, object patches."""

from __future__ import annotations

import os

MODULE_FOLDER = "animatediff_models"  # the folder names users' existing files already live in
LORA_FOLDER = "animatediff_motion_lora"


def register_model_folders() -> None:
    """Add the pack's model folders to ComfyUI's registry (no mkdir, no disk scan); keep any user-configured paths."""
    try:
        import folder_paths
    except ImportError:  # imported outside ComfyUI (tests, tools): nothing to register
        return
    for name in (MODULE_FOLDER, LORA_FOLDER):
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


def unet_dtype():
    """The dtype ComfyUI runs UNets in on this machine (fp16 on most GPUs, fp32 on a CPU)."""
    import comfy.model_management
    return comfy.model_management.unet_dtype()


def samplers_and_schedulers() -> tuple[list[str], list[str]]:
    try:
        import comfy.samplers
    except ImportError:
        return ["euler"], ["normal"]
    return list(comfy.samplers.KSampler.SAMPLERS), list(comfy.samplers.KSampler.SCHEDULERS)


def patcher_injection(inject, eject):
    import comfy.patcher_extension
    return comfy.patcher_extension.PatcherInjection(inject=inject, eject=eject)


def module_patcher(module, model):
    """The motion module as a ModelPatcher, so ComfyUI's memory management loads it beside `model`."""
    import comfy.model_patcher
    return comfy.model_patcher.ModelPatcher(module, load_device=model.load_device, offload_device=model.offload_device)


def add_wrapper(model, wrapper_type: str, key: str, wrapper) -> None:
    """wrapper_type: "diffusion_model" or "calc_cond_batch" (comfy.patcher_extension.WrappersMP)."""
    import comfy.patcher_extension
    kinds = {"diffusion_model": comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL,
             "calc_cond_batch": comfy.patcher_extension.WrappersMP.CALC_COND_BATCH}
    model.add_wrapper_with_key(kinds[wrapper_type], key, wrapper)


def model_sampling_with_betas(model, beta_schedule: str, linear_end: float):
    """A model_sampling object like the model's own (same prediction type), over AnimateDiff's training betas:
    `sqrt_linear` = linspace(0.00085, linear_end) (SD1.5 modules), `linear` = its sqrt-spaced square (SDXL beta)."""
    current = model.get_model_object("model_sampling")
    sampling = type(current)(model.model.model_config)
    sampling._register_schedule(given_betas=None, beta_schedule=beta_schedule, timesteps=1000,
                                linear_start=0.00085, linear_end=linear_end)
    return sampling


def sample(model, noise, steps, cfg, sampler_name, scheduler, positive, negative, latent, denoise, seed):
    """Stock KSampler sampling (comfy.sample.sample) with its progress bar and latent previews."""
    import comfy.sample
    import latent_preview
    callback = latent_preview.prepare_callback(model, steps)
    return comfy.sample.sample(model, noise, steps, cfg, sampler_name, scheduler, positive, negative, latent,
                               denoise=denoise, callback=callback, seed=seed)


def prepare_noise(latent, seed):
    import comfy.sample
    return comfy.sample.prepare_noise(latent, seed)


def fix_empty_latent_channels(model, latent):
    import comfy.sample
    return comfy.sample.fix_empty_latent_channels(model, latent)


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


def load_model(model) -> None:
    """Have ComfyUI's memory management put the model on its device, fully loaded (training reads every weight)."""
    import comfy.model_management
    comfy.model_management.load_models_gpu([model], force_full_load=True)


def training_callback(total: int):
    """on_step for motion_core.train: ComfyUI's progress bar, and ComfyUI's interrupt (raises
    InterruptProcessingException, after which the loop writes a resumable checkpoint)."""
    import comfy.model_management
    import comfy.utils
    bar = comfy.utils.ProgressBar(total)

    def on_step(step: int, loss: float) -> None:
        bar.update_absolute(step, total)
        comfy.model_management.throw_exception_if_processing_interrupted()
    return on_step


def prompt_server():
    """ComfyUI's running PromptServer, or None outside ComfyUI (routes are then not registered)."""
    try:
        from server import PromptServer
    except ImportError:
        return None
    return getattr(PromptServer, "instance", None)
