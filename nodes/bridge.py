"""The one module of the pack that touches ComfyUI. Every ComfyUI import happens inside a function, at run time,
so node definitions import (and are checked in CI) without ComfyUI; at pack import only the release check
(unsupported_comfy) looks at modules ComfyUI has already loaded.
Sanctioned extension points only: ModelPatcher clones, injections, model patches, wrappers, object patches."""

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


def default_dtypes():
    """(storage, compute): the dtypes ComfyUI gives a UNet on this machine by default (its --*-unet flags and the
    device): fp16 on most GPUs, fp32 on a CPU; fp8 storage computing in fp16 / bf16 / fp32 under the fp8 flags."""
    import comfy.model_management as mm
    storage = mm.unet_dtype()
    return storage, mm.unet_manual_cast(storage, mm.get_torch_device()) or storage


def model_dtypes(model):
    """(storage, compute) dtypes of a MODEL's UNet: its weights', and the one it runs in (manual cast)."""
    storage = model.model.get_dtype()
    return storage, model.model.manual_cast_dtype or storage


def operations(weight_dtype, compute_dtype):
    """ComfyUI's layer operations for weights stored in `weight_dtype` computing in `compute_dtype`, picked as core
    picks them for its models and ControlNets: they cast per layer when the two differ, and let ComfyUI load a model
    partly (layers left on the offload device cast their weights to the input's device as they run)."""
    import comfy.ops
    return comfy.ops.pick_operations(weight_dtype, compute_dtype, disable_fast_fp8=True)


def motion_for(module, storage, compute, requested=None):
    """The motion module as it runs beside a UNet stored in `storage` computing in `compute`: weights in
    motion_core.precision.module_dtype (or `requested`), position encodings in the compute dtype, layers from
    ComfyUI's operations for that pair. `module` itself when it is so already; else a copy (the input unchanged)
    that shares every tensor needing no cast."""
    from ..motion_core.formats import copy_module
    from ..motion_core.precision import module_dtype
    dtype = module_dtype(storage, compute, requested)
    ops = operations(dtype, compute)
    pe = {m.pe.dtype for m in module.modules() if hasattr(m, "pe")}
    if module.operations is ops and {p.dtype for p in module.parameters()} == {dtype} and pe <= {compute}:
        return module
    return copy_module(module, operations=ops, dtype=dtype, pe_dtype=compute)


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


WRAPPERS = ("outer_sample", "prepare_sampling", "calc_cond_batch", "diffusion_model")


def core_context_handler(model_options: dict):
    """ComfyUI's own context windows on a model (its Context Windows (Manual) node, comfy.context_windows, 0.3.51+):
    the handler, or None."""
    return model_options.get("context_handler")


def sampling_options(executor) -> dict:
    """The model options of the sampling an outer_sample wrapper runs in: its CFGGuider's, a copy made for this
    sampling (comfy.samplers.CFGGuider.sample), so a value set there lasts this sampling only ({} when the wrapper
    runs without a guider)."""
    guider = getattr(executor, "class_obj", None)
    return getattr(guider, "model_options", None) or {}


def sample_core_windows_over_frames(model_options: dict) -> bool:
    """Under core's Context Windows (Manual) for this sampling (`model_options` from sampling_options), its handler
    replaced by one that samples a batch of frames (frames_handler). Whether core's windows are on."""
    handler = core_context_handler(model_options)
    if handler is None:
        return False
    model_options["context_handler"] = frames_handler(handler)
    return True


def frames_handler(handler):
    """Core's context handler made able to sample a batch of frames along dim 0. Its step lookup (set_step,
    0.3.51-0.3.64 at least) compares the sampler's sigmas with the whole timestep tensor, one value per frame, and
    fails with a shape error on any clip of more frames than steps; this copy looks up one frame's timestep (every
    frame shares it). The handler itself when it is not such a handler or works along another dim."""
    base = type(handler)
    if getattr(handler, "dim", None) != 0 or not callable(getattr(base, "set_step", None)):
        return handler

    class FrameBatch(base):
        def set_step(self, timestep, model_options):
            return base.set_step(self, timestep.reshape(-1)[:1], model_options)
    fixed = FrameBatch.__new__(FrameBatch)
    fixed.__dict__.update(handler.__dict__)
    return fixed


def core_window(transformer_options: dict) -> list[int] | None:
    """The frame indices of the window ComfyUI's own context handler is sampling now (its IndexListContextWindow
    along the batch), or None outside its windows."""
    window = transformer_options.get("context_window")
    if window is None or getattr(window, "dim", 0) != 0 or not hasattr(window, "index_list"):
        return None
    return [int(i) for i in window.index_list]


def set_wrapper(model, wrapper_type: str, key: str, wrapper) -> None:
    """Attach `wrapper` to a ModelPatcher clone under `key`, replacing any this key held there before (None: only
    remove). wrapper_type: one of WRAPPERS (comfy.patcher_extension.WrappersMP's values)."""
    import comfy.patcher_extension
    kind = getattr(comfy.patcher_extension.WrappersMP, wrapper_type.upper())
    model.remove_wrappers_with_key(kind, key)
    if wrapper is not None:
        model.add_wrapper_with_key(kind, key, wrapper)


def slice_conds(cond_list, frames: int, window: tuple[int, ...]):
    """A cond list for one window: every per-frame tensor (batch == frames: prompt travel, area / mask
    conditioning, inpainting and other model conds) sliced to the window's frames. The input is not changed."""
    import torch

    from ..motion_core.context import window_index
    if cond_list is None:
        return None
    out = []
    for cond in cond_list:
        cond = dict(cond)
        for key, value in list(cond.items()):
            if isinstance(value, torch.Tensor) and value.ndim and value.shape[0] == frames:
                cond[key] = value.index_select(0, window_index(window, value.device))
            elif key == "model_conds":
                conds = dict(value)
                for name, c in conds.items():
                    t = getattr(c, "cond", None)
                    if isinstance(t, torch.Tensor) and t.ndim and t.shape[0] == frames:
                        conds[name] = c._copy_with(t.index_select(0, window_index(window, t.device)))
                cond[key] = conds
        out.append(cond)
    return out


def slices_itself(control) -> bool:
    """Controls that map their inputs to the window themselves: SparseCtrl (ours: its keyframes) and
    Advanced-ControlNet's (hints, keyframes and masks, from the ad_params each window publishes; its
    AdvancedControlBase keeps `sub_idxs`, `full_latent_length` and `ACN_VERSION`)."""
    return bool(getattr(control, "sparse", False)) or hasattr(control, "ACN_VERSION") or \
        (hasattr(control, "sub_idxs") and hasattr(control, "full_latent_length"))


class ControlWindows:
    """Core's control objects (ControlNet, T2I-Adapter, Control-LoRA, chained through previous_controlnet) see the
    frames of the window being sampled. Core keeps a hint batch's FIRST frames when it does not match the batch
    (controlnet.broadcast_image_to), so without this every window is steered by hint frames 0..n-1.

    For each window, every control whose hint has one image per frame gets the window's hint frames (and per-frame
    extra_concat inputs); after the window, the user's values are put back. Each frame's resized (and VAE-encoded)
    hint is kept for the rest of the sampling, so it is computed once, not per step; a T2I-Adapter's features are
    kept per window for the windows of the current step. One instance per sampling (reset() between)."""
    SWAPPED = ("cond_hint_original", "cond_hint", "extra_concat_orig", "control_input")

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.rows = {}  # id(control) -> {frame: that frame's resized / encoded hint, (c, h, w)}
        self.features = {}  # (id(control), window) -> a T2I-Adapter's control_input

    @staticmethod
    def controls(conds) -> list:
        """Every control object in the conds (positive and negative lists), chains followed, each once."""
        found, seen = [], set()
        for cond_list in conds:
            for cond in cond_list or ():
                control = cond.get("control")
                while control is not None and id(control) not in seen:
                    seen.add(id(control))
                    if not slices_itself(control):
                        found.append(control)
                    control = getattr(control, "previous_controlnet", None)
        return found

    @staticmethod
    def check(controls, frames: int) -> None:
        from ..motion_core.errors import ConfigError
        for c in controls:
            hint = getattr(c, "cond_hint_original", None)
            if hint is not None and hint.shape[0] not in (1, frames):
                raise ConfigError(f"a {type(c).__name__} hint has {hint.shape[0]} frames but the clip has {frames}: "
                                  f"give it {frames} hint images (one per frame) or one for every frame")

    def keep_windows(self, windows) -> None:
        """Drop T2I-Adapter features of windows this step does not sample (uniform schedules move windows)."""
        keep = {tuple(w) for w in windows}
        self.features = {k: v for k, v in self.features.items() if k[1] in keep}

    def enter(self, controls, frames: int, window: tuple[int, ...]) -> list:
        """Give each per-frame control the window's frames; returns what exit() needs to put them back."""
        import torch

        from ..motion_core.context import window_index
        saved = []
        for c in controls:
            hint = getattr(c, "cond_hint_original", None)
            if hint is None or hint.shape[0] != frames:  # no hint, or one image for every frame: as core does
                continue
            saved.append((c, {a: getattr(c, a) for a in self.SWAPPED if hasattr(c, a)}))
            c.cond_hint_original = hint.index_select(0, window_index(window, hint.device))
            c.extra_concat_orig = [e.index_select(0, window_index(window, e.device)) if e.ndim and e.shape[0] == frames
                                   else e for e in c.extra_concat_orig]
            rows = self.rows.get(id(c), {})
            c.cond_hint = torch.stack([rows[f] for f in window]) if all(f in rows for f in window) else None
            if hasattr(c, "control_input"):
                c.control_input = self.features.get((id(c), tuple(window))) if c.cond_hint is not None else None
        return saved

    def exit(self, saved, window: list[int]) -> None:
        for c, values in saved:
            hint = c.cond_hint  # (batched_number x window frames, ...) once core has computed it for this window
            if hint is not None and hint.shape[0] >= len(window):
                rows = self.rows.setdefault(id(c), {})
                for i, f in enumerate(window):
                    if f not in rows:
                        rows[f] = hint[i].clone()
                if getattr(c, "control_input", None) is not None:
                    self.features[(id(c), tuple(window))] = c.control_input
            for attr, value in values.items():
                setattr(c, attr, value)


class SamplingRounds:
    """Run one sampling more than once from an outer_sample wrapper (FreeInit), and say how its sampler starts.

    `run(noise, sigmas)` calls the wrapper's executor again with the same latent, mask, callback and seed, putting
    back the guider's conds first (its inner_sample processes them in place). `to_inner` maps a result into the
    sampler's latent space (process_latent_in); `renoise(noise, clean)` is `clean` noised to `sigmas[0]` by the
    forward process (noise_scaling without max_denoise); the sampler itself starts from `a * noise + b * latent`
    (noise_scaling with KSAMPLER's max_denoise rule), with `latent` the sampling's latent in that space."""

    def __init__(self, executor, noise, latent_image, sampler, sigmas, args: tuple, kwargs: dict):
        import math

        import torch
        self.executor, self.latent_image, self.sampler, self.args, self.kwargs = executor, latent_image, sampler, \
            args, kwargs
        self.guider = executor.class_obj
        self.conds = {k: [c.copy() for c in v] for k, v in self.guider.conds.items()}
        patcher = self.guider.model_patcher
        self.sampling = patcher.get_model_object("model_sampling")
        self.to_inner = patcher.model.process_latent_in
        self.sigma = sigmas[:1].detach().float().cpu()
        top = float(self.sampling.sigma_max)
        max_denoise = math.isclose(top, float(self.sigma), rel_tol=1e-05) or float(self.sigma) > top
        one, zero = torch.ones(1, 1, 1, 1), torch.zeros(1, 1, 1, 1)
        self.a = float(self.sampling.noise_scaling(self.sigma, one.clone(), zero.clone(), max_denoise))
        self.b = float(self.sampling.noise_scaling(self.sigma, zero.clone(), one.clone(), max_denoise))
        nonzero = latent_image is not None and torch.count_nonzero(latent_image) > 0
        self.latent = self.to_inner(latent_image.float()) if nonzero else latent_image.float()  # as inner_sample

    def renoise(self, noise, clean):
        return self.sampling.noise_scaling(self.sigma.to(clean.device), noise.to(clean), clean, False)

    def run(self, noise, sigmas):
        self.guider.conds = {k: [c.copy() for c in v] for k, v in self.conds.items()}
        return self.executor(noise, self.latent_image, self.sampler, sigmas, *self.args, **self.kwargs)


def sparsectrl_controlnet(state_dict, config, unet_config: dict, dtype=None, compute=None, device=None):
    """ComfyUI's cldm ControlNet holding a SparseCtrl's image layers (motion_core.sparsectrl.SparseCtrlConfig,
    official keys), with its condition embedding as the file has it and SparseMotion modules inserted after each
    down-block ResBlock / SpatialTransformer (as the original; none after conv_in, downsamplers or in the middle).
    Weights stored in `dtype` (default fp32), run in `compute` (default: dtype): every layer, the motion modules'
    too, from ComfyUI's operations for that pair, so it casts per layer and loads partly as core's ControlNets do."""
    import torch
    from torch import nn

    import comfy.cldm.cldm
    import comfy.utils
    from comfy.ldm.modules.diffusionmodules.openaimodel import TimestepEmbedSequential

    from ..motion_core.control import MotionControl
    from ..motion_core.errors import UnknownLayoutError
    from ..motion_core.hosts.comfy import ComfyHost
    from ..motion_core.sparsectrl import SparseMotion, cldm_state_dict, load_motion, motion_config, motion_paths
    dtype = dtype or torch.float32
    compute = compute or dtype
    ops = operations(dtype, compute)
    cfg = {k: v for k, v in unet_config.items() if k != "out_channels"}
    cfg["in_channels"] = state_dict["conv_in.weight"].shape[1]
    cfg["dtype"] = dtype
    hint = config.condition_channels + 1
    model = comfy.cldm.cldm.ControlNet(hint_channels=hint, operations=ops, device=device, **cfg)
    width = cfg["model_channels"]
    conv = lambda a, b, stride=1: ops.conv_nd(2, a, b, 3, padding=1, stride=stride, dtype=dtype, device=device)  # noqa: E731
    if config.kind == "rgb":
        model.input_hint_block = TimestepEmbedSequential(conv(hint, width))
    else:
        w, layers = config.embedding_channels, []
        layers += [conv(hint, w[0]), nn.SiLU()]
        for a, b in zip(w[:-1], w[1:]):
            layers += [conv(a, a), nn.SiLU(), conv(a, b, 2), nn.SiLU()]
        layers.append(conv(w[-1], width))
        model.input_hint_block = TimestepEmbedSequential(*layers)
    mapped = cldm_state_dict(state_dict, comfy.utils.unet_to_diffusers(unet_config), config)
    try:
        model.load_state_dict(mapped, strict=True)
    except RuntimeError as e:
        raise UnknownLayoutError(f"the SparseCtrl does not fit ComfyUI's ControlNet: {str(e)[:600]}") from None
    motion = load_motion(state_dict, SparseMotion(motion_config([width * m for m in cfg["channel_mult"]],
                                                                cfg["num_res_blocks"][0], config), ops), dtype, compute)
    control = MotionControl()
    for path, point in ComfyHost.points(model, motion_paths(motion.config)).items():
        ComfyHost.attach(point, motion.get_submodule(path), control)
    model.motion = motion  # registered, so it moves and casts with the ControlNet
    return model.eval()


_SPARSE_CONTROL = []


def sparsectrl_control_class():
    """comfy.controlnet.ControlNet for SparseCtrl (defined once, on first use): chained, strength and start / end
    percent as core's ControlNet; its keyframes instead of a hint. get_control runs before the UNet call (outside the
    Inject node's diffusion_model wrapper), so it sets the frame count itself, zeroes the noisy sample as the official
    files do, builds each window's condition and mask from ad_params (a window without a keyframe gets no residuals,
    as generate does), and VAE-encodes RGB keyframes at the sampling's latent size (cached)."""
    if _SPARSE_CONTROL:
        return _SPARSE_CONTROL[0]
    import torch
    from einops import rearrange

    import comfy.controlnet
    import comfy.model_management
    import comfy.utils

    from ..motion_core.frames import frames_context
    from ..motion_core.sparsectrl import keyframe_condition, keyframe_indices

    class SparseCtrlControl(comfy.controlnet.ControlNet):
        sparse = True  # ControlWindows leaves it alone: it maps keyframes to windows itself

        def __init__(self, control_model, config, load_device=None, manual_cast_dtype=None):
            super().__init__(control_model, load_device=load_device, manual_cast_dtype=manual_cast_dtype,
                             extra_conds=[])
            self.sparse_config, self.images, self.indices, self.prepared, self.model_latent_format = \
                config, None, [], {}, None

        def set_keyframes(self, images, indices, strength, percent_range, vae):
            self.images, self.indices, self.strength, self.timestep_percent_range, self.vae = \
                images, list(indices), strength, percent_range, vae
            return self

        def copy(self):
            c = SparseCtrlControl(None, self.sparse_config, self.load_device, self.manual_cast_dtype)
            c.control_model, c.control_model_wrapped = self.control_model, self.control_model_wrapped
            self.copy_to(c)
            c.set_keyframes(self.images, self.indices, self.strength, self.timestep_percent_range, self.vae)
            return c

        def pre_run(self, model, percent_to_timestep_function):
            super().pre_run(model, percent_to_timestep_function)
            self.model_latent_format = model.latent_format

        def cleanup(self):
            self.prepared = {}
            super().cleanup()

        def _keyframes(self, h: int, w: int, device, dtype):
            """(n, c, h', w') conditions at this latent size: scribbles in pixels (x8), RGB as latents."""
            if (h, w) not in self.prepared:
                pixels = self.images.movedim(-1, 1)  # (n, 3, H, W) in [0, 1]
                factor = self.sparse_config.factor * (1 if self.sparse_config.kind == "scribble" else 8)
                pixels = comfy.utils.common_upscale(pixels, w * factor, h * factor, "bilinear", "center")
                if self.sparse_config.kind == "rgb":
                    loaded = [m for m in comfy.model_management.loaded_models(only_currently_used=True)
                              if m is not None]  # (a model collected since it loaded leaves None there)
                    latents = self.vae.encode(pixels.movedim(1, -1)[..., :3])
                    comfy.model_management.load_models_gpu(loaded)
                    pixels = self.model_latent_format.process_in(latents)
                self.prepared[(h, w)] = pixels.to(device, dtype)
            return self.prepared[(h, w)]

        def get_control(self, x_noisy, t, cond, batched_number, transformer_options):
            prev = None
            if self.previous_controlnet is not None:
                prev = self.previous_controlnet.get_control(x_noisy, t, cond, batched_number, transformer_options)
            limited = tuple(self.timestep_percent_range) != (0.0, 1.0)  # else no timestep is read (a host sync)
            if limited and self.timestep_range is not None and \
                    (t[0] > self.timestep_range[0] or t[0] < self.timestep_range[1]):
                return prev
            frames = x_noisy.shape[0] // batched_number
            params = transformer_options.get("ad_params") or {}
            window, length = params.get("sub_idxs"), params.get("full_length")
            if window is None or len(window) != frames:
                window, length = list(range(frames)), frames
            frames_of = keyframe_indices(self.indices, length)
            if not any(f in frames_of for f in window):
                return prev
            dtype = self.manual_cast_dtype or self.control_model.dtype
            keys = self._keyframes(*x_noisy.shape[-2:], x_noisy.device, dtype)
            hint, mask = keyframe_condition(dict(zip(frames_of, keys)), window, keys, clips=batched_number)
            hint = rearrange(torch.cat([hint, mask], dim=1), "b c f h w -> (b f) c h w")
            text = cond.get("crossattn_controlnet", cond["c_crossattn"])  # as core's ControlNet reads it
            context = comfy.model_management.cast_to_device(text, x_noisy.device, dtype)
            timestep = self.model_sampling_current.timestep(t).float()
            with frames_context(frames, window=window, length=length):
                control = self.control_model(x=torch.zeros_like(x_noisy, dtype=dtype), hint=hint,
                                             timesteps=timestep, context=context)
            return self.control_merge(control, prev, output_dtype=x_noisy.dtype)

    _SPARSE_CONTROL.append(SparseCtrlControl)
    return SparseCtrlControl


def load_sparsectrl_control(path: str, model):
    """A SparseCtrl file (read safely) as a SparseCtrl control for the MODEL's UNet (its config and dtype)."""
    from ..motion_core.precision import module_dtype
    from ..motion_core.sparsectrl import check_fits, infer_config, read_sparsectrl
    sd, heads = read_sparsectrl(path)
    unet_config = dict(model.model.model_config.unet_config)
    check_fits(sd, len(unet_config.get("channel_mult", ())), unet_config.get("model_channels"),
               unet_config.get("context_dim"), "SDXL" if unet_config.get("adm_in_channels") else "SD1.5")
    config = infer_config(sd, heads or 8)
    storage, compute = model_dtypes(model)
    dtype = module_dtype(storage, compute)  # as the motion module: never fp8 unasked
    control_model = sparsectrl_controlnet({k: v.to(dtype) for k, v in sd.items()}, config, unet_config, dtype=dtype,
                                          compute=compute)
    return sparsectrl_control_class()(control_model, config, load_device=model.load_device,
                                      manual_cast_dtype=compute if compute != dtype else None)


def attach_control(conditioning, control, images, indices, strength: float, percent_range, vae):
    """Conditioning with a copy of `control` (keyframes set) chained onto each entry's control, as core's Apply
    ControlNet (Advanced) does."""
    out, copies = [], {}
    for text, options in conditioning:
        options = options.copy()
        previous = options.get("control")
        if previous not in copies:
            copies[previous] = control.copy().set_keyframes(images, indices, strength, percent_range, vae)
            copies[previous].set_previous_controlnet(previous)
        options["control"] = copies[previous]
        options["control_apply_to_uncond"] = False
        out.append([text, options])
    return out


def model_sampling_with_betas(model, beta_schedule: str, linear_end: float):
    """A model_sampling object like the model's own (same prediction type), over AnimateDiff's training betas:
    `sqrt_linear` = linspace(0.00085, linear_end) (SD1.5 modules), `linear` = its sqrt-spaced square (SDXL beta),
    `lcm` = sqrt_linear betas on LCM's distilled timesteps with LCM's boundary conditions (AnimateLCM), as core's
    ModelSamplingDiscrete node builds it for "lcm"."""
    if beta_schedule == "lcm":
        import copy

        from comfy_extras.nodes_model_advanced import LCM, ModelSamplingDiscreteDistilled

        class AnimateLCMSampling(ModelSamplingDiscreteDistilled, LCM):
            pass
        config = copy.copy(model.model.model_config)
        config.sampling_settings = {**config.sampling_settings, "beta_schedule": "sqrt_linear",
                                    "linear_start": 0.00085, "linear_end": linear_end}
        return AnimateLCMSampling(config)
    current = model.get_model_object("model_sampling")
    sampling = type(current)(model.model.model_config)
    sampling._register_schedule(given_betas=None, beta_schedule=beta_schedule, timesteps=1000,
                                linear_start=0.00085, linear_end=linear_end)
    return sampling


def sample(model, noise, steps, cfg, sampler_name, scheduler, positive, negative, latent, denoise, seed,
           noise_mask=None):
    """Stock KSampler sampling (comfy.sample.sample) with its progress bar and latent previews."""
    import comfy.sample
    import latent_preview
    callback = latent_preview.prepare_callback(model, steps)
    return comfy.sample.sample(model, noise, steps, cfg, sampler_name, scheduler, positive, negative, latent,
                               denoise=denoise, noise_mask=noise_mask, callback=callback, seed=seed)


META_BATCH = ("VHS_BatchManager", {"tooltip": "VideoHelperSuite's Meta Batch Manager, when it samples this clip in "
                                     "batches: each batch's starting noise is then that batch's frames of the whole "
                                     "clip's noise (the noise, its shape over windows and FreeNoise carry across "
                                     "batches). Windows never span two batches."})
META_HIDDEN = {"prompt": "PROMPT", "unique_id": "UNIQUE_ID"}  # (to read the batch's number: VHS's protocol)


def meta_batch_offset(meta_batch, prompt, unique_id, input_name: str = "meta_batch") -> int:
    """The frames of the clip VideoHelperSuite's Meta Batch Manager (`meta_batch`, linked to this node's
    `input_name`) has already sampled: VHS re-queues the prompt once per batch, counting them in the manager node's
    `requeue` input. 0 without a manager."""
    if meta_batch is None or not isinstance(prompt, dict):
        return 0
    link = prompt.get(str(unique_id), {}).get("inputs", {}).get(input_name)
    if not isinstance(link, (list, tuple)) or not link:
        return 0
    requeue = prompt.get(str(link[0]), {}).get("inputs", {}).get("requeue", 0)
    return int(requeue) * int(getattr(meta_batch, "frames_per_batch", 0))


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
