"""SparseCtrl as a ComfyUI ControlNet: the control model built from ComfyUI's operations, its control class, loading
and attaching it to conditioning."""

from __future__ import annotations

from .models import model_dtypes, operations


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

    from ...motion_core.control import MotionControl
    from ...motion_core.errors import UnknownLayoutError
    from ...motion_core.hosts.comfy import ComfyHost
    from ...motion_core.sparsectrl import SparseMotion, cldm_state_dict, load_motion, motion_config, motion_paths
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

    from ...motion_core.frames import frames_context
    from ...motion_core.sparsectrl import keyframe_condition, keyframe_indices

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
    from ...motion_core.precision import module_dtype
    from ...motion_core.sparsectrl import check_fits, infer_config, read_sparsectrl
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
