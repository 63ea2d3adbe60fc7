"""ComfyUI's release and server: which release this is, whether it has every extension point the nodes use, whether it
can train, its prompt server."""

from __future__ import annotations


OLDEST = (0, 3, 28)  # the oldest ComfyUI release with every extension point the nodes use (README, pyproject)


def comfy_version() -> tuple[int, ...] | None:
    """The running ComfyUI's release (comfyui_version.py, 0.3.10+), or None when it says none."""
    try:
        from comfyui_version import __version__
    except ImportError:
        return None
    try:
        return tuple(int(p) for p in __version__.split("-")[0].split(".")[:3])
    except ValueError:
        return None


def missing_extension_points() -> list[str]:
    """What the nodes need from ComfyUI and this ComfyUI lacks: [] when it has all of it (checked directly, so a
    development checkout between releases is judged by what it holds, not by its number)."""
    import comfy.model_patcher
    import comfy.patcher_extension
    missing = [f"comfy.patcher_extension.WrappersMP.{w.upper()}" for w in WRAPPERS
               if not hasattr(comfy.patcher_extension.WrappersMP, w.upper())]
    missing += [f"ModelPatcher.{m}" for m in ("add_wrapper_with_key", "remove_wrappers_with_key", "set_injections",
                                              "set_additional_models", "set_model_forward_timestep_embed_patch")
                if not hasattr(comfy.model_patcher.ModelPatcher, m)]
    return missing


def unsupported_comfy() -> str | None:
    """One console line when this ComfyUI is too old for the nodes (naming the release they need), else None;
    None outside ComfyUI."""
    if not in_comfy():
        return None
    try:
        missing = missing_extension_points()
    except ImportError as e:
        missing = [str(e)]
    if not missing:
        return None
    version = comfy_version()
    found = ".".join(map(str, version)) if version else "an unknown release (older than 0.3.10)"
    return (f"[motion_core] needs ComfyUI {'.'.join(map(str, OLDEST))} or newer; this is {found} (missing: "
            f"{', '.join(missing)}). Update ComfyUI; motion_core's nodes are not loaded.")


TRAIN_OLDEST = (0, 3, 41)  # the first release whose UNet blocks add residuals out of place (ComfyUI 520eb77b)


def training_unsupported() -> str | None:
    """Why this ComfyUI cannot train through its UNet (one sentence naming the release needed), or None. Before
    0.3.41 its transformer blocks add their residuals in place (`x += n`), which autograd refuses for the motion
    module's gradients ("modified by an inplace operation"). Judged by the release number (the change is inside a
    forward pass, not an extension point to look for): a development checkout between 0.3.40 and 0.3.41 may be
    refused though it could train."""
    version = comfy_version()
    if version is None or version >= TRAIN_OLDEST:
        return None
    return (f"Train Motion Module needs ComfyUI {'.'.join(map(str, TRAIN_OLDEST))} or newer: this is "
            f"{'.'.join(map(str, version))}, whose UNet adds residuals in place, which breaks the gradients the "
            "motion module learns from. Update ComfyUI to train; sampling works on this release.")


def in_comfy() -> bool:
    """Whether ComfyUI's modules can be imported (False in tests and tools that import the pack alone)."""
    try:
        import folder_paths  # noqa: F401
    except ImportError:
        return False
    return True


WRAPPERS = ("outer_sample", "prepare_sampling", "calc_cond_batch", "diffusion_model")


def prompt_server():
    """ComfyUI's running PromptServer, or None outside ComfyUI (routes are then not registered)."""
    try:
        from server import PromptServer
    except ImportError:
        return None
    return getattr(PromptServer, "instance", None)
