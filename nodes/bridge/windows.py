"""Context windows inside ComfyUI's sampling: core's own context handler, wrappers, conditioning and controls sliced
per window, sampling rounds."""

from __future__ import annotations


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

    from ...motion_core.context import window_index
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
        from ...motion_core.errors import ConfigError
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

        from ...motion_core.context import window_index
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
