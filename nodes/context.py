"""Context Options: context windows carried by the MODEL, so that every sampler node (KSampler, KSamplerAdvanced,
SamplerCustomAdvanced, detailers, Sample Frames) samples clips longer than the motion module's window in windows.
`with_context` puts three wrappers on a clone, under one key (Sample Frames uses the same function):
  - outer_sample: one sampling's state (the hint cache), its starting noise (FreeNoise, ...) and FreeInit's rounds;
  - prepare_sampling: ComfyUI's memory estimate counts one window, not the whole clip;
  - calc_cond_batch: each window is predicted with its own frames of every per-frame input (conditioning, area and
    mask conds, ControlNet / T2I-Adapter hints, ad_params for IPAdapter and Advanced-ControlNet), and the
    predictions are fused per frame (motion_core.context.sample_windows)."""

from __future__ import annotations

import logging

import torch

from ..motion_core.context import NOISE_TYPES
from ..motion_core.freeinit import FILTERS
from . import bridge
from .inject import KEY as MOTION_KEY
from .types import CATEGORY, FREE_INIT

KEY = "motion_core.context"
SCHEDULES = ("static", "uniform", "looped")
FUSE_METHODS = ("pyramid", "flat")
WRAPPERS = ("outer_sample", "prepare_sampling", "calc_cond_batch")

NOISE_TOOLTIP = ("Starting noise across frames (seeded by the sampler's seed). independent: fresh noise per frame (as "
                 "KSampler); freenoise: windows start from shuffled copies of the first window's noise (steadier long "
                 "clips); repeated_context: every window starts from the first window's noise; constant: one noise "
                 "for every frame (the steadiest, the least motion). These shape the starting noise only: ancestral "
                 "and SDE samplers add fresh independent noise at every step, which weakens them.")


class StepCounter:
    """The sampling step a model call belongs to (uniform and looped windows rotate with it), counted on the host:
    ComfyUI's samplers call the sampling's callback after each step with its index. Reading the step off the
    call's timestep instead would make the host wait for the device at every model call."""

    def __init__(self):
        self.step = 0

    def counting(self, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        """outer_sample's (args, kwargs) after (noise, latent, sampler, sigmas) with its callback (args[1]: after
        denoise_mask) wrapped to count the steps; the count starts at 0."""
        callback = args[1] if len(args) > 1 else kwargs.get("callback")
        self.step = 0

        def counted(step, *rest):
            self.step = step + 1
            if callback is not None:
                return callback(step, *rest)
        if len(args) > 1:
            return (args[0], counted, *args[2:]), kwargs
        return args, {**kwargs, "callback": counted}


def free_init_rounds(rounds, noise, sigmas, settings: dict, seed: int, reset):
    """FreeInit over a ComfyUI sampling (`rounds`: a bridge.SamplingRounds): sample; then N - 1 times re-noise the
    result to the first sigma with the same starting noise, keep its low spatio-temporal frequencies, take the high
    ones from fresh noise (seeded by `seed`) scaled as the sampler scales noise, and sample again from there. With
    `fast`, round i runs every (N / (i + 1))-th sigma of the sampling (coarse to fine; diffusers' use_fast_sampling
    re-spaces its scheduler instead). `reset()` runs before each round."""
    import torch

    from ..motion_core import freeinit
    n = len(sigmas) - 1
    count = settings["iterations"]

    def schedule(i):
        k = freeinit.iteration_steps(n, count, i, settings["fast"])
        return sigmas if k == n else sigmas[torch.linspace(0, n, k + 1).round().long().unique().to(sigmas.device)]
    out = rounds.run(noise, schedule(0))
    if count == 1:
        return out
    frames_last = lambda x: x.movedim(0, -3)  # noqa: E731  (frames, c, h, w) -> (c, frames, h, w)
    mask = freeinit.low_pass_filter(noise.shape[0], *noise.shape[-2:], settings["filter"], settings["order"],
                                    settings["spatial"], settings["temporal"])
    generator = torch.Generator().manual_seed(seed)
    for i in range(1, count):
        reset()
        clean = rounds.to_inner(out.float())
        fresh = torch.randn(noise.shape, generator=generator, dtype=torch.float32).to(clean.device)
        start = freeinit.mix(frames_last(rounds.renoise(noise.float(), clean)), frames_last(rounds.a * fresh),
                             mask.to(clean.device)).movedim(-3, 0)  # what the sampler starts from
        latent = rounds.latent.to(clean.device)
        out = rounds.run(((start - rounds.b * latent) / rounds.a).to(noise.dtype), schedule(i))
    return out


BOTH_WINDOWS = ("this model has two context window schedules: ComfyUI's Context Windows (Manual) node and "
                "motion_core's Context Options (or Sample Frames' context_length). Keep one: remove Context Windows "
                "(Manual), or set Context Options' context_length to 0 (its noise and FreeInit still apply). "
                "Context Options also slices core ControlNet hints per window; under Context Windows (Manual) the "
                "motion module, its per-frame strength / scale and masks, and ad_params follow the windows, core "
                "ControlNet hints do not.")


def clip_noise(noise: torch.Tensor, offset: int, seed: int) -> torch.Tensor:
    """The seeded noise of the clip so far (offset + this batch's frames) when `noise` is ComfyUI's seeded noise for
    this batch alone (KSampler's, RandomNoise's): each batch then continues the one clip's noise. Other noise (a
    custom noise source) is used as given, with a warning: it cannot be continued from the frames before."""
    frames = noise.shape[0]
    zeros = noise.new_zeros((offset + frames, *noise.shape[1:]), device="cpu")
    if torch.equal(bridge.prepare_noise(zeros[:frames], seed), noise.cpu()):
        return bridge.prepare_noise(zeros, seed).to(noise)
    logging.warning(f"motion_core: Meta Batch Manager batch from frame {offset}: its starting noise is not the "
                    f"seeded noise of seed {seed} (a custom noise source), so it is used as given and does not "
                    "continue the earlier batches' noise; use a seeded noise (KSampler, RandomNoise) to join them")
    return noise


def refuse_both_windows(model_options: dict) -> None:
    """Context windows twice (core's handler outside, ours inside: nested, each seeing the other's windows) are
    refused, naming both nodes."""
    if bridge.core_context_handler(model_options) is not None:
        from ..motion_core import ConfigError
        raise ConfigError(BOTH_WINDOWS)


def with_context(model, options, noise_type: str = "independent", free_init: dict | None = None,
                 offset: int | None = None):
    """A clone of `model` that samples in the windows of `options` (motion_core.context.ContextOptions) from
    `noise_type` starting noise (motion_core.context.starting_noise), with FreeInit when `free_init` (the FreeInit
    Options node's settings) asks for it; options None: no windows (the whole clip at once), the starting noise
    shaped over the whole clip. offset: the frames before this batch in a clip sampled in batches (VHS's Meta Batch
    Manager; None: not in batches): the starting noise is then frames offset.. of the noise of the clip so far."""
    from ..motion_core.context import ContextOptions, sample_windows, starting_noise, window_index, windows
    if noise_type not in NOISE_TYPES:
        from ..motion_core import ConfigError
        raise ConfigError(f"noise_type {noise_type!r} is not one of {', '.join(NOISE_TYPES)}")
    if free_init is not None:
        from ..motion_core import freeinit
        freeinit.check(free_init["iterations"], free_init["filter"], free_init["order"], free_init["spatial"],
                       free_init["temporal"])
    if options is not None:
        refuse_both_windows(model.model_options)
    m = model.clone()
    for kind in WRAPPERS:
        bridge.set_wrapper(m, kind, KEY, None)
    if options is None and noise_type == "independent" and free_init is None and offset is None:
        return m
    hints, steps = bridge.ControlWindows(), StepCounter()

    def reset():  # before each sampling and each FreeInit round
        hints.reset()
        steps.step = 0

    def outer_sample(executor, noise, latent_image, sampler, sigmas, *args, **kwargs):
        reset()
        seed = (args[3] if len(args) > 3 else kwargs.get("seed")) or 0  # after denoise_mask, callback, disable_pbar
        args, kwargs = steps.counting(args, kwargs)
        frames = noise.shape[0]
        if offset is not None:
            logging.info(f"motion_core: Meta Batch Manager batch: frames {offset}-{offset + frames - 1} of the clip")
        if offset and noise.any():  # (all zeros: no noise added)
            noise = clip_noise(noise, offset, seed)
        if noise_type != "independent":
            shaped = options or ContextOptions(length=noise.shape[0], overlap=0)
            noise = starting_noise(noise, noise_type, shaped, seed, dim=0)
        noise = noise[-frames:]
        try:
            if free_init is None:
                return executor(noise, latent_image, sampler, sigmas, *args, **kwargs)
            rounds = bridge.SamplingRounds(executor, noise, latent_image, sampler, sigmas, args, kwargs)
            return free_init_rounds(rounds, noise, sigmas, free_init, seed, reset)
        finally:
            hints.reset()

    bridge.set_wrapper(m, "outer_sample", KEY, outer_sample)
    if options is None:
        return m

    def prepare_sampling(executor, model, noise_shape, *args, **kwargs):
        if noise_shape[0] > options.length:  # the memory ComfyUI reserves: one window's, not the clip's
            noise_shape = [options.length, *noise_shape[1:]]
        return executor(model, noise_shape, *args, **kwargs)

    def calc_cond_batch(executor, model, conds, x_in, timestep, model_options, *args, **kwargs):
        refuse_both_windows(model_options)  # (Context Windows (Manual) applied after this node)
        frames = x_in.shape[0]
        if frames <= options.length:
            return executor(model, conds, x_in, timestep, model_options, *args, **kwargs)
        transformer_options = model_options.setdefault("transformer_options", {})
        step = steps.step
        controls = hints.controls(conds)
        hints.check(controls, frames)
        hints.keep_windows(windows(frames, options, step))

        def predict(x, window):
            window = tuple(window)
            transformer_options["ad_params"] = {"full_length": frames, "context_length": options.length,
                                                "sub_idxs": list(window), "video_length": len(window)}
            saved = hints.enter(controls, frames, window)
            try:
                results = executor(model, [bridge.slice_conds(c, frames, window) for c in conds], x,
                                   timestep.index_select(0, window_index(window, timestep.device)), model_options,
                                   *args, **kwargs)
            finally:
                hints.exit(saved, window)
                transformer_options.pop("ad_params", None)
            return torch.stack(results, dim=1)  # (window frames, conds, c, h, w)

        return list(sample_windows(predict, x_in, options, step, dim=0).unbind(1))

    bridge.set_wrapper(m, "prepare_sampling", KEY, prepare_sampling)
    bridge.set_wrapper(m, "calc_cond_batch", KEY, calc_cond_batch)
    return m


FREE_INIT_INPUT = (FREE_INIT, {"tooltip": "FreeInit Options: resample the clip N times from its own low frequencies "
                                           "(steadier motion and colours, N samplings' time)."})


def context_inputs(length_min: int) -> dict:
    """The context inputs Context Options and Sample Frames share (same names, same tooltips)."""
    zero = " (0 = no windows, the whole clip at once)" if length_min == 0 else ""
    return {
        "context_length": ("INT", {"default": 16, "min": length_min, "max": 128, "tooltip":
                                   f"Frames per window, at most the module's window (16 is the usual){zero}. "
                                   "Fewer than 8 frames per window wash the motion out."}),
        "context_overlap": ("INT", {"default": 4, "min": 0, "max": 127, "tooltip":
                                    "Frames shared by neighbouring windows: more = smoother seams, slower."}),
        "context_schedule": (SCHEDULES, {"tooltip": "static: fixed windows; uniform: windows that shift every step; "
                                         "looped: windows wrap around for seamless loops."}),
        "closed_loop": ("BOOLEAN", {"default": False, "tooltip": "looped schedule: also join the last frames to "
                                    "the first."}),
        "fuse_method": (FUSE_METHODS, {"tooltip": "How overlapping windows are blended: pyramid weights frames by "
                                       "their distance from a window's edge; flat averages."}),
        "noise_type": (NOISE_TYPES, {"tooltip": NOISE_TOOLTIP}),
    }


def batch_offset(meta_batch, prompt, unique_id, closed_loop: bool) -> int | None:
    """The frames sampled before this batch of VHS's Meta Batch Manager (None without one); a closed loop, which joins
    the clip's last frames to its first, is refused in batches."""
    if meta_batch is not None and closed_loop:
        from ..motion_core import ConfigError
        raise ConfigError("closed_loop joins the clip's last frames to its first, but a Meta Batch Manager samples "
                          f"the clip in batches of {getattr(meta_batch, 'frames_per_batch', '?')} frames: remove the "
                          "Meta Batch Manager or set closed_loop to false")
    return None if meta_batch is None else bridge.meta_batch_offset(meta_batch, prompt, unique_id)


def context_options(model, context_length, context_overlap, context_schedule, closed_loop, fuse_method):
    """ContextOptions from node inputs, refused early when the window is longer than the injected module holds."""
    from ..motion_core import ConfigError
    from ..motion_core.context import ContextOptions
    from ..motion_core.guards import too_many_frames
    info = model.model_options.get("transformer_options", {}).get(MOTION_KEY)
    if info is not None and context_length > info["pe_length"]:
        raise ConfigError(too_many_frames(context_length, info["pe_length"]))
    return ContextOptions(length=context_length, overlap=context_overlap, schedule=context_schedule,
                          closed_loop=closed_loop, fuse=fuse_method)


class ContextOptionsNode:
    DESCRIPTION = ("Give a model context windows, so that any sampler (KSampler, KSamplerAdvanced, "
                   "SamplerCustomAdvanced, detailers) samples clips longer than the motion module's window in "
                   "overlapping windows of frames. Every per-frame input follows its window: prompt travel, area and "
                   "mask conditioning, ControlNet / T2I-Adapter / Control-LoRA hints, inpainting masks, and ad_params "
                   "for IPAdapter and Advanced-ControlNet. ComfyUI loads the model for one window, not the clip.")
    CATEGORY = f"{CATEGORY}/sampling"
    RETURN_TYPES = ("MODEL",)
    OUTPUT_TOOLTIPS = ("The model with context windows (a clone); sample it with any sampler.",)
    FUNCTION = "apply"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL", {"tooltip": "A model from Inject into Model (before or after it)."}),
                             **context_inputs(0)},
                "optional": {"free_init": FREE_INIT_INPUT, "meta_batch": bridge.META_BATCH},
                "hidden": bridge.META_HIDDEN}

    def apply(self, model, context_length, context_overlap, context_schedule, closed_loop, fuse_method, noise_type,
              free_init=None, meta_batch=None, prompt=None, unique_id=None):
        options = context_options(model, context_length, context_overlap, context_schedule, closed_loop,
                                  fuse_method) if context_length else None  # 0: the starting noise / FreeInit only
        offset = batch_offset(meta_batch, prompt, unique_id, closed_loop)
        return (with_context(model, options, noise_type, free_init, offset),)


class FreeInitOptionsNode:
    DESCRIPTION = ("FreeInit (Wu et al. 2023) for Context Options or Sample Frames: sample the clip, noise the result "
                   "back to the first step, keep its low spatio-temporal frequencies (3D FFT over frames, height and "
                   "width), take the high ones from fresh noise, and sample again. Steadier, more coherent clips; "
                   "N iterations cost N samplings (fewer with fast sampling).")
    CATEGORY = f"{CATEGORY}/sampling"
    RETURN_TYPES = (FREE_INIT,)
    RETURN_NAMES = ("free_init",)
    OUTPUT_TOOLTIPS = ("FreeInit settings: connect to Context Options or Sample Frames.",)
    FUNCTION = "options"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "iterations": ("INT", {"default": 2, "min": 1, "max": 10, "tooltip":
                                   "Samplings in all (1 = no FreeInit; 2-3 is usual). Each costs a full sampling."}),
            "filter": (FILTERS, {"default": "butterworth", "tooltip":
                                 "Low-pass filter of the kept frequencies: butterworth (smooth, the paper's default), "
                                 "gaussian (softer), ideal (a sharp ball), box (a sharp box)."}),
            "order": ("INT", {"default": 4, "min": 1, "max": 16, "tooltip": "butterworth: the filter's order (higher "
                              "= sharper cut)."}),
            "spatial_stop": ("FLOAT", {"default": 0.25, "min": 0.01, "max": 1.0, "step": 0.01, "tooltip":
                                       "Spatial stop frequency (normalised): higher keeps more of the last result."}),
            "temporal_stop": ("FLOAT", {"default": 0.25, "min": 0.01, "max": 1.0, "step": 0.01, "tooltip":
                                        "Temporal stop frequency (normalised): higher keeps more of its motion."}),
            "fast_sampling": ("BOOLEAN", {"default": False, "tooltip": "Coarse to fine: iteration i of N runs every "
                                          "(N / i)-th step of the schedule, only the last runs them all."}),
        }}

    def options(self, iterations, filter, order, spatial_stop, temporal_stop, fast_sampling):
        from ..motion_core import freeinit
        freeinit.check(iterations, filter, order, spatial_stop, temporal_stop)
        return ({"iterations": iterations, "filter": filter, "order": order, "spatial": spatial_stop,
                 "temporal": temporal_stop, "fast": fast_sampling},)
