"""The chains a converted loader builds, and how side nodes are read into them.

AnimateDiff-Evolved's graphs differ from motion_core's in shape, not only in names: its context options, sample
settings, motion LoRAs and multivals are side inputs of a loader, where motion_core has them in the MODEL /
motion-module chain. So a loader takes its side inputs along: Load Motion Module -> [Apply Motion LoRA ...] ->
Inject into Model -> [Context Options <- FreeInit Options], each side node converted in place where it stands for a
node of the chain, or merged into one (`Converter`; the node rules themselves are in rules.py).
"""

from __future__ import annotations

from .graph import Graph, Node, _is_api_link
from .report import Report
from .specs import SOURCES, Spec

LEFT = -360  # pixels left of a node for a new node that feeds it

# AnimateDiff-Evolved's noise types and fuse methods -> ours; None: no equivalent
NOISE = {"default": "independent", "FreeNoise": "freenoise", "repeated_context": "repeated_context",
         "constant": "constant", "empty": None}
SAVE_FORMATS = {"image/gif": "gif", "image/webp": "webp", "video/h264-mp4": "mp4", "video/h265-mp4": "mp4",
                "video/nvenc_h264-mp4": "mp4", "video/nvenc_hevc-mp4": "mp4"}
CONTEXT_NODES = {"ADE_AnimateDiffUniformContextOptions": "looped", "ADE_StandardUniformContextOptions": "uniform",
                 "ADE_StandardStaticContextOptions": "static", "ADE_LoopedUniformContextOptions": "looped",
                 "ADE_BatchedContextOptions": "static"}
GEN1 = ("ADE_AnimateDiffLoaderWithContext", "ADE_AnimateDiffLoaderGen1", "AnimateDiffLoaderV1",
        "ADE_AnimateDiffLoaderV1Advanced")


def decode(g: Graph, node: Node) -> dict:
    """A source node's settings by name: its widget values (UI: positional over its spec's widget order, forceInput
    dummy slots and older orders recognised) or its API inputs; defaults for what the file lacks."""
    spec: Spec = SOURCES[node.type]
    values = {}
    if g.form == "api":
        values = {k: v for k, v in (node.raw.get("inputs") or {}).items() if not _is_api_link(v)}
    else:
        stored = node.raw.get("widgets_values")
        if isinstance(stored, dict):
            values = dict(stored)
        elif isinstance(stored, list):
            names = spec.widget_names()
            forced = spec.widget_names(forced_slots=True)
            if len(stored) == len(forced) != len(names):
                names = forced
            for older in spec.older:
                if len(stored) == len(older) and older_matches(node.type, stored):
                    names = list(older)
            values = {n.rstrip("*~"): v for n, v in zip(names, stored)}
    return {**spec.defaults(), **values}


def older_matches(kind: str, stored: list) -> bool:
    if kind == "ADE_AnimateDiffCombine":  # before 2023-09-18: [frame_rate, loop_count, save_image, prefix]
        return isinstance(stored[2], bool)
    return False


class Converter:
    def __init__(self, g: Graph, report: Report):
        self.g, self.report = g, report
        self.merged: set = set()  # side nodes taken into a chain (removed once nothing else consumes them)
        # every source node's class and settings as read (a node converted for one loader is read by another)
        self.kinds = {n.id: n.type for n in g.nodes.values() if n.type in SOURCES}
        self.read = {i: decode(g, g.nodes[i]) for i in self.kinds}

    def kind(self, node: Node | None) -> str | None:
        return None if node is None else self.kinds.get(node.id, node.type)

    def s(self, node: Node) -> dict:
        return self.read[node.id]

    # ---- helpers ------------------------------------------------------------------------------------------------
    def feeder(self, node: Node | None, name: str) -> Node | None:
        """The node feeding input `name` of `node`, through the editor's Reroute nodes (which only pass a link on)."""
        src = None if node is None else self.g.source(node.id, name)
        for _ in range(64):
            if src is None or src.type != "Reroute":
                break
            edge = next(iter(self.g.inputs(src.id).values()), None)
            src = None if edge is None else self.g.nodes.get(edge.src)
        return src

    def carry(self, src: Node, name: str, dst: Node, to: str) -> None:
        """The link into `src`'s input `name`, if any, now feeds `dst`'s input `to`."""
        edge = self.g.inputs(src.id).get(name)
        if edge is not None:
            self.g.link(edge.src, edge.slot, dst.id, to, edge.type)

    def absorb(self, side: Node, into: Node, what: str) -> None:
        """`side`'s settings went into `into`: its edges into converted nodes go; it goes when nothing else uses it."""
        if side.id not in self.g.nodes or side.changed:
            return
        self.merged.add(side.id)
        self.note(side, "merged", f"{what} -> #{into.id} {into.type}")

    def note(self, node: Node, kind: str, text: str) -> None:
        """A report line about `node`, under the class it had in the source workflow."""
        self.report.add(node.id, self.kind(node), kind, text)

    def approx(self, node: Node, text: str) -> None:
        self.note(node, "approximate", text)

    def left(self, node: Node, text: str) -> None:
        self.note(node, "left", text)

    def finish(self) -> None:
        """Remove each merged side node nothing else uses (merged nodes feeding each other go together); one that
        an unconverted node still uses stays for it."""
        gone = {i for i in self.merged if i in self.g.nodes and not self.g.nodes[i].changed}
        while True:
            kept = {i for i in gone if any(not self.g.nodes[e.dst].changed and e.dst not in gone
                                           for e in self.g.consumers(i))}
            if not kept:
                break
            gone -= kept
            for node_id in kept:
                node = self.g.nodes[node_id]
                users = sorted({self.g.nodes[e.dst].type for e in self.g.consumers(node_id)
                                if not self.g.nodes[e.dst].changed})
                self.note(node, "left", f"also used by {', '.join(users)}: kept for them")
                for e in self.g.consumers(node_id):
                    if self.g.nodes[e.dst].changed:
                        self.g.unlink(e.dst, e.input)
        for node_id in sorted(gone, key=str):
            self.g.remove(node_id)

    # ---- the motion module chain ----------------------------------------------------------------------------------
    def module_chain(self, loader: Node, model_name, lora: Node | None, reuse: Node | None = None) -> Node:
        """Load Motion Module (`reuse` converted in place, else a new node left of `loader`) and an Apply Motion LoRA
        per motion LoRA in the chain starting at `lora`; returns the chain's last node."""
        if reuse is not None and reuse.changed:  # converted for another anchor already
            head = reuse
        elif reuse is not None:
            head = self.g.convert(reuse, "MC_LoadMotionModule", {"model_name": model_name})
            self.note(reuse, "converted", f"-> MC_LoadMotionModule ({model_name})")
        else:
            head = self.g.add("MC_LoadMotionModule", {"model_name": model_name}, loader, (2 * LEFT, 0))
        for step, node in enumerate(self.lora_chain(lora)):
            s = self.s(node)
            name = s.get("name", s.get("lora_name", ""))
            strength = float(s.get("strength", s.get("alpha", 1.0)))
            if node.changed:  # shared by two loaders: a chain of its own here
                node = self.g.add("MC_ApplyMotionLoRA", {}, loader, (LEFT, 140 * (step + 1)))
            else:
                self.note(node, "converted", f"-> MC_ApplyMotionLoRA ({name} x {strength:g})")
            if not -2.0 <= strength <= 2.0:
                self.approx(node, f"strength {strength:g} is outside Apply Motion LoRA's [-2, 2]: used "
                                  f"{max(-2.0, min(2.0, strength)):g}")
                strength = max(-2.0, min(2.0, strength))
            for name_in in ("prev_motion_lora", "lora_stack"):
                self.g.unlink(node.id, name_in)
            for e in self.g.consumers(node.id):  # (into the loader it fed: converted)
                self.g.unlink(e.dst, e.input)
            self.g.convert(node, "MC_ApplyMotionLoRA", {"lora_name": name, "strength": strength})
            self.g.link(head.id, 0, node.id, "motion_module")
            head = node
        return head

    def lora_chain(self, first: Node | None) -> list[Node]:
        """Motion LoRA loaders from `first` back along prev_motion_lora / lora_stack (ADE / ArtVentureX)."""
        chain, node = [], first
        while self.kind(node) in ("ADE_AnimateDiffLoRALoader", "AnimateDiffLoraLoader") and node not in chain:
            chain.append(node)
            node = self.feeder(node, "prev_motion_lora" if self.kind(node).startswith("ADE") else "lora_stack")
        if node is not None:
            self.left(node, "in a motion LoRA chain but not a motion LoRA loader: not converted")
        return chain[::-1]

    # ---- context windows, noise, FreeInit ---------------------------------------------------------------------
    def context(self, anchor: Node, model: tuple, ctx: Node | None, settings: Node | None) -> tuple:
        """Context Options on the MODEL at `model` (node id, output slot), from an ADE context-options node and / or
        sample settings; returns the end of the MODEL chain: the Context Options node's output, or `model` when
        neither asks for anything. The context node (else the settings node) becomes the Context Options node."""
        values = {"context_length": 0, "context_overlap": 0, "context_schedule": "static", "closed_loop": False,
                  "fuse_method": "pyramid", "noise_type": "independent"}
        free_init = None
        if ctx is not None:
            known = self.kind(ctx) in CONTEXT_NODES
            values.update(self.context_values(ctx))  # (reports a kind it does not know, left as it was)
            ctx = ctx if known else None
        if settings is not None:
            values["noise_type"], free_init = self.sample_settings(settings)
            settings = settings if self.kind(settings) == "ADE_AnimateDiffSamplingSettings" else None
        if ctx is None and values["noise_type"] == "independent" and free_init is None:
            if settings is not None:
                self.absorb(settings, anchor, "sample settings at their defaults")
            return model
        home = next((n for n in (ctx, settings) if n is not None and not n.changed), None)
        if home is None:
            node = self.g.add("MC_ContextOptions", values, anchor, (0, 320))
        else:
            for e in self.g.consumers(home.id):
                self.g.unlink(e.dst, e.input)
            for name in list(self.g.inputs(home.id)):
                self.g.unlink(home.id, name)
            node = self.g.convert(home, "MC_ContextOptions", values)
            self.note(home, "converted", "-> MC_ContextOptions" + (
                " (no windows: its starting noise / FreeInit)" if not values["context_length"] else ""))
        for other in (ctx, settings):
            if other is not None and other is not home:
                self.absorb(other, node, "its settings")
        self.g.link(model[0], model[1], node.id, "model", "MODEL")
        if free_init is not None:
            self.g.link(free_init.id, 0, node.id, "free_init")
        return node.id, 0

    def context_values(self, ctx: Node) -> dict:
        kind = self.kind(ctx)
        if kind not in CONTEXT_NODES:
            self.left(ctx, "context options of a kind motion_core has no windows for (views, context extras): "
                           "not converted; closest: Context Options' static / uniform / looped windows")
            return {}
        s = self.s(ctx)
        values = {"context_length": int(s["context_length"]), "context_overlap": int(s.get("context_overlap", 0)),
                  "context_schedule": CONTEXT_NODES[kind], "closed_loop": bool(s.get("closed_loop", False))}
        fuse = s.get("fuse_method", "flat" if kind == "ADE_BatchedContextOptions" else "pyramid")
        values["fuse_method"] = fuse if fuse in ("pyramid", "flat") else "pyramid"
        if fuse != values["fuse_method"]:
            self.approx(ctx, f"fuse method {fuse!r}: Context Options fuses by pyramid or flat; used pyramid")
        if kind == "ADE_BatchedContextOptions":
            values["fuse_method"] = "flat"
            self.approx(ctx, "batched windows (no overlap, no fusing): static windows with overlap 0, flat fuse "
                             "(the last window is moved back to end on the last frame)")
        if int(s.get("context_stride", 1)) != 1:
            self.approx(ctx, f"context_stride {s['context_stride']}: Context Options has none; used 1")
        if float(s.get("start_percent", 0.0)) > 0 or int(s.get("guarantee_steps", 1)) != 1:
            self.approx(ctx, f"start_percent {s.get('start_percent')} / guarantee_steps {s.get('guarantee_steps')}: "
                             "windows here apply from the first step")
        for name, why in (("prev_context", "chained context options (a schedule per sampling percent)"),
                          ("view_opts", "view options")):
            if self.feeder(ctx, name) is not None:
                self.approx(ctx, f"{why}: not supported, only this node's windows are used")
        if values["context_length"] > 128:
            self.approx(ctx, f"context_length {values['context_length']} is above Context Options' 128: used 128")
            values["context_length"] = 128
        values["context_overlap"] = min(values["context_overlap"], max(values["context_length"] - 1, 0))
        return values

    def sample_settings(self, settings: Node) -> tuple[str, Node | None]:
        """(our noise type, a FreeInit Options node or None) from ADE's Sample Settings; the rest is reported."""
        if self.kind(settings) != "ADE_AnimateDiffSamplingSettings":
            self.left(settings, "not ADE's Sample Settings: not converted")
            return "independent", None
        s = self.s(settings)
        noise = NOISE.get(s["noise_type"], "independent")
        if noise is None:
            self.approx(settings, f"noise_type {s['noise_type']!r} (zero noise): not supported; used independent")
            noise = "independent"
        if s["seed_gen"] != "comfy":
            self.approx(settings, f"seed_gen {s['seed_gen']!r}: noise here is drawn as ComfyUI draws it (comfy)")
        for name in ("batch_offset", "seed_offset"):
            if int(s.get(name) or 0):
                self.approx(settings, f"{name} {s[name]}: not supported; used 0")
        for name, why in (("noise_layers", "noise layers"), ("custom_cfg", "custom CFG per step"),
                          ("sigma_schedule", "a sigma schedule"), ("image_inject", "image injection"),
                          ("ancestral_opts", "ancestral options"), ("seed_override", "a seed override")):
            if self.feeder(settings, name) is not None:
                self.approx(settings, f"{why}: not supported, left out (its nodes stay in the graph)")
        free_init = None
        opts = self.feeder(settings, "iteration_opts")
        if self.kind(opts) == "ADE_IterationOptsFreeInit":
            free_init = self.free_init(opts)
        elif opts is not None:
            self.approx(opts, "iteration options other than FreeInit: not supported, one sampling is made")
        return noise, free_init

    def free_init(self, opts: Node) -> Node:
        if opts.changed:
            return opts
        s = self.s(opts)
        values = {"iterations": max(1, min(10, int(s["iterations"]))), "filter": s["filter"],
                  "order": max(1, min(16, int(s["n_butterworth"]))),
                  "spatial_stop": max(0.01, min(1.0, float(s["d_s"]))),
                  "temporal_stop": max(0.01, min(1.0, float(s["d_t"]))), "fast_sampling": False}
        for ours, theirs in (("iterations", "iterations"), ("order", "n_butterworth"), ("spatial_stop", "d_s"),
                             ("temporal_stop", "d_t")):
            if float(values[ours]) != float(s[theirs]):
                self.approx(opts, f"{theirs} {s[theirs]} is outside FreeInit Options' range: used {values[ours]}")
        if s["init_type"] != "FreeInit [sampler sigma]" or int(s["sigma_step"]) != 999 or s["apply_to_1st_iter"]:
            self.approx(opts, f"init_type {s['init_type']!r}, sigma_step {s['sigma_step']}, apply_to_1st_iter "
                              f"{s['apply_to_1st_iter']}: FreeInit here re-noises each round's result to the "
                              "sampling's first sigma (FreeInit [sampler sigma], 999)")
        self.note(opts, "converted", "-> MC_FreeInitOptions")
        return self.g.convert(opts, "MC_FreeInitOptions", values)
