"""Node input definitions the converter needs, as ComfyUI's front end lays them out in a UI file: socket inputs
(links) and widget inputs (values, stored positionally in `widgets_values`) in definition order, and outputs.

Targets are motion_core's own nodes (and core's EmptyLatentImage), written by the converter; tests check them
against the pack's INPUT_TYPES and a real ComfyUI's /object_info. Sources are AnimateDiff-Evolved's
(Kosinkadink/ComfyUI-AnimateDiff-Evolved at d8d163c, 2026-03-29, with the widget orders of its earlier releases)
and ArtVentureX's comfyui-animatediff (08aad38, 2023-12-18), read from their INPUT_TYPES.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SEED_NAMES = ("seed", "noise_seed")  # INT widgets the front end follows with a control_after_generate value


@dataclass(frozen=True)
class Spec:
    """One node type. sockets: (name, type) of its link inputs (targets only: sources' links are read by name);
    widgets: (name, default) in order; a name ending in "*" is a forceInput input that files saved by front ends
    before 1.16 hold a dummy slot for; "~" marks AnimateDiff-Evolved's pseudo widgets (stored as ""); `control`
    names the INT widgets followed by a control_after_generate value; outputs: (name, type) by slot."""
    sockets: tuple[tuple[str, str], ...] = ()
    widgets: tuple[tuple[str, object], ...] = ()
    outputs: tuple[tuple[str, str], ...] = ()
    control: tuple[str, ...] = ()
    older: tuple[tuple[str, ...], ...] = field(default=())  # earlier widget orders that are not prefixes of today's

    def widget_names(self, forced_slots: bool = False) -> list[str]:
        names = [n for n, _ in self.widgets if forced_slots or not n.endswith("*")]
        out = []
        for n in names:
            out.append(n)
            if n in self.control:
                out.append(f"{n}:control")
        return out

    def defaults(self) -> dict:
        return {n.rstrip("*~"): d for n, d in self.widgets}


BETAS = ["auto", "sqrt_linear (AnimateDiff SD1.5)", "linear (AnimateDiff SDXL beta)", "linear (HotShot-XL, SDXL's own)",
         "lcm (AnimateLCM)", "keep the model's"]
CONTEXT_WIDGETS = (("context_length", 16), ("context_overlap", 4), ("context_schedule", "static"),
                   ("closed_loop", False), ("fuse_method", "pyramid"), ("noise_type", "independent"))

TARGETS = {
    "MC_LoadMotionModule": Spec(widgets=(("model_name", ""),), outputs=(("motion_module", "MC_MOTION_MODULE"),)),
    "MC_ApplyMotionLoRA": Spec(sockets=(("motion_module", "MC_MOTION_MODULE"),),
                               widgets=(("lora_name", ""), ("strength", 1.0)),
                               outputs=(("motion_module", "MC_MOTION_MODULE"),)),
    "MC_InjectMotionModule": Spec(
        sockets=(("model", "MODEL"), ("motion_module", "MC_MOTION_MODULE"), ("motion_mask", "MASK")),
        widgets=(("scale", 1.0), ("strength", 1.0), ("beta_schedule", "auto"), ("strength_curve", ""),
                 ("scale_curve", ""), ("start_percent", 0.0), ("end_percent", 1.0), ("weight_dtype", "auto")),
        outputs=(("MODEL", "MODEL"),)),
    "MC_ContextOptions": Spec(sockets=(("model", "MODEL"), ("free_init", "MC_FREE_INIT")), widgets=CONTEXT_WIDGETS,
                              outputs=(("MODEL", "MODEL"),)),
    "MC_FreeInitOptions": Spec(widgets=(("iterations", 2), ("filter", "butterworth"), ("order", 4),
                                        ("spatial_stop", 0.25), ("temporal_stop", 0.25), ("fast_sampling", False)),
                               outputs=(("free_init", "MC_FREE_INIT"),)),
    "MC_SampleFrames": Spec(
        sockets=(("model", "MODEL"), ("positive", "CONDITIONING"), ("negative", "CONDITIONING"), ("latent", "LATENT"),
                 ("free_init", "MC_FREE_INIT")),
        widgets=(("frames", 16), ("width", 512), ("height", 512), ("seed", 0), ("steps", 20), ("cfg", 7.5),
                 ("sampler_name", "euler"), ("scheduler", "normal"), *CONTEXT_WIDGETS, ("denoise", 1.0)),
        outputs=(("LATENT", "LATENT"),), control=("seed",)),
    "MC_SaveAnimation": Spec(sockets=(("images", "IMAGE"),),
                             widgets=(("filename_prefix", "motion_core/anim"), ("format", "webp"), ("fps", 8.0),
                                      ("loop", 0), ("quality", 90))),
    "EmptyLatentImage": Spec(widgets=(("width", 512), ("height", 512), ("batch_size", 1)),
                             outputs=(("LATENT", "LATENT"),)),
}

_ADE_BETAS = "autoselect"
_CTX = (("context_length", 16), ("context_stride", 1), ("context_overlap", 4))
_CTX_TAIL = (("fuse_method", "pyramid"), ("use_on_equal_length", False), ("start_percent", 0.0),
             ("guarantee_steps", 1))
_MODEL = (("MODEL", "MODEL"),)
_CONTEXT = (("CONTEXT_OPTS", "CONTEXT_OPTIONS"),)

SOURCES = {
    # ---- AnimateDiff-Evolved, Gen1 ----------------------------------------------------------------------------
    "ADE_AnimateDiffLoaderWithContext": Spec(
        outputs=_MODEL,
        widgets=(("model_name", ""), ("beta_schedule", _ADE_BETAS), ("motion_scale", 1.0),
                 ("apply_v2_models_properly", True), ("deprecation_warning~", ""))),
    "ADE_AnimateDiffLoaderGen1": Spec(
        outputs=_MODEL,
        widgets=(("model_name", ""), ("beta_schedule", _ADE_BETAS))),
    "AnimateDiffLoaderV1": Spec(
        outputs=(("MODEL", "MODEL"), ("LATENT", "LATENT")),
        widgets=(("model_name", ""), ("unlimited_area_hack", False), ("beta_schedule", "sqrt_linear (AnimateDiff)"),
                 ("deprecation_warning~", ""))),
    "ADE_AnimateDiffLoaderV1Advanced": Spec(
        outputs=(("MODEL", "MODEL"), ("LATENT", "LATENT")),
        widgets=(("model_name", ""), ("unlimited_area_hack", False), *_CTX, ("context_schedule", "uniform"),
                 ("closed_loop", False), ("beta_schedule", "sqrt_linear (AnimateDiff)"),
                 ("deprecation_warning~", ""))),
    # ---- Gen2 -------------------------------------------------------------------------------------------------
    "ADE_LoadAnimateDiffModel": Spec(widgets=(("model_name", ""),),
                                     outputs=(("MOTION_MODEL", "MOTION_MODEL_ADE"),)),
    "ADE_ApplyAnimateDiffModel": Spec(
        widgets=(("start_percent", 0.0), ("end_percent", 1.0)), outputs=(("M_MODELS", "M_MODELS"),)),
    "ADE_ApplyAnimateDiffModelSimple": Spec(outputs=(("M_MODELS", "M_MODELS"),)),
    "ADE_UseEvolvedSampling": Spec(
        widgets=(("beta_schedule", _ADE_BETAS),), outputs=_MODEL),
    # ---- context options --------------------------------------------------------------------------------------
    "ADE_AnimateDiffUniformContextOptions": Spec(
        outputs=_CONTEXT,
        widgets=(*_CTX, ("context_schedule", "uniform"), ("closed_loop", False), ("fuse_method", "flat"),
                 *_CTX_TAIL[1:], ("deprecation_warning~", ""))),
    "ADE_StandardUniformContextOptions": Spec(
        outputs=_CONTEXT,
        widgets=(*_CTX, *_CTX_TAIL)),
    "ADE_StandardStaticContextOptions": Spec(
        outputs=_CONTEXT,
        widgets=(("context_length", 16), ("context_overlap", 4), *_CTX_TAIL)),
    "ADE_LoopedUniformContextOptions": Spec(
        outputs=_CONTEXT,
        widgets=(*_CTX, ("closed_loop", False), *_CTX_TAIL)),
    "ADE_BatchedContextOptions": Spec(
        outputs=_CONTEXT,
        widgets=(("context_length", 16), ("start_percent", 0.0), ("guarantee_steps", 1))),
    # ---- motion LoRA, sampling settings, FreeInit, multivals, settings -----------------------------------------
    "ADE_AnimateDiffLoRALoader": Spec(widgets=(("name", ""), ("strength", 1.0)),  # "lora_name" before 2024-07-15
                                      outputs=(("MOTION_LORA", "MOTION_LORA"),)),
    "ADE_AnimateDiffSamplingSettings": Spec(
        widgets=(("batch_offset", 0), ("noise_type", "default"), ("seed_gen", "comfy"), ("seed_offset", 0),
                 ("seed_override*", 0), ("adapt_denoise_steps", False)),
        outputs=(("settings", "SAMPLE_SETTINGS"),)),
    "ADE_IterationOptsFreeInit": Spec(
        widgets=(("iterations", 2), ("filter", "gaussian"), ("d_s", 0.25), ("d_t", 0.25), ("n_butterworth", 4),
                 ("sigma_step", 999), ("apply_to_1st_iter", False), ("init_type", "FreeInit [sampler sigma]"),
                 ("iter_batch_offset", 0), ("iter_seed_offset", 1)), outputs=(("ITERATION_OPTS", "ITERATION_OPTS"),)),
    "ADE_IterationOptsDefault": Spec(widgets=(("iterations", 1), ("iter_batch_offset", 0), ("iter_seed_offset", 0)),
                                     outputs=(("ITERATION_OPTS", "ITERATION_OPTS"),)),
    "ADE_MultivalDynamic": Spec(widgets=(("float_val", 1.0),),
                                outputs=(("MULTIVAL", "MULTIVAL"),)),
    "ADE_MultivalDynamicFloatInput": Spec(widgets=(("float_val*", 1.0),), outputs=(("MULTIVAL", "MULTIVAL"),)),
    "ADE_MultivalDynamicFloats": Spec(outputs=(("MULTIVAL", "MULTIVAL"),)),
    "ADE_MultivalScaledMask": Spec(widgets=(("min_float_val", 0.0), ("max_float_val", 1.0), ("scaling", "absolute")),
                                   outputs=(("MULTIVAL", "MULTIVAL"),)),
    "ADE_AnimateDiffSettings": Spec(outputs=(("AD_SETTINGS", "AD_SETTINGS"),)),
    "ADE_AdjustPESweetspotStretch": Spec(
        widgets=(("sweetspot", 16), ("new_sweetspot", 16), ("print_adjustment", False)),
        outputs=(("PE_ADJUST", "PE_ADJUST"),)),
    "ADE_AdjustPEFullStretch": Spec(widgets=(("pe_stretch", 0), ("print_adjustment", False)),
                                    outputs=(("PE_ADJUST", "PE_ADJUST"),)),
    "ADE_AdjustPEManual": Spec(
        widgets=(("cap_initial_pe_length", 0), ("interpolate_pe_to_length", 0), ("initial_pe_idx_offset", 0),
                 ("final_pe_idx_offset", 0), ("print_adjustment", False)),
        outputs=(("PE_ADJUST", "PE_ADJUST"),)),
    "ADE_AdjustWeightAllAdd": Spec(widgets=(("all_ADD", 0.0), ("print_adjustment", False)),
                                   outputs=(("WEIGHT_ADJUST", "WEIGHT_ADJUST"),)),
    "ADE_AdjustWeightAllMult": Spec(widgets=(("all_MULT", 1.0), ("print_adjustment", False)),
                                    outputs=(("WEIGHT_ADJUST", "WEIGHT_ADJUST"),)),
    # ---- utilities --------------------------------------------------------------------------------------------
    "ADE_EmptyLatentImageLarge": Spec(widgets=(("width", 512), ("height", 512), ("batch_size", 1)),
                                      outputs=(("LATENT", "LATENT"),)),
    "ADE_AnimateDiffCombine": Spec(
        outputs=(("GIF", "GIF"),),
        widgets=(("frame_rate", 8), ("loop_count", 0), ("filename_prefix", "AnimateDiff"), ("format", "image/gif"),
                 ("pingpong", False), ("save_image", True), ("deprecation_warning~", "")),
        older=(("frame_rate", "loop_count", "save_image", "filename_prefix"),)),
    "ADE_AnimateDiffUnload": Spec(outputs=_MODEL),
    # ---- ArtVentureX comfyui-animatediff ----------------------------------------------------------------------
    "AnimateDiffModuleLoader": Spec(widgets=(("model_name", ""),),
                                    outputs=(("MOTION_MODULE", "MOTION_MODULE"),)),
    "AnimateDiffLoraLoader": Spec(widgets=(("lora_name", ""), ("alpha", 1.0)),
                                  outputs=(("MOTION_LORA_STACK", "MOTION_LORA_STACK"),)),
    "AnimateDiffSampler": Spec(
        widgets=(("inject_method", "default"), ("frame_number", 16), ("seed", 0), ("steps", 20), ("cfg", 8.0),
                 ("sampler_name", "euler"), ("scheduler", "normal"), ("denoise", 1.0)),
        outputs=(("LATENT", "LATENT"),), control=("seed",)),
    "AnimateDiffSlidingWindowOptions": Spec(
        widgets=(*_CTX, ("context_schedule", "uniform"), ("closed_loop", False)),
        outputs=(("SLIDING_WINDOW_OPTS", "SLIDING_WINDOW_OPTS"),)),
    "AnimateDiffCombine": Spec(
        widgets=(("frame_rate", 8), ("loop_count", 0), ("save_image", True), ("filename_prefix", "animate_diff"),
                 ("format", "image/gif"), ("pingpong", False))),
}

# AnimateDiff-Evolved's beta schedules by name -> (ours, how exact); the second element None = the same schedule
ADE_BETAS = {
    "autoselect": ("auto", None),
    "use existing": ("keep the model's", None),
    "sqrt_linear (AnimateDiff)": ("sqrt_linear (AnimateDiff SD1.5)", None),
    "sqrt_linear": ("sqrt_linear (AnimateDiff SD1.5)", None),
    "linear (AnimateDiff-SDXL)": ("linear (AnimateDiff SDXL beta)", None),
    "linear (HotshotXL/default)": ("linear (HotShot-XL, SDXL's own)", None),
    "linear (default)": ("linear (HotShot-XL, SDXL's own)", None), "linear": ("linear (HotShot-XL, SDXL's own)", None),
    "lcm >> sqrt_linear": ("lcm (AnimateLCM)", None),
    "lcm": ("lcm (AnimateLCM)", "LCM sampling over SD's scaled-linear betas; here over sqrt_linear betas, as "
                                "AnimateLCM's own scheduler (LCMScheduler, beta_schedule='linear')"),
    "lcm[100_ots]": ("lcm (AnimateLCM)", "LCM with 100 original timesteps; here 50, as AnimateLCM was distilled"),
    "lcm avg(sqrt_linear,linear)": ("lcm (AnimateLCM)", "an average of two LCM schedules; here AnimateLCM's own"),
    "avg(sqrt_linear,linear)": ("auto", "an average of two schedules; here the one the module was trained with"),
    "sqrt": ("auto", "sqrt betas; here the schedule the module was trained with"),
    "cosine": ("auto", "cosine betas; here the schedule the module was trained with"),
    "squaredcos_cap_v2": ("auto", "squaredcos_cap_v2 betas; here the schedule the module was trained with"),
}
