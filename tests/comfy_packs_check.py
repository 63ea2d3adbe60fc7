"""Run inside ComfyUI's Python (see test_comfy_packs.py): motion_core's nodes beside the node packs AnimateDiff users
combine with them, each loaded from the folder its environment variable names (never shipped with motion_core):

    python tests/comfy_packs_check.py COMFYUI_PATH CHECK

CHECK is one of CHECKS. The tiny SD1.5-layout model and tiny v2 motion module of comfy_nodes_check (SparseCtrl: the
random full-size models of the workflow workspace, ADE's motion model being full-size only), 48 frames in windows of
16 / 4 unless said otherwise. Each check records what every window's UNet call and every control call saw, and
prints one JSON object of findings."""

import importlib.util
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMFY, CHECK = sys.argv[1:3]  # (comfy_nodes_check then leaves ComfyUI's own arguments in sys.argv)
sys.path[:0] = [str(ROOT / "tests"), str(ROOT)]
from comfy_windows_check import (EVENTS, FRAMES, SIZE, hint_video, ksampler, record_unet, tiny_controlnet,  # noqa: E402
                                 unet_options)
from comfy_nodes_check import load_pack, tiny_folders, tiny_model  # noqa: E402

import torch  # noqa: E402

from motion_core.context import ContextOptions, windows  # noqa: E402

WANT = sorted({tuple(w) for w in windows(FRAMES, ContextOptions(16, 4, "static"), 0)})
sys.path.insert(0, COMFY)  # first, as main.py has it: packs that import `server` need its `utils` package, which
# comfy/utils.py would shadow (ComfyUI puts comfy/ on the path while it loads)


def import_pack(variable: str, name: str):
    """The node pack in the folder $variable names, imported as ComfyUI imports a custom node (a package)."""
    folder = Path(os.environ[variable])
    spec = importlib.util.spec_from_file_location(name, folder / "__init__.py", submodule_search_locations=[str(folder)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def setup():
    """Our nodes, the tiny model with the tiny v2 module injected (recording each UNet call's ad_params), and a
    positive / negative conditioning for it."""
    N = load_pack().NODE_CLASS_MAPPINGS
    tiny_folders()
    (mm,) = N["MC_LoadMotionModule"]().load("mm_tiny_v2.safetensors")
    (injected,) = N["MC_InjectMotionModule"]().inject(tiny_model(), mm, 1.0, 1.0, "auto")
    g = torch.Generator().manual_seed(0)
    text = [[torch.randn(1, 7, 32, generator=g), {}]]
    negative = [[torch.randn(1, 7, 32, generator=g), {}]]
    return N, mm, record_unet(injected), text, negative


def windowed(N, model, length=16, overlap=4):
    return N["MC_ContextOptions"]().apply(model, length, overlap, "static", False, "pyramid", "independent")[0]


def pairs(kind: str) -> dict:
    """For the events since EVENTS.clear(): each UNet call's window, and whether the `kind` events right before it
    (since the previous UNet call) were all for that window's frames."""
    unets, paired, pending = [], True, []
    for event in EVENTS:
        if event[0] == kind:
            pending.append(event[2])
        elif event[0] == "unet":
            window = event[2]
            unets.append(tuple(window) if window else None)
            paired &= bool(pending) and all(list(p) == list(window) for p in pending)
            pending = []
    return {"unet_windows": sorted(set(unets), key=str) == WANT, "paired": paired, "calls": len(unets)}


def check_acn():
    """Advanced-ControlNet's own controls (Apply Advanced ControlNet, its keyframes and masks) slice their inputs by
    the ad_params Context Options publishes: hint frames, latent keyframes (full-clip indices), a mask per frame;
    through KSampler + Context Options, through Sample Frames, and under core's Context Windows (Manual)."""
    acn = import_pack("ACN_PATH", "acn_pack")
    A = acn.NODE_CLASS_MAPPINGS
    base = sys.modules["acn_pack.adv_control.utils"].AdvancedControlBase
    N, _, model, text, negative = setup()
    empty = {"samples": torch.zeros(FRAMES, 4, SIZE // 8, SIZE // 8)}
    ramp = hint_video([i / (FRAMES - 1) for i in range(FRAMES)])
    apply = A["ACN_AdvancedControlNetApply_v2"]().apply_controlnet
    results = {}

    mults, masks = base.calc_latent_keyframe_mults, base.prepare_mask_cond_hint

    def record_mults(self, x, batched_number):  # each window's latent keyframe strengths, by full-clip frame
        out = mults(self, x, batched_number)
        n = x.shape[0] // batched_number
        frames = self.sub_idxs or list(range(n))
        EVENTS.append(("mults", None, {int(f): round(float(v), 4) for f, v in zip(frames, out.flatten()[:n])}))
        return out

    def record_mask(self, x_noisy, t, cond, batched_number, dtype=None, direct_attn=False):
        masks(self, x_noisy, t, cond, batched_number, dtype, direct_attn)
        if self.mask_cond_hint is not None:  # mask frame i holds the value i / 47
            n = x_noisy.shape[0] // batched_number
            rows = self.mask_cond_hint[:n].flatten(1).mean(1) * (FRAMES - 1)
            EVENTS.append(("mask", None, rows.round().long().tolist()))
    base.calc_latent_keyframe_mults, base.prepare_mask_cond_hint = record_mults, record_mask

    # 1. hint frames, through KSampler + Context Options and through Sample Frames
    pos, neg = apply(text, negative, tiny_controlnet(1), ramp, 1.0, 0.0, 1.0)
    EVENTS.clear()
    ksampler(windowed(N, model), pos, neg, empty, steps=1)
    results["hints_ksampler"] = pairs("hint")
    EVENTS.clear()
    N["MC_SampleFrames"]().sample(model, pos, neg, FRAMES, SIZE, SIZE, 7, 1, 5.0, "euler", "normal", 16, 4, "static",
                                  False, "pyramid", "independent", 1.0)
    results["hints_sample_frames"] = pairs("hint")

    # 2. latent keyframes: frame 0 at 1.0, frame 30 at 0.5, every other frame nulled (null_latent_kf_strength 0)
    (keyframes,) = A["LatentKeyframeGroup"]().load_keyframes("0=1.0, 30=0.5")
    pos, neg = apply(text, negative, tiny_controlnet(1), ramp, 1.0, 0.0, 1.0, latent_kf_override=keyframes)
    EVENTS.clear()
    ksampler(windowed(N, model), pos, neg, empty, steps=1)
    seen = [e[2] for e in EVENTS if e[0] == "mults"]
    want = {0: 1.0, 30: 0.5}
    results["latent_keyframes"] = {
        "windows": sorted({tuple(sorted(s)) for s in seen}) == WANT,
        "strengths_on_their_frames": all(v == want.get(f, 0.0) for s in seen for f, v in s.items()),
        "keyframe_30_seen_in": sorted({min(s) for s in seen if 30 in s})}

    # 3. a mask per frame (mask i = i / 47): each window's control reads its own frames' masks
    mask = torch.arange(FRAMES, dtype=torch.float32).div(FRAMES - 1).view(-1, 1, 1).expand(-1, SIZE, SIZE).clone()
    pos, neg = apply(text, negative, tiny_controlnet(1), ramp, 1.0, 0.0, 1.0, mask_optional=mask)
    EVENTS.clear()
    ksampler(windowed(N, model), pos, neg, empty, steps=1)
    results["masks"] = pairs("mask")

    # 4. under ComfyUI's own Context Windows (Manual): ad_params come from Inject into Model
    try:
        from comfy_extras.nodes_context_windows import ContextWindowsManualNode
    except ImportError:
        results["hints_core_windows"] = None
    else:
        out = ContextWindowsManualNode.execute(model, 16, 4, "standard_static", 1, False, "pyramid", 0)
        pos, neg = apply(text, negative, tiny_controlnet(1), ramp, 1.0, 0.0, 1.0)
        EVENTS.clear()
        ksampler(out.result[0] if hasattr(out, "result") else out[0], pos, neg, empty, steps=1)
        results["hints_core_windows"] = pairs("hint")
    return results


def check_acn_sparsectrl():
    """Advanced-ControlNet's SparseCtrl (scribble, its index method "0, 20": two keyframes) through Context Options on
    24 frames in windows of 16 / 4: each window's SparseCtrl call places the keyframes that window holds, on their
    frames. SparseCtrl's motion model comes from AnimateDiff-Evolved (ACN builds it through ADE's registry), so
    both packs load; the models are the workflow workspace's random full-size ones (SD1.5, v3 module, SparseCtrl)."""
    import comfy.sd
    import folder_paths
    base = Path(os.environ.get("MOTION_CORE_COMFY_BASE", ROOT / "build" / "comfy_base")) / "models"
    import_pack("ADE_PATH", "ade_pack")
    acn = import_pack("ACN_PATH", "acn_pack")
    N = load_pack().NODE_CLASS_MAPPINGS
    for folder in ("controlnet", "animatediff_models", "checkpoints"):
        folder_paths.add_model_folder_path(folder, str(base / folder))
    A = acn.NODE_CLASS_MAPPINGS
    sparse = sys.modules["acn_pack.adv_control.control"].SparseCtrlAdvanced
    original = sparse.get_control_advanced

    def recording(self, x_noisy, t, cond, batched_number, transformer_options):
        out = original(self, x_noisy, t, cond, batched_number, transformer_options)
        n = x_noisy.shape[0] // batched_number
        frames = self.sub_idxs or list(range(n))
        marked = self.cond_hint[:n, -1].flatten(1).amax(1) > 0  # the mask channel: where a keyframe was placed
        EVENTS.append(("sparse", None, {"window": list(frames), "keyframes": [frames[i] for i in range(n)
                                                                             if marked[i]]}))
        return out
    sparse.get_control_advanced = recording
    model, clip, vae = comfy.sd.load_checkpoint_guess_config(
        str(base / "checkpoints" / "v1-5-pruned-emaonly.safetensors"), output_vae=True, output_clip=True,
        embedding_directory=None)[:3]
    (mm,) = N["MC_LoadMotionModule"]().load("v3_sd15_mm.ckpt")
    (injected,) = N["MC_InjectMotionModule"]().inject(model, mm, 1.0, 1.0, "auto")
    encode = lambda text: [[c, {"pooled_output": p}] for c, p in [clip.encode_from_tokens(  # noqa: E731
        clip.tokenize(text), return_pooled=True)]]
    (method,) = A["ACN_SparseCtrlIndexMethodNode"]().get_method("0, 20")
    (control,) = A["ACN_SparseCtrlLoaderAdvanced"]().load_controlnet("v3_sd15_sparsectrl_scribble.ckpt", True, 1.0,
                                                                       1.0, sparse_method=method)
    scribbles = torch.zeros(2, SIZE, SIZE, 3)
    scribbles[:, 20:44, 28:36] = 1.0
    pos, neg = A["ACN_AdvancedControlNetApply_v2"]().apply_controlnet(encode("a cat"), encode(""), control,
                                                                         scribbles, 1.0, 0.0, 1.0)
    EVENTS.clear()
    out = ksampler(windowed(N, injected), pos, neg, {"samples": torch.zeros(24, 4, SIZE // 8, SIZE // 8)}, steps=1)
    calls = [e[2] for e in EVENTS if e[0] == "sparse"]
    return {"calls": [(c["window"][0], c["window"][-1], c["keyframes"]) for c in calls],
            "windows": sorted({tuple(c["window"]) for c in calls}) ==
            sorted({tuple(w) for w in windows(24, ContextOptions(16, 4, "static"), 0)}),
            "keyframes_on_their_frames": bool(calls) and all(c["keyframes"] == [f for f in (0, 20) if f in c["window"]]
                                                             for c in calls),
            "finite": bool(torch.isfinite(out).all())}


def tiny_clip_vision(folder: Path):
    """A random-weight CLIP vision model in ComfyUI's class, from a tiny config (224 px input, 7x7 patches, width 32,
    2 layers, 16-wide image embeds): what CLIPVisionLoader gives, small enough for a CPU test."""
    import comfy.clip_vision
    config = {"hidden_act": "gelu", "hidden_size": 32, "image_size": 224, "intermediate_size": 64,
              "layer_norm_eps": 1e-5, "model_type": "clip_vision_model", "num_attention_heads": 2,
              "num_channels": 3, "num_hidden_layers": 2, "patch_size": 32, "projection_dim": 16}
    (folder / "clip_vision_tiny.json").write_text(json.dumps(config))
    clip_vision = comfy.clip_vision.ClipVisionModel(str(folder / "clip_vision_tiny.json"))
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for name, p in clip_vision.model.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2 + (1.0 if name.endswith("norm.weight") or "layernorm"
                                                                    in name and name.endswith("weight") else 0.0))
    return clip_vision


def tiny_ipadapter(embeds: int = 16, width: int = 32, inner: int = 32):
    """An IPAdapter model (plain SD1.5 kind: image_proj + ip_adapter to_k_ip / to_v_ip for its 16 cross-attentions)
    with random weights for the tiny UNet's attention width, as IPAdapterModelLoader returns it."""
    g = torch.Generator().manual_seed(6)
    r = lambda *shape: torch.randn(shape, generator=g) * 0.3  # noqa: E731
    ip = {f"{i}.to_{kv}_ip.weight": r(inner, width) for i in range(1, 32, 2) for kv in "kv"}
    proj = {"proj.weight": r(4 * width, embeds), "proj.bias": r(4 * width), "norm.weight": torch.ones(width),
            "norm.bias": torch.zeros(width)}
    return {"image_proj": proj, "ip_adapter": ip}


def check_ipadapter():
    """IPAdapter Batch (one image and one weight per frame, unfold_batch) on the injected model with Context Options:
    each window's image-prompt attention reads that window's embeds (frames matched by their rows), and a window
    whose weights are all 0 skips it, as in the whole clip."""
    import tempfile
    import_pack("IPADAPTER_PATH", "ipadapter_pack")
    ipa = sys.modules["ipadapter_pack.IPAdapterPlus"]
    N, _, model, text, negative = setup()
    original = ipa.ipadapter_attention

    def recording(out, q, k, v, extra_options, module_key="", ipadapter=None, cond=None, **kw):
        captured = []
        layer = ipadapter.ip_layers.to_kvs[module_key + "_to_k_ip"]
        hook = layer.register_forward_pre_hook(lambda m, args: captured.append(args[0]))
        try:
            result = original(out, q, k, v, extra_options, module_key=module_key, ipadapter=ipadapter, cond=cond, **kw)
        finally:
            hook.remove()
        sub = (extra_options.get("ad_params") or {}).get("sub_idxs")
        rows = [next((i for i in range(cond.shape[0]) if torch.allclose(c, cond[i].to(c.dtype))), None)
                for c in captured[0]] if captured else None
        EVENTS.append(("ipa", module_key, {"window": sub, "rows": rows}))
        return result
    ipa.ipadapter_attention = recording
    images = torch.rand(FRAMES, 1, 1, 3, generator=torch.Generator().manual_seed(4)).expand(-1, 96, 96, -1).clone()
    weights = [0.0] * 16 + [1.0] * 32  # the first window's frames weigh nothing
    clip_vision = tiny_clip_vision(Path(tempfile.mkdtemp()))
    (adapted, _) = ipa.IPAdapterBatch().apply_ipadapter(model, tiny_ipadapter(), weight=weights, image=images,
                                                        clip_vision=clip_vision, weight_type="linear")
    EVENTS.clear()
    out = ksampler(windowed(N, adapted), text, negative, {"samples": torch.zeros(FRAMES, 4, SIZE // 8, SIZE // 8)},
                   steps=1)
    calls = [e[2] for e in EVENTS if e[0] == "ipa"]
    read = [c for c in calls if c["rows"] is not None]
    return {"calls": len(calls), "windows": sorted({tuple(c["window"]) for c in calls if c["window"]}) == WANT,
            "rows_are_the_windows_frames": bool(read) and all(c["rows"] == c["window"] for c in read),
            "windows_read": sorted({tuple(c["window"]) for c in read}),
            "finite": bool(torch.isfinite(out).all())}


class StandInCLIP:
    """What FizzNodes' prompt schedules ask of a CLIP (tokenize, encode_from_tokens): each prompt's embedding is a
    function of its text (a seeded draw per prompt), so a cond row tells which prompt it came from."""

    def tokenize(self, text):
        return text

    def encode_from_tokens(self, tokens, return_pooled=False, **kw):
        g = torch.Generator().manual_seed(sum(map(ord, tokens)) + 7 * len(tokens))
        cond = torch.randn(1, 7, 32, generator=g)
        return (cond, torch.randn(1, 32, generator=g)) if return_pooled else cond


def check_schedules():
    """FizzNodes' Batch Prompt Schedule (one cond per frame) is sliced per window as Prompt Travel is; a per-frame
    value schedule (FizzNodes' pandas Series, KJNodes' FLOAT list) drives Inject into Model's strength_values."""
    results = {}
    N, mm, model, _, negative = setup()
    empty = {"samples": torch.zeros(FRAMES, 4, SIZE // 8, SIZE // 8)}
    if os.environ.get("FIZZNODES_PATH"):
        import tempfile
        main = sys.modules["__main__"]  # FizzNodes copies its web files beside the running script at import:
        script, main.__file__ = main.__file__, str(Path(tempfile.mkdtemp()) / "main.py")  # (ComfyUI's main.py)
        try:
            fizz = import_pack("FIZZNODES_PATH", "fizz_pack").NODE_CLASS_MAPPINGS
        finally:
            main.__file__ = script
        schedule = '"0": "a red circle", "24": "a blue square", "47": "a green triangle"'
        pos, _ = fizz["BatchPromptSchedule"]().animate(schedule, FRAMES, False, StandInCLIP(), 0, 0)
        full = pos[0][0]  # (48, 7, 32): one cond per frame

        def frames_of(context, cond_or_uncond):
            positive = context.chunk(len(cond_or_uncond))[cond_or_uncond.index(0)]  # (0: the positive's rows)
            return [next((i for i in range(FRAMES) if torch.equal(row, full[i])), None) for row in positive]
        m = model.clone()

        def record(executor, x, *args, **kwargs):
            options = unet_options(args, kwargs)
            context = kwargs.get("context", args[1] if len(args) > 1 else None)
            EVENTS.append(("cond", None, {"window": (options.get("ad_params") or {}).get("sub_idxs"),
                                          "rows": frames_of(context, options["cond_or_uncond"])}))
            return executor(x, *args, **kwargs)
        m.add_wrapper_with_key("diffusion_model", "mctest_cond", record)
        EVENTS.clear()
        ksampler(windowed(N, m), pos, negative, empty, steps=1)
        calls = [e[2] for e in EVENTS if e[0] == "cond"]
        distinct = len({tuple(r.flatten()[:4].tolist()) for r in full})
        results["prompt_schedule"] = {"cond_frames": int(full.shape[0]), "distinct_rows": distinct,
                                      "windows": sorted({tuple(c["window"]) for c in calls}) == WANT,
                                      "rows_are_the_windows_frames": all(c["rows"] == c["window"] for c in calls)}
        (series, _) = fizz["BatchValueSchedule"]().animate("0:(0.0), 23:(0.0), 24:(1.0), 47:(1.0)", FRAMES, False)
        results["fizz_value_type"] = type(series).__name__
    else:
        series = None
    sources = {"fizz_values": series}  # 0 on frames 0-23, 1 on 24-47
    if os.environ.get("KJNODES_PATH"):
        kj = import_pack("KJNODES_PATH", "kj_pack").NODE_CLASS_MAPPINGS
        (sources["kj_values"],) = kj["StringToFloatList"]().createlist(", ".join(["0"] * 24 + ["1"] * 24))
    (still,) = N["MC_InjectMotionModule"]().inject(tiny_model(), mm, 1.0, 0.0, "auto")
    text = [[negative[0][0] + 1.0, {}]]
    plain = ksampler(windowed(N, still), text, negative, empty, steps=1)
    for name, values in sources.items():
        if values is None:
            continue
        (injected,) = N["MC_InjectMotionModule"]().inject(tiny_model(), mm, 1.0, 1.0, "auto", strength_values=values)
        out = ksampler(windowed(N, injected), text, negative, empty, steps=1)
        results[name] = {"first_frames_as_strength_0": (out[:12] - plain[:12]).abs().max().item(),
                         "last_frames_moved": (out[40:] - plain[40:]).abs().mean().item()}
    return results


class StandInManager:
    """What Context Options reads of VHS's Meta Batch Manager: its batch size (the batch's number comes from the
    prompt, where VHS counts re-queues in the manager node's `requeue` input)."""
    frames_per_batch = 16


def check_meta_batch():
    """Each batch of a clip sampled in batches starts from its own frames of the whole clip's noise (independent and
    FreeNoise), a custom noise source's noise is used as given; a closed loop is refused in batches."""
    import comfy.sample
    import comfy.samplers
    from motion_core.context import ContextOptions as Options, starting_noise
    N, _, model, text, negative = setup()
    seen = []

    def noise_in(executor, noise, *args, **kwargs):  # inside Context Options' outer_sample: the noise it made
        seen.append(noise.clone())
        return executor(noise, *args, **kwargs)

    def batch(noise_type: str, requeue: int):
        """The model under Context Options as the manager's batch `requeue` sees it, recording its noise in seen."""
        prompt = {"5": {"class_type": "VHS_BatchManager", "inputs": {"frames_per_batch": 16, "requeue": requeue}},
                  "9": {"class_type": "MC_ContextOptions", "inputs": {"meta_batch": ["5", 0]}}}
        (m,) = N["MC_ContextOptions"]().apply(model, 8, 2, "static", False, "pyramid", noise_type,
                                              meta_batch=StandInManager(), prompt=prompt, unique_id="9")
        m = m.clone()
        m.add_wrapper_with_key("outer_sample", "zz_mctest_noise", noise_in)
        seen.clear()
        return m
    results = {}
    for noise_type in ("independent", "freenoise"):
        batches = []
        for requeue in (0, 1, 2):
            ksampler(batch(noise_type, requeue), text, negative, {"samples": torch.zeros(16, 4, SIZE // 8, SIZE // 8)},
                     seed=3, steps=1)
            batches.append(seen[0])
        whole = comfy.sample.prepare_noise(torch.zeros(48, 4, SIZE // 8, SIZE // 8), 3)
        if noise_type != "independent":
            whole = starting_noise(whole, noise_type, Options(8, 2, "static"), 3, dim=0)
        results[noise_type] = (torch.cat(batches) - whole).abs().max().item()
    # a custom noise source (not the seeded noise of the seed it is given) in the second batch: used as given
    m = batch("independent", 1)
    custom = torch.randn(16, 4, SIZE // 8, SIZE // 8, generator=torch.Generator().manual_seed(99)) * 0.5
    sampler = comfy.samplers.sampler_object("euler")
    sigmas = comfy.samplers.calculate_sigmas(m.get_model_object("model_sampling"), "normal", 1).cpu()
    comfy.sample.sample_custom(m, custom, 5.0, sampler, sigmas, text, negative, torch.zeros_like(custom), seed=3)
    results["custom_noise"] = (seen[0].cpu() - custom).abs().max().item()
    try:
        N["MC_ContextOptions"]().apply(model, 8, 2, "looped", True, "pyramid", "independent",
                                       meta_batch=StandInManager(), prompt={}, unique_id="9")
        results["closed_loop"] = None
    except Exception as e:  # noqa: BLE001 - what the user would see
        results["closed_loop"] = f"{type(e).__name__}: {e}"
    return results


CHECKS = {"acn": check_acn, "acn_sparsectrl": check_acn_sparsectrl, "ipadapter": check_ipadapter, "schedules": check_schedules,
          "meta_batch": check_meta_batch}


def main():
    print(json.dumps(CHECKS[CHECK]()))


if __name__ == "__main__":
    main()
