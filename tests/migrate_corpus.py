"""A corpus of AnimateDiff-Evolved and ArtVentureX workflows for the converter's tests, built from the packs' own
input definitions (motion_core.migrate.specs.SOURCES: widget orders as their nodes define them, including older
releases' orders and the front end's extra slots) beside core nodes and other packs' nodes (VideoHelperSuite,
IPAdapter, Advanced-ControlNet, FizzNodes) as users combine them. Each workflow is described once and written in
both formats: UI (positions, sizes, groups, titles, colours, widgets_values) and API.

Other packs' nodes carry made-up but well-formed values: the converter must leave them as they were."""

from __future__ import annotations

import copy

from motion_core.migrate.specs import SOURCES, TARGETS

# core nodes: widget order (with the seed's control value) and outputs
CORE = {
    "CheckpointLoaderSimple": (["ckpt_name"], [("MODEL", "MODEL"), ("CLIP", "CLIP"), ("VAE", "VAE")]),
    "CLIPTextEncode": (["text"], [("CONDITIONING", "CONDITIONING")]),
    "KSampler": (["seed", "seed:control", "steps", "cfg", "sampler_name", "scheduler", "denoise"],
                 [("LATENT", "LATENT")]),
    "VAEDecode": ([], [("IMAGE", "IMAGE")]),
    "EmptyLatentImage": (["width", "height", "batch_size"], [("LATENT", "LATENT")]),
    "SaveLatent": (["filename_prefix"], []),
    "LoadImageMask": (["image", "channel", "upload"], [("MASK", "MASK")]),
    "SolidMask": (["value", "width", "height"], [("MASK", "MASK")]),
    "PreviewImage": ([], []),
    "ControlNetLoader": (["control_net_name"], [("CONTROL_NET", "CONTROL_NET")]),
    "ControlNetApplyAdvanced": (["strength", "start_percent", "end_percent"],
                                [("positive", "CONDITIONING"), ("negative", "CONDITIONING")]),
}
# other packs' nodes: (widgets_values as their files hold them, outputs)
OTHERS = {
    "VHS_VideoCombine": ({"frame_rate": 8, "loop_count": 0, "filename_prefix": "AnimateDiff",
                          "format": "video/h264-mp4", "pix_fmt": "yuv420p", "crf": 19, "save_metadata": True,
                          "pingpong": False, "save_output": True,
                          "videopreview": {"hidden": False, "paused": False, "params": {}}},
                         [("Filenames", "VHS_FILENAMES")]),
    "VHS_LoadVideo": ({"video": "input.mp4", "force_rate": 0, "custom_width": 0, "custom_height": 0,
                       "frame_load_cap": 16, "skip_first_frames": 0, "select_every_nth": 1},
                      [("IMAGE", "IMAGE"), ("frame_count", "INT"), ("audio", "AUDIO"),
                       ("video_info", "VHS_VIDEOINFO")]),
    "IPAdapterUnifiedLoader": (["PLUS (high strength)"], [("model", "MODEL"), ("ipadapter", "IPADAPTER")]),
    "IPAdapterAdvanced": ([1.0, "linear", "concat", 0.0, 1.0, "V only"], [("MODEL", "MODEL")]),
    "ACN_AdvancedControlNetApply": ([1.0, 0.0, 1.0, ""], [("positive", "CONDITIONING"), ("negative", "CONDITIONING"),
                                                          ("model_opt", "MODEL")]),
    "Reroute": ([], [("", "*")]),
    "BatchPromptSchedule": (['"0": "a cat", "8": "a dog"', 16, False, "", "", 0, 0, 0, 0, 0],
                            [("POS", "CONDITIONING"), ("NEG", "CONDITIONING")]),
    # AnimateDiff-Evolved nodes the converter has no equivalent for (left, reported)
    "ADE_AnimateDiffKeyframe": ([0.0, 1.0, True, 1.0, 0, ""], [("AD_KEYFRAMES", "AD_KEYFRAMES")]),
    "ADE_CustomCFGSimple": ([7.0, 0.0], [("CUSTOM_CFG", "CUSTOM_CFG")]),
    "ADE_LoadAnimateDiffModelWithCameraCtrl": (["v3_sd15_mm.ckpt", "CameraCtrl_pruned.safetensors"],
                                               [("MOTION_MODEL", "MOTION_MODEL_ADE")]),
    "ADE_InjectPIAIntoAnimateDiffModel": (["pia.ckpt", ""], [("MOTION_MODEL", "MOTION_MODEL_ADE")]),
    "ADE_ContextExtras_ContextRef": (["first", 0.0, 0.1, "0.0"], [("CONTEXT_EXTRAS", "CONTEXT_EXTRAS")]),
    "ADE_NoiseLayerAdd": (["default", "comfy", "fixed", 0, 0, 1.0, 1.0], [("NOISE_LAYERS", "NOISE_LAYERS")]),
}


class Build:
    """Nodes with named values and named links; `ui()` and `api()` write them."""

    def __init__(self):
        self.nodes: dict[int, dict] = {}
        self.extra_links: list = []  # UI links kept verbatim (dangling ones)

    def add(self, node_id: int, kind: str, values=None, links=None, title=None, color=None, raw_values=None):
        """values: widget values by name (the rest: defaults); raw_values: widgets_values exactly as a file holds
        them (older orders); links: {input: (source id, output slot)}."""
        self.nodes[node_id] = {"type": kind, "values": dict(values or {}), "links": dict(links or {}),
                               "title": title, "color": color, "raw": raw_values}
        return node_id

    @staticmethod
    def layout(kind: str):
        """(widget names, outputs, values are a dict) of a node type."""
        if kind in SOURCES:
            spec = SOURCES[kind]
            return [n.rstrip("~") for n in spec.widget_names()], list(spec.outputs), False
        if kind in TARGETS:
            spec = TARGETS[kind]
            return spec.widget_names(), list(spec.outputs), False
        if kind in CORE:
            return CORE[kind][0], CORE[kind][1], False
        return None, OTHERS[kind][1], isinstance(OTHERS[kind][0], dict)

    def output_type(self, node_id, slot):
        return self.layout(self.nodes[node_id]["type"])[1][slot][1]

    def widgets(self, kind: str, values: dict):
        names, _, _ = self.layout(kind)
        if names is None:
            return copy.deepcopy(OTHERS[kind][0])
        defaults = SOURCES[kind].defaults() if kind in SOURCES else TARGETS[kind].defaults() if kind in TARGETS \
            else {}
        out = []
        for name in names:
            if name.endswith(":control"):
                out.append(values.get(name, "fixed"))
            else:
                out.append(values.get(name.rstrip("~*"), defaults.get(name.rstrip("~*"), "")))
        return out

    def ui(self) -> dict:
        nodes, links, next_link = [], [], 1
        by_target: dict[tuple, int] = {}
        for node_id, n in self.nodes.items():
            for name, (src, slot) in n["links"].items():
                kind = self.output_type(src, slot)
                links.append([next_link, src, slot, node_id, None, kind])
                by_target[(node_id, name)] = next_link
                next_link += 1
        for order, (node_id, n) in enumerate(self.nodes.items()):
            inputs = [{"name": name, "type": next(l[5] for l in links if l[0] == by_target[(node_id, name)]),
                       "link": by_target[(node_id, name)]} for name in n["links"]]
            for i, inp in enumerate(inputs):
                next(l for l in links if l[0] == inp["link"])[4] = i
            _, outputs, _ = self.layout(n["type"])
            node = {"id": node_id, "type": n["type"], "pos": [100 + 350 * (order % 5), 80 + 300 * (order // 5)],
                    "size": [315, 130 + 20 * len(inputs)], "flags": {}, "order": order, "mode": 0, "inputs": inputs,
                    "outputs": [{"name": name, "type": kind, "slot_index": slot,
                                 "links": [l[0] for l in links if l[1] == node_id and l[2] == slot] or None}
                                for slot, (name, kind) in enumerate(outputs)],
                    "properties": {"Node name for S&R": n["type"]},
                    "widgets_values": n["raw"] if n["raw"] is not None else self.widgets(n["type"], n["values"])}
            if n["title"]:
                node["title"] = n["title"]
            if n["color"]:
                node["color"], node["bgcolor"] = n["color"], "#353"
            nodes.append(node)
        return {"last_node_id": max(self.nodes), "last_link_id": next_link - 1 + len(self.extra_links),
                "nodes": nodes, "links": links + self.extra_links,
                "groups": [{"id": 1, "title": "AnimateDiff", "bounding": [50, 30, 1800, 700], "color": "#a1309b",
                            "font_size": 24, "flags": {}}],
                "config": {}, "extra": {"ds": {"scale": 1.0, "offset": [0, 0]}}, "version": 0.4}

    def api(self) -> dict:
        """As the front end writes it: virtual nodes (Reroute) left out, links resolved through them."""
        def resolve(src, slot):
            while self.nodes[src]["type"] == "Reroute":
                src, slot = self.nodes[src]["links"][""]
            return src, slot
        out = {}
        for node_id, n in self.nodes.items():
            if n["type"] == "Reroute":
                continue
            names, _, is_dict = self.layout(n["type"])
            if names is None:
                inputs = dict(OTHERS[n["type"]][0]) if is_dict else {f"w{i}": v for i, v in
                                                                     enumerate(OTHERS[n["type"]][0])}
                inputs.pop("videopreview", None)
            else:
                values = self.widgets(n["type"], n["values"])
                inputs = {name.rstrip("~*"): v for name, v in zip(names, values)
                          if not name.endswith(":control") and not name.endswith("~")}
            for name, (src, slot) in n["links"].items():
                src, slot = resolve(src, slot)
                inputs[name] = [str(src), slot]
            out[str(node_id)] = {"inputs": inputs, "class_type": n["type"], "_meta": {"title": n["title"] or n["type"]}}
        return out


def base(b: Build, frames: int = 16, prompt: str = "a red fox running through snow") -> None:
    """Checkpoint (1), prompts (2, 3), an empty latent (4): what every corpus workflow starts from."""
    b.add(1, "CheckpointLoaderSimple", {"ckpt_name": "v1-5-pruned-emaonly.safetensors"})
    b.add(2, "CLIPTextEncode", {"text": prompt}, {"clip": (1, 1)})
    b.add(3, "CLIPTextEncode", {"text": "blurry, low quality"}, {"clip": (1, 1)})
    b.add(4, "EmptyLatentImage", {"width": 512, "height": 512, "batch_size": frames})


def sampler_and_output(b: Build, model: tuple, latent=(4, 0), vhs: bool = False) -> None:
    b.add(10, "KSampler", {"seed": 42, "steps": 20, "cfg": 7.5, "sampler_name": "euler", "scheduler": "normal",
                           "denoise": 1.0}, {"model": model, "positive": (2, 0), "negative": (3, 0),
                                             "latent_image": latent})
    b.add(11, "VAEDecode", {}, {"samples": (10, 0), "vae": (1, 2)})
    if vhs:
        b.add(12, "VHS_VideoCombine", None, {"images": (11, 0)})
    else:
        b.add(12, "SaveLatent", {"filename_prefix": "corpus/latent"}, {"samples": (10, 0)})


def gen1_text_to_animation() -> Build:
    """The Gen1 loader with its context options (the most shared AnimateDiff workflow), saved with VHS output."""
    b = Build()
    base(b, frames=32)
    b.add(5, "ADE_AnimateDiffUniformContextOptions", {"context_length": 16, "context_overlap": 4,
                                                      "closed_loop": False, "fuse_method": "flat"})
    b.add(7, "Reroute", None, {"": (5, 0)})  # the editor's pass-through
    b.add(6, "ADE_AnimateDiffLoaderWithContext", {"model_name": "v3_sd15_mm.ckpt",
                                                  "beta_schedule": "sqrt_linear (AnimateDiff)", "motion_scale": 1.0},
          {"model": (1, 0), "context_options": (7, 0)}, title="AnimateDiff", color="#232")
    sampler_and_output(b, (6, 0), vhs=True)
    return b


def gen1_loras_settings_free_init() -> Build:
    """Gen1 loader with a motion LoRA chain, Sample Settings (FreeNoise) with FreeInit, static windows, an effect
    multival with a mask, beside IPAdapter."""
    b = Build()
    base(b, frames=24)
    b.add(20, "IPAdapterUnifiedLoader", None, {"model": (1, 0)})
    b.add(5, "ADE_StandardStaticContextOptions", {"context_length": 16, "context_overlap": 4})
    b.add(7, "ADE_AnimateDiffLoRALoader", {"name": "v2_lora_ZoomIn.ckpt", "strength": 0.8})
    b.add(8, "ADE_AnimateDiffLoRALoader", {"name": "v2_lora_PanLeft.ckpt", "strength": 0.5},
          {"prev_motion_lora": (7, 0)})
    b.add(13, "ADE_IterationOptsFreeInit", {"iterations": 2, "filter": "butterworth", "d_s": 0.25, "d_t": 0.25,
                                            "n_butterworth": 4})
    b.add(14, "ADE_AnimateDiffSamplingSettings", {"noise_type": "FreeNoise"}, {"iteration_opts": (13, 0)},
          raw_values=[0, "FreeNoise", "comfy", 0, 0, False])  # saved before front end 1.16: seed_override's slot
    b.add(15, "SolidMask", {"value": 1.0, "width": 512, "height": 512})
    b.add(16, "ADE_MultivalDynamic", {"float_val": 0.9}, {"mask_optional": (15, 0)})
    b.add(6, "ADE_AnimateDiffLoaderGen1", {"model_name": "mm_sd_v15_v2.ckpt", "beta_schedule": "autoselect"},
          {"model": (20, 0), "context_options": (5, 0), "motion_lora": (8, 0), "sample_settings": (14, 0),
           "effect_multival": (16, 0)})
    sampler_and_output(b, (6, 0))
    return b


def gen2_text_to_animation() -> Build:
    """Gen2: Load AnimateDiff Model -> Apply AnimateDiff Model -> Use Evolved Sampling, uniform windows."""
    b = Build()
    base(b, frames=16)
    b.add(5, "ADE_StandardUniformContextOptions", {"context_length": 16, "context_overlap": 4})
    b.add(7, "ADE_LoadAnimateDiffModel", {"model_name": "v3_sd15_mm.ckpt"})
    b.add(8, "ADE_ApplyAnimateDiffModelSimple", {}, {"motion_model": (7, 0)})
    b.add(6, "ADE_UseEvolvedSampling", {"beta_schedule": "autoselect"},
          {"model": (1, 0), "m_models": (8, 0), "context_options": (5, 0)})
    sampler_and_output(b, (6, 0))
    return b


def gen2_advanced() -> Build:
    """Gen2 (Adv.) with start / end percent, a scale multival, unsupported side nodes (PE adjust, custom CFG,
    keyframes), an Advanced-ControlNet apply and a prompt schedule."""
    b = Build()
    base(b, frames=16)
    b.add(30, "BatchPromptSchedule", None, {"clip": (1, 1)})
    b.add(7, "ADE_AdjustPEFullStretch", {"pe_stretch": 4})
    b.add(17, "ADE_AnimateDiffSettings", {}, {"pe_adjust": (7, 0)})
    b.add(8, "ADE_LoadAnimateDiffModel", {"model_name": "mm_sd_v15_v2.ckpt"}, {"ad_settings": (17, 0)})
    b.add(9, "ADE_MultivalDynamic", {"float_val": 1.2})
    b.add(13, "ADE_AnimateDiffKeyframe", None)
    b.add(14, "ADE_ApplyAnimateDiffModel", {"start_percent": 0.1, "end_percent": 0.9},
          {"motion_model": (8, 0), "scale_multival": (9, 0), "ad_keyframes": (13, 0)})
    b.add(15, "ADE_CustomCFGSimple", None)
    b.add(16, "ADE_AnimateDiffSamplingSettings", {"noise_type": "default"}, {"custom_cfg": (15, 0)})
    b.add(6, "ADE_UseEvolvedSampling", {"beta_schedule": "lcm"},
          {"model": (1, 0), "m_models": (14, 0), "sample_settings": (16, 0)})
    b.add(31, "ControlNetLoader", {"control_net_name": "control_v11p_sd15_canny.pth"})
    b.add(32, "ACN_AdvancedControlNetApply", None, {"positive": (30, 0), "negative": (3, 0), "control_net": (31, 0)})
    b.add(10, "KSampler", {"seed": 7, "steps": 20, "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal",
                           "denoise": 1.0}, {"model": (6, 0), "positive": (32, 0), "negative": (32, 1),
                                             "latent_image": (4, 0)})
    b.add(11, "VAEDecode", {}, {"samples": (10, 0), "vae": (1, 2)})
    b.add(12, "ADE_AnimateDiffCombine", {"frame_rate": 8, "filename_prefix": "gen2", "format": "image/gif"},
          {"images": (11, 0)})
    return b


def legacy_loaders() -> Build:
    """The oldest nodes: AnimateDiffLoaderV1 (MODEL and LATENT out), the Advanced one with its windows, the
    Combine node in its 2023 four-value form, the big-batch latent, and Unload."""
    b = Build()
    base(b, frames=16)
    b.add(5, "ADE_EmptyLatentImageLarge", {"width": 512, "height": 512, "batch_size": 48})
    b.add(6, "AnimateDiffLoaderV1", {"model_name": "mm_sd_v14.ckpt", "beta_schedule": "sqrt_linear (AnimateDiff)"},
          {"model": (1, 0), "latents": (4, 0)})
    b.add(7, "ADE_AnimateDiffLoaderV1Advanced", {"model_name": "mm_sd_v15.ckpt", "context_length": 16,
                                                 "context_overlap": 4, "closed_loop": True,
                                                 "beta_schedule": "sqrt_linear (AnimateDiff)"},
          {"model": (1, 0), "latents": (5, 0)})
    b.add(10, "KSampler", {"seed": 3, "steps": 20, "cfg": 7.5, "sampler_name": "euler", "scheduler": "normal",
                           "denoise": 1.0}, {"model": (6, 0), "positive": (2, 0), "negative": (3, 0),
                                             "latent_image": (6, 1)})
    b.add(11, "VAEDecode", {}, {"samples": (10, 0), "vae": (1, 2)})
    b.add(12, "ADE_AnimateDiffCombine",
          {"frame_rate": 8, "loop_count": 0, "save_image": True, "filename_prefix": "old"},
          {"images": (11, 0)}, raw_values=[8, 0, True, "old"])  # its order before 2023-09-18
    b.add(13, "ADE_AnimateDiffUnload", {}, {"model": (7, 0)})
    b.add(14, "KSampler", {"seed": 4, "steps": 20, "cfg": 7.5, "sampler_name": "euler", "scheduler": "normal",
                           "denoise": 1.0}, {"model": (13, 0), "positive": (2, 0), "negative": (3, 0),
                                             "latent_image": (7, 1)})
    b.add(15, "SaveLatent", {"filename_prefix": "corpus/plain"}, {"samples": (14, 0)})
    return b


def artventure() -> Build:
    """ArtVentureX's sampler with its module loader, a LoRA stack, sliding windows and Combine."""
    b = Build()
    base(b, frames=1)
    b.add(5, "AnimateDiffLoraLoader", {"lora_name": "v2_lora_ZoomIn.ckpt", "alpha": 0.7})
    b.add(6, "AnimateDiffModuleLoader", {"model_name": "mm_sd_v15_v2.ckpt"}, {"lora_stack": (5, 0)})
    b.add(7, "AnimateDiffSlidingWindowOptions", {"context_length": 16, "context_overlap": 4, "closed_loop": False})
    b.add(10, "AnimateDiffSampler", {"frame_number": 32, "seed": 11, "seed:control": "randomize", "steps": 20,
                                     "cfg": 7.5, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0},
          {"motion_module": (6, 0), "model": (1, 0), "positive": (2, 0), "negative": (3, 0), "latent_image": (4, 0),
           "sliding_window_opts": (7, 0)})
    b.add(11, "VAEDecode", {}, {"samples": (10, 0), "vae": (1, 2)})
    b.add(12, "AnimateDiffCombine", {"frame_rate": 12, "loop_count": 0, "save_image": True,
                                     "filename_prefix": "avx", "format": "video/h264-mp4", "pingpong": False},
          {"images": (11, 0)})
    return b


def mixed_and_unsupported() -> Build:
    """Two generations in one graph (Gen1 and ArtVentureX), unsupported ADE nodes (CameraCtrl, PIA, ContextRef,
    noise layers), a VHS video in and out, and a link an old editor left dangling."""
    b = Build()
    base(b, frames=16)
    b.add(5, "VHS_LoadVideo", None)
    b.add(6, "ADE_AnimateDiffLoaderGen1", {"model_name": "v3_sd15_mm.ckpt"}, {"model": (1, 0)})
    b.add(7, "ADE_LoadAnimateDiffModelWithCameraCtrl", None)
    b.add(8, "ADE_InjectPIAIntoAnimateDiffModel", None)
    b.add(9, "ADE_ContextExtras_ContextRef", None)
    b.add(13, "ADE_NoiseLayerAdd", None)
    b.add(14, "AnimateDiffModuleLoader", {"model_name": "mm_sd_v15_v2.ckpt"})
    b.add(15, "AnimateDiffSampler", {"frame_number": 16, "seed": 5}, {
        "motion_module": (14, 0), "model": (1, 0), "positive": (2, 0), "negative": (3, 0), "latent_image": (4, 0)})
    sampler_and_output(b, (6, 0), vhs=True)
    b.extra_links.append([99, 77, 0, 10, 9, "MODEL"])  # from a node deleted long ago
    return b


CORPUS = {"gen1_text_to_animation": gen1_text_to_animation, "gen1_loras_settings_free_init":
          gen1_loras_settings_free_init, "gen2_text_to_animation": gen2_text_to_animation,
          "gen2_advanced": gen2_advanced, "legacy_loaders": legacy_loaders, "artventure": artventure,
          "mixed_and_unsupported": mixed_and_unsupported}
