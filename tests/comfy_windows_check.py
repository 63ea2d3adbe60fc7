"""Run inside ComfyUI's Python (see test_comfy_windows.py): context windows on the MODEL (Context Options) with core's
samplers, on the tiny SD1.5-layout model with the tiny v2 motion module, and per-frame inputs in every window: a
random-weight core ControlNet (cldm, tiny, output convolutions nonzero) applied with core's Apply ControlNet
(Advanced) to a hint video, chained controls, a hint a VAE encodes, per-frame mask conditioning, a per-frame latent
noise mask, ad_params, and ComfyUI's memory estimate. Prints one JSON object of findings."""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT)]
from comfy_nodes_check import UNET, load_pack, tiny_folders, tiny_model  # noqa: E402  (puts ComfyUI on sys.path, --cpu)

import torch  # noqa: E402

import comfy.cldm.cldm  # noqa: E402
import comfy.controlnet  # noqa: E402
import comfy.sampler_helpers  # noqa: E402
import comfy.model_management  # noqa: E402
import comfy.ops  # noqa: E402
import nodes as comfy_nodes  # noqa: E402
from comfy_extras import nodes_custom_sampler as custom  # noqa: E402

FRAMES, SIZE, STEPS = 48, 64, 2
EVENTS = []  # ("hint", frame indices read from the hint values) and ("unet", sub_idxs), in call order


class PixelLatents:
    """A latent format that leaves the encoded hint as it is (a ControlNet takes a VAE only when it has one)."""

    def process_in(self, x):
        return x


def tiny_controlnet(seed: int, latent_format=None):
    """A core ControlNet object over a tiny cldm.ControlNet shaped like the tiny UNet, every weight random (the zero
    convolutions too, so a hint visibly steers). Each hint it sees is recorded: hint frame i is the value i/47."""
    keys = ("image_size", "in_channels", "model_channels", "num_res_blocks", "channel_mult", "transformer_depth",
            "context_dim", "num_heads", "num_head_channels", "use_spatial_transformer", "legacy",
            "use_linear_in_transformer", "transformer_depth_middle", "dtype")
    net = comfy.cldm.cldm.ControlNet(hint_channels=3, operations=comfy.ops.manual_cast,
                                     **{k: UNET[k] for k in keys})
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * (0.3 if "zero_conv" in name or "middle_block_out" in name
                                                         else 0.05) + (1.0 if name.endswith("norm.weight") else 0.0))
    forward = net.forward

    def recording(x, hint, timesteps, context, **kw):
        rows = (hint[:, 0].mean(dim=(1, 2)) * (FRAMES - 1)).round().long().tolist()
        window = rows[:len(rows) // rows.count(rows[0])]  # the window's frames, once (cond and uncond batched)
        EVENTS.append(("hint", seed, window))
        return forward(x, hint, timesteps, context, **kw)
    net.forward = recording
    return comfy.controlnet.ControlNet(net, load_device=torch.device("cpu"), manual_cast_dtype=None,
                                       latent_format=latent_format)


def tiny_t2i_adapter():
    """A core T2IAdapter over a tiny random Adapter with the tiny UNet's channels; records the hint frames (as
    tiny_controlnet) and counts its runs."""
    import comfy.t2i_adapter.adapter
    torch.manual_seed(3)
    net = comfy.t2i_adapter.adapter.Adapter(cin=3 * 64, channels=[32, 32, 32, 32], nums_rb=1, ksize=1, sk=True,
                                            use_conv=False, xl=False)
    forward = net.forward

    def recording(x):
        rows = (x[:, 0].mean(dim=(1, 2)) * (FRAMES - 1)).round().long().tolist()
        EVENTS.append(("t2i", 3, rows[:len(rows) // rows.count(rows[0])]))
        return forward(x)
    net.forward = recording
    return comfy.controlnet.T2IAdapter(net, 3, 8, "nearest-exact", device=torch.device("cpu"))


class StandInVAE:
    """What a ControlNet needs of a VAE that encodes its hints: encode() and its spatial compression (1: the hint
    stays at pixel size). Counts the frames it encodes."""

    def __init__(self):
        self.encoded = 0

    downscale_ratio = 1  # (what ComfyUI before 0.3.3x reads instead)

    def spacial_compression_encode(self):
        return 1

    def encode(self, pixels):
        self.encoded += pixels.shape[0]
        return pixels.movedim(-1, 1)


def hint_video(values):
    """(frames, SIZE, SIZE, 3) IMAGE: frame i filled with values[i]."""
    return torch.tensor(values, dtype=torch.float32).view(-1, 1, 1, 1).expand(len(values), SIZE, SIZE, 3).clone()


def unet_options(args, kwargs) -> dict:
    """The transformer_options of a diffusion_model wrapper's call (a keyword, or the fifth positional argument)."""
    return kwargs.get("transformer_options", args[4] if len(args) > 4 else {})


def record_unet(model, key="mctest_events"):
    """A clone of `model` whose UNet calls append ("unet", None, ad_params' sub_idxs) to EVENTS."""
    m = model.clone()

    def record(executor, x, *args, **kwargs):
        EVENTS.append(("unet", None, (unet_options(args, kwargs).get("ad_params") or {}).get("sub_idxs")))
        return executor(x, *args, **kwargs)
    m.add_wrapper_with_key("diffusion_model", key, record)
    return m


def ksampler(model, positive, negative, latent, seed=7, steps=STEPS):
    return comfy_nodes.common_ksampler(model, seed, steps, 5.0, "euler", "normal", positive, negative, latent)[0]["samples"]


def main():
    pack = load_pack()
    N = pack.NODE_CLASS_MAPPINGS
    tmp = tiny_folders()
    (mm,) = N["MC_LoadMotionModule"]().load("mm_tiny_v2.safetensors")
    (injected,) = N["MC_InjectMotionModule"]().inject(tiny_model(), mm, 1.0, 1.0, "auto")
    test_nodes = load_test_nodes()
    model = record_unet(test_nodes["MCTest_RecordAdParams"]().apply(injected, "windows")[0])

    g = torch.Generator().manual_seed(0)
    text = [[torch.randn(1, 7, 32, generator=g), {}]]
    negative = [[torch.randn(1, 7, 32, generator=g), {}]]
    empty = {"samples": torch.zeros(FRAMES, 4, SIZE // 8, SIZE // 8)}
    ramp = hint_video([i / (FRAMES - 1) for i in range(FRAMES)])
    apply = comfy_nodes.ControlNetApplyAdvanced().apply_controlnet
    cn_a, cn_b, cn_vae = tiny_controlnet(1), tiny_controlnet(2), tiny_controlnet(1, PixelLatents())
    results = {}

    def windowed(schedule, noise="independent"):
        return N["MC_ContextOptions"]().apply(model, 16, 4, schedule, False, "pyramid", noise)[0]

    # 1. every window's ControlNet call sees that window's hint frames: static and uniform, plain / VAE / chained
    from motion_core.context import ContextOptions, windows
    for schedule in ("static", "uniform"):
        m = windowed(schedule)
        want = [w for step in range(STEPS) for w in windows(FRAMES, ContextOptions(16, 4, schedule), step)]
        for case in ("plain", "vae", "chained"):
            vae = StandInVAE() if case == "vae" else None
            pos, neg = apply(text, negative, cn_vae if vae else cn_a, ramp, 1.0, 0.0, 1.0, vae=vae)
            if case == "chained":  # a second control on top, hint frame i = 1 - i/47 (recorded as 47 - i)
                pos, neg = apply(pos, neg, cn_b, hint_video([1 - i / (FRAMES - 1) for i in range(FRAMES)]),
                                 1.0, 0.0, 1.0)
            EVENTS.clear()
            first = ksampler(m, pos, neg, empty)
            seen = {1: [], 2: []}  # per control: the hint frames of each call
            paired, last = True, {}
            for kind, seed, frames in EVENTS:
                if kind == "hint":
                    seen[seed].append(tuple(frames))
                    last[seed] = frames
                else:  # the UNet call right after a window's control calls: the same frames for every control
                    paired &= last.get(1) == frames and (case != "chained" or [FRAMES - 1 - f for f in last[2]] == frames)
            unets = [tuple(e[2]) for e in EVENTS if e[0] == "unet"]
            encoded = vae.encoded if vae else None  # after one sampling of STEPS steps
            again = ksampler(m, pos, neg, empty)
            control = pos[0][1]["control"]
            results[f"{schedule}_{case}"] = {
                "unet_windows": sorted(set(unets)) == sorted({tuple(w) for w in want}),
                "each_window_sees_its_own_hint_frames": paired and len(unets) >= len(want),
                "hint_windows": sorted(set(seen[1])) == sorted({tuple(w) for w in want}),
                "chained_hint_windows": sorted({tuple(FRAMES - 1 - f for f in w) for w in seen[2]}) ==
                sorted({tuple(w) for w in want}) if case == "chained" else None,
                "vae_frames_encoded": encoded,
                "frames_in_step0_windows": sum(len(w) for w in windows(FRAMES, ContextOptions(16, 4, schedule), 0)),
                "same_twice": bool(torch.equal(first, again)),
                "control_untouched": control.cond_hint is None and control.cond_hint_original.shape[0] == FRAMES,
            }

    # 1a. a T2I-Adapter: each window's features come from its own hint frames, computed once per window
    adapter = tiny_t2i_adapter()
    for schedule in ("static", "uniform"):
        m = windowed(schedule)
        want = {tuple(w) for step in range(STEPS) for w in windows(FRAMES, ContextOptions(16, 4, schedule), step)}
        EVENTS.clear()
        pos, neg = apply(text, negative, adapter, ramp, 1.0, 0.0, 1.0)
        ksampler(m, pos, neg, empty)
        runs = [tuple(e[2]) for e in EVENTS if e[0] == "t2i"]
        results[f"{schedule}_t2i"] = {"windows": set(runs) == want, "runs": len(runs),
                                      "windows_in_step0": len(windows(FRAMES, ContextOptions(16, 4, schedule), 0))}
    out_black = ksampler(windowed("static"), *apply(text, negative, adapter, hint_video([0.0] * FRAMES), 1.0, 0.0,
                                                    1.0), empty, steps=1)
    out_bw = ksampler(windowed("static"), *apply(text, negative, adapter, hint_video([0.0] * 16 + [1.0] * 32), 1.0,
                                                 0.0, 1.0), empty, steps=1)
    results["t2i_last_frames_follow_their_hints"] = (out_bw[40:] - out_black[40:]).abs().mean().item()
    results["t2i_first_frames_same"] = (out_bw[:12] - out_black[:12]).abs().max().item()

    # 1b. the symptom: 16 black then 32 white hint frames against all black (one step: frames 0-11 see
    # window 0 alone, whose hints are the same)
    m = windowed("static")
    black = hint_video([0.0] * FRAMES)
    black_white = hint_video([0.0] * 16 + [1.0] * 32)
    out_black = ksampler(m, *apply(text, negative, cn_a, black, 1.0, 0.0, 1.0), empty, steps=1)
    out_bw = ksampler(m, *apply(text, negative, cn_a, black_white, 1.0, 0.0, 1.0), empty, steps=1)
    results["last_frames_follow_their_hints"] = (out_bw[40:] - out_black[40:]).abs().mean().item()
    results["first_frames_same_hints_same_output"] = (out_bw[:12] - out_black[:12]).abs().max().item()
    try:
        ksampler(m, *apply(text, negative, cn_a, hint_video([0.5] * 30), 1.0, 0.0, 1.0), empty)
        results["short_hint_error"] = None
    except Exception as e:  # noqa: BLE001 - what the user would see
        results["short_hint_error"] = f"{type(e).__name__}: {e}"
    one = ksampler(m, *apply(text, negative, cn_a, hint_video([0.5]), 1.0, 0.0, 1.0), empty)
    results["one_hint_image_for_all_frames_finite"] = bool(torch.isfinite(one).all())

    # 2. KSampler + Context Options == Sample Frames; KSamplerAdvanced split at a step; SamplerCustomAdvanced
    travel = [[torch.randn(FRAMES, 7, 32, generator=g), {}]]  # prompt travel
    pos, neg = apply(travel, negative, cn_a, ramp, 1.0, 0.0, 1.0)
    for schedule, noise in (("static", "independent"), ("uniform", "freenoise")):
        m = windowed(schedule, noise)
        plain = ksampler(m, pos, neg, empty)
        (frames,) = N["MC_SampleFrames"]().sample(injected, pos, neg, FRAMES, SIZE, SIZE, 7, STEPS, 5.0, "euler",
                                                  "normal", 16, 4, schedule, False, "pyramid", noise, 1.0)
        advanced = comfy_nodes.KSamplerAdvanced()
        (half,) = advanced.sample(m, "enable", 7, STEPS, 5.0, "euler", "normal", pos, neg, empty, 0, 1, "enable")
        (split,) = advanced.sample(m, "disable", 7, STEPS, 5.0, "euler", "normal", pos, neg, half, 1, 10000, "disable")
        (noise_obj,) = custom.RandomNoise().get_noise(7)
        (guider,) = custom.CFGGuider().get_guider(m, pos, neg, 5.0)
        (sampler,) = custom.KSamplerSelect().get_sampler("euler")
        (sigmas,) = custom.BasicScheduler().get_sigmas(m, "normal", STEPS, 1.0)
        custom_out = custom.SamplerCustomAdvanced().sample(noise_obj, guider, sampler, sigmas, empty)[0]["samples"]
        scale = plain.abs().max().item()
        results[f"samplers_{schedule}_{noise}"] = {
            "largest_latent": scale,
            "ksampler_vs_sample_frames": (plain - frames["samples"]).abs().max().item(),
            "ksampler_vs_advanced_split": (plain - split["samples"]).abs().max().item(),
            "ksampler_vs_custom_advanced": (plain - custom_out).abs().max().item(),
        }
    # core's own float difference between KSampler and a split KSamplerAdvanced, on a clip of one window
    short = {"samples": torch.zeros(16, 4, SIZE // 8, SIZE // 8)}
    (half,) = advanced.sample(injected, "enable", 7, STEPS, 5.0, "euler", "normal", text, negative, short, 0, 1, "enable")
    (split,) = advanced.sample(injected, "disable", 7, STEPS, 5.0, "euler", "normal", text, negative, half, 1, 10000,
                               "disable")
    whole = ksampler(injected, text, negative, short)
    results["core_split_relative_diff"] = ((whole - split["samples"]).abs().max() / whole.abs().max()).item()
    # noise types through any sampler: the starting noise the sampler gets, and KSampler = Sample Frames
    seen_noise = []

    def record_noise(executor, model_wrap, sigmas, extra_args, callback, noise, *args, **kwargs):
        seen_noise.append(noise.detach().clone())
        return executor(model_wrap, sigmas, extra_args, callback, noise, *args, **kwargs)
    for noise_type in ("repeated_context", "constant"):
        m = windowed("static", noise_type)
        m.add_wrapper_with_key("sampler_sample", "mctest_noise", record_noise)
        seen_noise.clear()
        plain = ksampler(m, text, negative, empty)
        n = seen_noise[0]
        (frames,) = N["MC_SampleFrames"]().sample(injected, text, negative, FRAMES, SIZE, SIZE, 7, STEPS, 5.0, "euler",
                                                  "normal", 16, 4, "static", False, "pyramid", noise_type, 1.0)
        results[f"noise_{noise_type}"] = {
            "ksampler_vs_sample_frames": (plain - frames["samples"]).abs().max().item(),
            "shaped": bool(all(torch.equal(n[i], n[0 if noise_type == "constant" else i % 16])
                               for i in range(FRAMES))),
            "frames_differ_at_start": bool(not torch.equal(n[0], n[1]))}
    m = N["MC_ContextOptions"]().apply(model, 16, 4, "static", False, "pyramid", "constant")[0]
    m.add_wrapper_with_key("sampler_sample", "mctest_noise", record_noise)
    seen_noise.clear()
    ksampler(m, text, negative, {"samples": torch.zeros(16, 4, SIZE // 8, SIZE // 8)})  # one window: no windows
    results["constant_noise_without_windows"] = bool(all(torch.equal(seen_noise[0][i], seen_noise[0][0])
                                                         for i in range(16)))
    plain_no_windows = ksampler(injected, text, negative, {"samples": torch.zeros(16, 4, SIZE // 8, SIZE // 8)})
    with_options = ksampler(windowed("static"), text, negative, {"samples": torch.zeros(16, 4, SIZE // 8, SIZE // 8)})
    results["one_window_clip_unchanged_by_options"] = bool(torch.equal(plain_no_windows, with_options))

    # 3. ad_params, as the test-only node recorded them
    lines = [json.loads(s) for s in (tmp / "out" / "mctest" / "windows.jsonl").read_text().splitlines()]
    results["ad_params_sub_idxs"] = sorted({tuple(r["ad_params"]["sub_idxs"]) for r in lines
                                            if r["ad_params"] and r["ad_params"]["sub_idxs"]})
    results["ad_params_full_length"] = sorted({r["ad_params"]["full_length"] for r in lines if r["ad_params"]})

    # 4. per-frame mask conditioning: a prompt masked to frames 40-47 steers those frames only
    mask = torch.zeros(FRAMES, SIZE, SIZE)
    mask[40:] = 1.0
    masked = comfy_nodes.ConditioningSetMask().append([[torch.randn(1, 7, 32, generator=g) * 3, {}]], mask,
                                                      "default", 1.0)[0]
    m = windowed("static")
    base_out = ksampler(m, text, negative, empty)
    with_mask = ksampler(m, text + masked, negative, empty)
    results["masked_cond_last_frames_change"] = (with_mask[40:] - base_out[40:]).abs().mean().item()
    results["masked_cond_first_frames_same"] = (with_mask[:12] - base_out[:12]).abs().max().item()

    # 5. a latent noise mask per frame: a 32x32 px square that moves with the frame; outside it the video stays
    video = torch.randn(FRAMES, 4, SIZE // 8, SIZE // 8, generator=g)
    noise_mask = torch.zeros(FRAMES, 1, SIZE, SIZE)
    for i in range(FRAMES):
        x0 = 8 * (i % 5)
        noise_mask[i, :, 16:48, x0:x0 + 32] = 1.0
    inpainted = ksampler(m, text, negative, {"samples": video, "noise_mask": noise_mask})
    latent_mask = torch.nn.functional.interpolate(noise_mask, size=(SIZE // 8, SIZE // 8), mode="bilinear")
    outside, inside = latent_mask.expand_as(video) == 0, latent_mask.expand_as(video) == 1
    results["noise_mask_outside_max_diff"] = (inpainted - video)[outside].abs().max().item()
    results["noise_mask_inside_mean_diff"] = (inpainted - video)[inside].abs().mean().item()

    # 6. the memory ComfyUI reserves: 64 frames in 16-frame windows vs a 16-frame clip (and 64 frames without)
    estimates = []
    load = comfy.model_management.load_models_gpu

    def recording_load(models, memory_required=0, *args, **kwargs):
        estimates.append(memory_required)
        return load(models, memory_required, *args, **kwargs)
    comfy.model_management.load_models_gpu = recording_load
    try:
        for mdl, frames in ((windowed("static"), 64), (injected, 16), (windowed("static"), 16)):
            estimates.clear()
            comfy_nodes.common_ksampler(mdl, 7, 1, 5.0, "euler", "normal", text, negative,
                                                  {"samples": torch.zeros(frames, 4, SIZE // 8, SIZE // 8)})
            results.setdefault("memory_estimates", []).append(max(estimates))
        if hasattr(comfy.sampler_helpers, "estimate_memory"):  # (ComfyUI 0.3.3x+)
            big = comfy.sampler_helpers.estimate_memory(injected, [64, 4, SIZE // 8, SIZE // 8], {})[0]
            results["memory_estimate_64_frames_whole"] = big
    finally:
        comfy.model_management.load_models_gpu = load
    print(json.dumps(results, default=str))


def load_test_nodes():
    import importlib.util
    spec = importlib.util.spec_from_file_location("mctest_nodes", ROOT / "tests" / "comfy_test_nodes" / "__init__.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.NODE_CLASS_MAPPINGS


if __name__ == "__main__":
    main()
