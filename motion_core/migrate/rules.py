"""The node rules: each AnimateDiff-Evolved (Gen1, Gen2, legacy) and ArtVentureX AnimateDiff node the converter
knows becomes motion_core nodes with the same settings (`migrate_graph`); what has no equivalent stays as it was,
reported with the reason and what is closest here."""

from __future__ import annotations

from .chains import GEN1, LEFT, SAVE_FORMATS, Converter
from .graph import Graph, Node
from .report import Report
from .specs import ADE_BETAS, SOURCES

GEN2 = ("ADE_ApplyAnimateDiffModel", "ADE_ApplyAnimateDiffModelSimple")
# nodes with no equivalent, by what they are (name prefix -> why, closest)
UNSUPPORTED = (
    (("ADE_CameraCtrl", "ADE_LoadCameraPoses", "ADE_CameraPose", "ADE_CameraManualPoseAppend",
      "ADE_ReplaceCameraParameters", "ADE_ReplaceOriginalPoseAspectRatio", "ADE_ApplyAnimateDiffModelWithCameraCtrl",
      "ADE_LoadAnimateDiffModelWithCameraCtrl"), "CameraCtrl (camera poses)", "none: motion_core runs no CameraCtrl"),
    (("ADE_ApplyAnimateDiffModelWithPIA", "ADE_InputPIA", "ADE_PIA", "ADE_InjectPIAIntoAnimateDiffModel"),
     "PIA (image animation)", "Load SparseCtrl / Apply SparseCtrl with an RGB keyframe at frame 0"),
    (("ADE_ApplyAnimateLCMI2VModel", "ADE_LoadAnimateLCMI2VModel", "ADE_InjectI2VIntoAnimateDiffModel",
      "ADE_UpscaleAndVAEEncode"), "AnimateLCM-I2V", "Load SparseCtrl / Apply SparseCtrl with an RGB keyframe"),
    (("ADE_ContextExtras",), "context extras (ContextRef, NaiveReuse)", "Context Options' windows"),
    (("ADE_NoiseLayer",), "noise layers", "Context Options' noise_type"),
    (("ADE_CustomCFG", "ADE_CFGExtras", "ADE_PerturbedAttentionGuidance", "ADE_RescaleCFG"),
     "CFG per step / CFG extras", "core's CFG nodes (RescaleCFG, PerturbedAttentionGuidance)"),
    (("ADE_SigmaSchedule", "ADE_RawSigmaSchedule"), "a sigma schedule", "Inject into Model's beta_schedule"),
    (("ADE_AnimateDiffKeyframe", "ADE_CameraCtrlAnimateDiffKeyframe"), "AnimateDiff keyframes",
     "Inject into Model's strength_curve / scale_curve and start / end percent"),
    (("ADE_PerBlock", "ADE_ADBlock"), "per-block motion strengths", "Inject into Model's strength"),
    (("ADE_AdjustPE", "ADE_AnimateDiffSettings"), "position-encoding adjustment", "context windows of the "
     "module's own length (Context Options)"),
    (("ADE_AdjustWeight",), "weight adjustment", "Inject into Model's strength (a blend, not a weight scale)"),
    (("ADE_PromptScheduling",), "prompt scheduling", "Prompt Travel"),
    (("ADE_ValueScheduling", "ADE_ValuesReplace", "ADE_FloatToFloats", "ADE_MultivalDynamicFloat",
      "ADE_MultivalConvertToMask", "ADE_ConditionExtraction"), "value schedules", "Inject into Model's curves"),
    (("ADE_RegisterLoraHook", "ADE_RegisterModelAsLoraHook", "ADE_CombineLoraHooks", "ADE_SetLoraHookKeyframe",
      "ADE_AttachLoraHook", "ADE_LoraHook", "ADE_PairedConditioning", "ADE_ConditioningSet", "ADE_Conditioning",
      "ADE_TimestepsConditioning"), "conditioning / LoRA hooks", "core's hook and conditioning nodes"),
    (("ADE_VisualizeContextOptions", "ADE_StandardStaticViewOptions", "ADE_StandardUniformViewOptions",
      "ADE_LoopedUniformViewOptions", "ADE_ViewsOnlyContextOptions"), "view options / visualisers",
     "Sample Frames draws its windows in the graph"),
    (("ADE_AnimateDiffModelSettings", "ADE_AnimateDiffLoaderGen1Advanced"), "motion model settings (deprecated)",
     "Inject into Model's scale / strength"),
    (("ADE_NoisedImageInjection", "ADE_NoisedImageInjectOptions", "ADE_AncestralOptions"),
     "sampling extras", "none"),
)
ARTVENTURE = ("AnimateDiffModuleLoader", "AnimateDiffLoraLoader", "AnimateDiffSampler",
              "AnimateDiffSlidingWindowOptions", "AnimateDiffCombine", "AnimateDiffLoader", "AnimateDiffLoader_v2",
              "AnimateDiffUnload", "LoadVideo", "ImageSizeAndBatchSize")


def is_source(kind: str) -> bool:
    """An AnimateDiff-Evolved or ArtVentureX AnimateDiff node (converted, or reported when it cannot be)."""
    return kind in SOURCES or kind.startswith("ADE_") or kind in ARTVENTURE or kind in (
        "CheckpointLoaderSimpleWithNoiseSelect", "AnimateDiffLoaderV1")


def migrate_graph(g: Graph, report: Report) -> None:
    """Convert every source node of `g` in place (anchors first: they take their side nodes along)."""
    c = Rules(g, report)
    for node in [n for n in g.nodes.values() if n.type == "ADE_UseEvolvedSampling"]:
        c.evolved(node)
    for node in [n for n in g.nodes.values() if n.type in GEN1]:
        c.gen1(node)
    for node in [n for n in g.nodes.values() if n.type == "AnimateDiffSampler"]:
        c.artventure_sampler(node)
    for node in list(g.nodes.values()):
        if node.id in g.nodes and not node.changed and node.id not in c.merged:
            c.standalone(node)
    c.finish()


class Rules(Converter):
    def beta(self, node: Node, value: str) -> str:
        ours, note = ADE_BETAS.get(value, ("auto", f"unknown to the converter ({value!r})"))
        if note:
            self.approx(node, f"beta_schedule {value!r}: {note}; used {ours!r}")
        return ours

    def multival(self, anchor: Node, inject: Node, name: str, to: str) -> None:
        """scale_multival -> scale, effect_multival -> strength (and its mask -> motion_mask)."""
        node = self.feeder(anchor, name)
        if node is None:
            return
        kind, s = self.kind(node), self.read.get(node.id, {})
        if kind == "ADE_MultivalDynamic":
            value = float(s["float_val"])
            mask = self.feeder(node, "mask_optional")
        elif kind == "ADE_MultivalScaledMask" and name == "effect_multival":
            value, mask = float(s["max_float_val"]), self.feeder(node, "mask")
            if float(s["min_float_val"]) != 0 or s["scaling"] != "absolute":
                self.approx(node, f"min {s['min_float_val']} / {s['scaling']} scaling: the motion mask scales "
                                  f"strength from 0 to {value:g} here")
        else:
            self.left(node, f"{kind} as {name}: per-frame float lists or a scaled scale mask have no node "
                            f"equivalent; closest: Inject into Model's {to}_curve (frame:value keyframes)")
            return
        limit = 1.0 if to == "strength" else 10.0
        if not 0 <= value <= limit:
            self.approx(node, f"{name} {value:g} is outside Inject into Model's {to} [0, {limit:g}]: used "
                              f"{min(max(value, 0), limit):g}")
        inject.values[to] = min(max(value, 0.0), limit)
        if mask is not None:
            if to == "strength":
                self.carry(node, "mask_optional" if kind == "ADE_MultivalDynamic" else "mask", inject, "motion_mask")
            else:
                self.approx(node, "a mask on the motion scale: scale here is per frame, not per pixel; the mask "
                                  "is left out (closest: a motion_mask on strength)")
        self.absorb(node, inject, name)

    def rewire(self, model_out: list, tail: tuple) -> None:
        """Every consumer of a converted loader's MODEL (edges `model_out`) takes the chain's end `tail`."""
        self.g.move_consumers([e for e in model_out if e.id in self.g.edges and e.dst != tail[0]], *tail)

    def drop_inputs(self, node: Node, keep=("model", "motion_mask")) -> None:
        for name in list(self.g.inputs(node.id)):
            if name not in keep:
                self.g.unlink(node.id, name)

    # ---- Gen1 (and legacy) loaders ------------------------------------------------------------------------------
    def gen1(self, node: Node) -> None:
        kind, s = node.type, self.s(node)
        model_out, latent_out = self.g.consumers(node.id, 0), self.g.consumers(node.id, 1)
        ctx, settings = self.feeder(node, "context_options"), self.feeder(node, "sample_settings")
        latents = self.g.inputs(node.id).get("latents")
        head = self.module_chain(node, s["model_name"], self.feeder(node, "motion_lora"))
        if latents is not None:  # the legacy loaders passed their latents input through as a LATENT output
            self.g.move_consumers(latent_out, latents.src, latents.slot)
        if s.get("unlimited_area_hack"):
            self.approx(node, "unlimited_area_hack: not needed here (context windows take any length)")
        if s.get("apply_v2_models_properly") is False:
            self.approx(node, "apply_v2_models_properly off (v2 modules as early AnimateDiff-Evolved ran them): v2 "
                              "modules run here as the original code runs them")
        for side in ("ad_settings", "ad_keyframes", "per_block"):
            if self.feeder(node, side) is not None:
                self.approx(node, f"{side}: not supported, left out (its nodes stay in the graph)")
        scale = float(s.get("motion_scale", 1.0))
        values = {"scale": min(max(scale, 0.0), 10.0), "beta_schedule": self.beta(node, s["beta_schedule"])}
        if scale != values["scale"]:
            self.approx(node, f"motion_scale {scale:g} is outside Inject into Model's scale [0, 10]: used "
                              f"{values['scale']:g}")
        self.g.convert(node, "MC_InjectMotionModule", values)
        self.multival(node, node, "scale_multival", "scale")
        self.multival(node, node, "effect_multival", "strength")
        self.drop_inputs(node)
        self.g.link(head.id, 0, node.id, "motion_module")
        if kind == "ADE_AnimateDiffLoaderV1Advanced":  # its windows are looped uniform ones, averaged
            window = self.g.add("MC_ContextOptions", {
                "context_length": int(s["context_length"]), "context_overlap": int(s["context_overlap"]),
                "context_schedule": "looped", "closed_loop": bool(s["closed_loop"]), "fuse_method": "flat",
                "noise_type": "independent"}, node, (0, 320))
            self.g.link(node.id, 0, window.id, "model")
            tail = (window.id, 0)
        else:
            tail = self.context(node, (node.id, 0), ctx, settings)
        self.rewire(model_out, tail)
        self.note(node, "converted", f"-> MC_InjectMotionModule (scale {scale:g}, beta "
                                           f"{values['beta_schedule']!r}) after #{head.id} {head.type}")

    # ---- Gen2: Load AnimateDiff Model -> Apply AnimateDiff Model -> Use Evolved Sampling -------------------------
    def evolved(self, node: Node) -> None:
        s = self.s(node)
        model_out = self.g.consumers(node.id, 0)
        ctx, settings = self.feeder(node, "context_options"), self.feeder(node, "sample_settings")
        apply = self.feeder(node, "m_models")
        if apply is None or self.kind(apply) not in GEN2:  # no motion model: context windows / noise at most
            if apply is not None:
                self.left(apply, "m_models from a node the converter does not know: not converted")
            model = self.g.inputs(node.id).get("model")
            self.drop_inputs(node, keep=())
            tail = self.context(node, (model.src, model.slot), ctx, settings) if model is not None else None
            if tail is not None:
                self.rewire(model_out, tail)
            self.note(node, "merged", "no motion model: its model passes on" + (
                " through Context Options" if tail and tail[0] != model.src else "") + " (removed)")
            self.g.remove(node.id)
            return
        a = self.s(apply)
        load = self.feeder(apply, "motion_model")
        reuse = load if self.kind(load) == "ADE_LoadAnimateDiffModel" else None
        if reuse is None:
            self.left(apply, "its motion model comes from a node the converter does not know: not converted")
            return
        if self.feeder(load, "ad_settings") is not None:
            self.approx(load, "ad_settings: not supported, left out (its nodes stay in the graph)")
            self.g.unlink(load.id, "ad_settings")
        head = self.module_chain(node, self.s(load)["model_name"], self.feeder(apply, "motion_lora"), reuse=load)
        for side in ("ad_keyframes", "per_block"):
            if self.feeder(apply, side) is not None:
                self.approx(apply, f"{side}: not supported, left out (its nodes stay in the graph)")
        if self.feeder(apply, "prev_m_models") is not None:
            self.approx(apply, "more than one motion model (prev_m_models): one per model here; the others are "
                               "left out")
        values = {"beta_schedule": self.beta(node, s["beta_schedule"]),
                  "start_percent": float(a.get("start_percent", 0.0)), "end_percent": float(a.get("end_percent", 1.0))}
        self.g.convert(node, "MC_InjectMotionModule", values)
        self.multival(apply, node, "scale_multival", "scale")
        self.multival(apply, node, "effect_multival", "strength")
        self.drop_inputs(node)
        self.g.unlink(apply.id, "motion_model")
        self.g.link(head.id, 0, node.id, "motion_module")
        self.absorb(apply, node, "start / end percent, scale and effect")
        self.rewire(model_out, self.context(node, (node.id, 0), ctx, settings))
        self.note(node, "converted", f"-> MC_InjectMotionModule (beta {values['beta_schedule']!r}) after "
                                           f"#{head.id} {head.type}")

    # ---- ArtVentureX -------------------------------------------------------------------------------------------------
    def artventure_sampler(self, node: Node) -> None:
        s = self.s(node)
        loader = self.feeder(node, "motion_module")
        name = self.s(loader)["model_name"] if self.kind(loader) == "AnimateDiffModuleLoader" else ""
        head = self.module_chain(node, name, self.feeder(loader, "lora_stack") if loader else None,
                                 reuse=loader if self.kind(loader) == "AnimateDiffModuleLoader" else None)
        inject = self.g.add("MC_InjectMotionModule", {"beta_schedule": "sqrt_linear (AnimateDiff SD1.5)"}, node,
                            (LEFT, -160))
        self.carry(node, "model", inject, "model")
        self.g.link(head.id, 0, inject.id, "motion_module")
        window = self.feeder(node, "sliding_window_opts")
        w = self.s(window) if self.kind(window) == "AnimateDiffSlidingWindowOptions" else {
            "context_length": 16, "context_stride": 1, "context_overlap": 4, "closed_loop": False}
        if int(w["context_stride"]) != 1:
            self.approx(window or node, f"context_stride {w['context_stride']}: Sample Frames has none; used 1")
        if s["inject_method"] != "default":
            self.approx(node, f"inject_method {s['inject_method']!r}: modules are placed as the original code "
                              "places them (ArtVentureX's 'default')")
        frames = int(s["frame_number"])
        values = {"frames": frames, "seed": s["seed"], "seed:control": s.get("seed:control", "fixed"),
                  "steps": s["steps"], "cfg": s["cfg"], "sampler_name": s["sampler_name"], "scheduler": s["scheduler"],
                  "denoise": s["denoise"], "context_length": int(w["context_length"]),
                  "context_overlap": min(int(w["context_overlap"]), int(w["context_length"]) - 1),
                  "context_schedule": "looped", "closed_loop": bool(w["closed_loop"]), "fuse_method": "flat",
                  "noise_type": "independent"}
        for name_in in ("motion_module", "sliding_window_opts", "model"):
            self.g.unlink(node.id, name_in)
        self.g.convert(node, "MC_SampleFrames", values)
        self.g.link(inject.id, 0, node.id, "model")
        latent = self.g.inputs(node.id).pop("latent_image", None)
        if latent is not None:
            self.g.unlink(node.id, "latent_image")
            self.g.link(latent.src, latent.slot, node.id, "latent", latent.type)
            self.approx(node, f"frame_number {frames}: Sample Frames takes the frames from the latent's batch "
                              "(ArtVentureX repeated the latent's last frame up to frame_number)")
        if window is not None:
            self.absorb(window, node, "context windows")
        self.note(node, "converted", f"-> MC_InjectMotionModule #{inject.id} + MC_SampleFrames")

    # ---- nodes that stand alone ----------------------------------------------------------------------------------
    def standalone(self, node: Node) -> None:
        kind = node.type
        if kind == "ADE_EmptyLatentImageLarge":
            s = self.s(node)
            batch = int(s["batch_size"])
            if batch > 4096:
                self.approx(node, f"batch_size {batch}: core's Empty Latent Image holds 4096; used 4096")
            self.g.convert(node, "EmptyLatentImage", {"width": s["width"], "height": s["height"],
                                                      "batch_size": min(batch, 4096)})
            self.note(node, "converted", "-> EmptyLatentImage (core)")
        elif kind in ("ADE_AnimateDiffCombine", "AnimateDiffCombine"):
            self.combine(node)
        elif kind == "ADE_AnimateDiffUnload":
            self.unload(node)
        elif is_source(kind):
            self.unsupported(node)

    def combine(self, node: Node) -> None:
        s = self.s(node)
        fmt = SAVE_FORMATS.get(s["format"])
        if fmt is None:
            fmt = "webp"
            self.approx(node, f"format {s['format']!r}: Save Animation writes WebP, GIF or MP4; used webp")
        if s.get("pingpong"):
            self.approx(node, "pingpong: not supported (frames play forward only)")
        save = s.get("save_image")
        if save is False or save == "Disabled":
            self.approx(node, "save_image off: Save Animation always saves to the output folder")
        for e in self.g.consumers(node.id):
            self.g.unlink(e.dst, e.input)
        self.g.convert(node, "MC_SaveAnimation", {
            "filename_prefix": s["filename_prefix"], "format": fmt, "fps": float(s["frame_rate"]),
            "loop": int(s["loop_count"]), "quality": 90})
        self.note(node, "converted", f"-> MC_SaveAnimation ({fmt})")

    def unload(self, node: Node) -> None:
        """Unload hands back the model without its motion module: the model in front of the Inject it follows."""
        edge = self.g.inputs(node.id).get("model")
        src = edge
        while src is not None and self.g.nodes[src.src].type in ("MC_ContextOptions", "MC_InjectMotionModule"):
            up = self.g.inputs(src.src).get("model")
            if self.g.nodes[src.src].type == "MC_InjectMotionModule":
                src = up
                break
            src = up
        if src is None:
            self.left(node, "its model input is not connected: left")
            return
        if src is edge:
            self.approx(node, "its model does not come from a converted loader: the model passes through")
        self.g.move_consumers(self.g.consumers(node.id, 0), src.src, src.slot)
        self.note(node, "merged", f"the plain model is #{src.src}'s output: consumers rewired (removed)")
        self.g.remove(node.id)

    def unsupported(self, node: Node) -> None:
        for prefixes, what, closest in UNSUPPORTED:
            if node.type.startswith(prefixes):
                self.left(node, f"{what}: no motion_core equivalent; closest: {closest}")
                return
        if node.type in ("ADE_AnimateDiffLoRALoader", "AnimateDiffLoraLoader"):
            self.left(node, "a motion LoRA that feeds no converted loader: left (closest: Apply Motion LoRA)")
        elif node.type in ("ADE_LoadAnimateDiffModel", "AnimateDiffModuleLoader"):
            self.left(node, "feeds no node the converter converts: left (closest: Load Motion Module)")
        elif node.type in SOURCES:
            self.left(node, "feeds no node the converter converts: left as it was")
        else:
            self.left(node, "an AnimateDiff node the converter does not know: left as it was")
