"""How Inject into Model patches a ComfyUI ModelPatcher clone (only sanctioned extension points):
  - set_injections: our layers go into the UNet when ComfyUI injects the model, and out again on eject;
  - set_additional_models: the motion module is loaded to the model's device by ComfyUI's memory management;
  - set_model_forward_timestep_embed_patch: ComfyUI calls our layers with transformer_options (frame count);
  - a diffusion_model wrapper: holds the call (frame count, the window's frames, the timestep) for the motion layers
    and v1's cross-frame GroupNorms, and publishes ad_params;
  - an outer_sample wrapper: a motion mask or per-frame values made for another frame count are refused before
    the first step; the clip's frame count is noted for the next one; core's context handler, if any, is given
    this sampling's batch of frames (bridge.frames_handler);
  - a calc_cond_batch wrapper: under ComfyUI's own context windows (Context Windows (Manual)), each window's frames
    are published as ad_params, as Context Options publishes its own: per-frame strength / scale, motion masks and
    the packs that read ad_params (Advanced-ControlNet, IPAdapter) follow those windows too;
  - add_object_patch("model_sampling"): the beta schedule the module was trained with."""

from __future__ import annotations

from . import bridge

KEY = "motion_core"


def injected_clone(model, motion_module, scale: float, strength: float, schedule, control=None,
                   weight_dtype: str = "auto"):
    """control: a motion_core.control.MotionControl (per-frame curves, a mask, start / end); None: `scale` and
    `strength` for every frame, pixel and step. weight_dtype: "auto" (motion_core.precision.module_dtype) or a name
    of motion_core.precision.WEIGHT_DTYPES."""
    from ..motion_core import ConfigError
    from ..motion_core.control import MotionControl
    from ..motion_core.precision import weight_dtype as dtype_named
    from ..motion_core.frames import Call, enter_call, exit_call, make_call
    from ..motion_core.hosts.comfy import MotionLayer, forward_timestep_embed_handler, frames_per_clip
    from ..motion_core.patch import Patch, check_compatible
    from ..motion_core.schedule import module_schedule

    unet = model.model.diffusion_model
    check_compatible(unet, motion_module)  # wrong family: refused now, naming both, not at sampling time
    config = motion_module.config
    # the dtypes and layer operations of this model (a copy where they differ: the loaded module stays as it was)
    motion_module = bridge.motion_for(motion_module, *bridge.model_dtypes(model), requested=dtype_named(weight_dtype))
    control = control or MotionControl(strength, scale)
    m = model.clone()
    state = {"frames": None}  # the patch while injected; the clip's frame count while sampling

    def inject(patcher):
        state["patch"] = Patch(patcher.model.diffusion_model, motion_module, control=control)

    def eject(patcher):
        patch = state.pop("patch", None)
        if patch is not None:
            patch.remove()

    def diffusion_model(executor, x, *args, **kwargs):
        options = kwargs.get("transformer_options", args[4] if len(args) > 4 else {})
        frames = frames_per_clip(x, options) or x.shape[0]
        params = options.setdefault("ad_params", {"full_length": frames, "context_length": frames, "sub_idxs": None,
                                                  "video_length": frames})
        if frames > config.pe_length and not control.off:
            raise ConfigError(f"this motion module holds {config.pe_length} frames; the batch has {frames}: use "
                              f"Sample Frames with a context length of at most {config.pe_length}")
        if control.constant:  # all the motion layers need: the frame count (this path compiles with fullgraph)
            call = Call(frames)
        else:  # per-frame values follow the window; start / end read the timestep, on its device (no host sync)
            window = params.get("sub_idxs")
            if window is not None and len(window) != frames:
                window = None  # another node's windows, not ours: the frames are taken as the clip's own
            length = params.get("full_length") if window is not None else frames
            timesteps = args[0] if args else kwargs.get("timesteps")
            call = make_call(frames, window=window, length=length, timestep=timesteps,
                             motion=control.active(timesteps))
        previous = enter_call(call)
        try:
            return executor(x, *args, **kwargs)
        finally:
            exit_call(previous)

    def outer_sample(executor, noise, *args, **kwargs):
        if not control.off:
            control.check_length(noise.shape[0])  # before the first step, naming both frame counts
        bridge.sample_core_windows_over_frames(bridge.sampling_options(executor))  # core's Context Windows (Manual)
        state["frames"] = noise.shape[0]
        try:
            return executor(noise, *args, **kwargs)
        finally:
            state["frames"] = None

    def calc_cond_batch(executor, model, conds, x_in, timestep, model_options, *args, **kwargs):
        options = model_options.get("transformer_options", {})
        window = bridge.core_window(options)
        if window is None or "ad_params" in options or state["frames"] is None or len(window) != x_in.shape[0]:
            return executor(model, conds, x_in, timestep, model_options, *args, **kwargs)
        options["ad_params"] = {"full_length": state["frames"], "context_length": len(window), "sub_idxs": window,
                                "video_length": len(window)}
        try:
            return executor(model, conds, x_in, timestep, model_options, *args, **kwargs)
        finally:
            options.pop("ad_params", None)

    m.set_injections(KEY, [bridge.patcher_injection(inject, eject)])
    m.set_additional_models(KEY, [bridge.module_patcher(motion_module, m)])
    m.set_model_forward_timestep_embed_patch((MotionLayer, forward_timestep_embed_handler))
    bridge.set_wrapper(m, "diffusion_model", KEY, diffusion_model)
    bridge.set_wrapper(m, "outer_sample", KEY, outer_sample)
    bridge.set_wrapper(m, "calc_cond_batch", KEY, calc_cond_batch)
    if schedule != "keep":
        if schedule is None:
            schedule = module_schedule(config.version)
        m.add_object_patch("model_sampling", bridge.model_sampling_with_betas(m, *schedule))
    m.model_options.setdefault("transformer_options", {})[KEY] = {"pe_length": config.pe_length,
                                                                 "family": config.family}
    return m
