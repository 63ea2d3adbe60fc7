"""Run inside ComfyUI's Python (see test_comfy_control.py): Inject into Model's motion mask, strength / scale curves
and start / end percent, and FreeInit Options through Sample Frames, Context Options and core's KSampler, on the tiny
SD1.5-layout ComfyUI model. Prints one JSON object of findings."""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT)]
from comfy_nodes_check import load_pack, tiny_folders, tiny_model  # noqa: E402  (puts ComfyUI on sys.path, --cpu)

import torch  # noqa: E402

import comfy.patcher_extension  # noqa: E402
import nodes as comfy_nodes  # noqa: E402

FRAMES, STEPS, SEED = 16, 5, 7


def max_abs(a, b) -> float:
    return (a - b).abs().max().item()


def main():
    pack = load_pack()
    N = pack.NODE_CLASS_MAPPINGS
    tiny_folders()
    base = tiny_model()
    (mm,) = N["MC_LoadMotionModule"]().load("mm_tiny_v2.safetensors")
    g = torch.Generator().manual_seed(0)
    positive = [[torch.randn(1, 7, 32, generator=g), {}]]
    negative = [[torch.randn(1, 7, 32, generator=g), {}]]
    latent = {"samples": torch.zeros(FRAMES, 4, 8, 8)}
    inject = N["MC_InjectMotionModule"]().inject
    results = {}

    def sample(model, steps=STEPS, record=None):
        def callback(step, x0, x, total):
            if record is not None:
                record.append(x0.clone())
        import comfy.sample
        noise = comfy.sample.prepare_noise(latent["samples"], SEED)
        return comfy.sample.sample(model, noise, steps, 6.0, "euler", "normal", positive, negative,
                                   latent["samples"], callback=callback, seed=SEED)

    (full,) = inject(base, mm, 1.0, 1.0, "auto")
    (still,) = inject(base, mm, 1.0, 0.0, "auto")  # the plain image model on AnimateDiff's schedule
    out_full, out_still = sample(full), sample(still)
    results["motion_matters"] = max_abs(out_full, out_still)

    # a motion mask: black = the plain image model, white = the full module, one per frame or one for all
    zeros, ones = torch.zeros(1, 64, 64), torch.ones(FRAMES, 64, 64)
    half = torch.zeros(1, 64, 64)
    half[:, :, :32] = 1.0
    results["mask_zero_vs_strength_zero"] = max_abs(sample(inject(base, mm, 1.0, 1.0, "auto", zeros)[0]), out_still)
    results["mask_one_vs_no_mask"] = max_abs(sample(inject(base, mm, 1.0, 1.0, "auto", ones)[0]), out_full)
    out_half = sample(inject(base, mm, 1.0, 1.0, "auto", half)[0])
    results["mask_half_vs_full_and_still"] = [max_abs(out_half, out_full), max_abs(out_half, out_still)]

    # curves: constant 1 is the plain path; a ramp differs; they follow Sample Frames' windows
    results["curve_one_vs_none"] = max_abs(sample(inject(base, mm, 1.0, 1.0, "auto", None, "0:1")[0]), out_full)
    results["curve_zero_vs_strength_zero"] = max_abs(sample(inject(base, mm, 1.0, 1.0, "auto", None, "0:0")[0]),
                                                     out_still)
    ramp = sample(inject(base, mm, 1.0, 1.0, "auto", None, "0:0, 15:1", "0:1, 15:1.5")[0])
    results["curve_ramp_vs_full_and_still"] = [max_abs(ramp, out_full), max_abs(ramp, out_still)]
    (ramped,) = inject(base, mm, 1.0, 1.0, "auto", None, "0:0, 31:1")
    travel = [[torch.randn(32, 7, 32, generator=g), {}]]
    (long,) = N["MC_SampleFrames"]().sample(ramped, travel, negative, 32, 16, 16, SEED, 2, 6.0, "euler", "normal",
                                            16, 4, "uniform", False, "pyramid", "independent", 1.0)
    results["curve_through_windows_finite"] = bool(torch.isfinite(long["samples"]).all())

    # start / end percent: outside, the plain image model's steps exactly (same trajectory until the switch)
    x0 = {}
    for name, model in (("full", full), ("still", still), ("from_half", inject(base, mm, 1.0, 1.0, "auto", None, "",
                                                                               "", 0.5, 1.0)[0]),
                        ("to_half", inject(base, mm, 1.0, 1.0, "auto", None, "", "", 0.0, 0.5)[0])):
        x0[name] = []
        sample(model, record=x0[name])
    results["from_half_equals_still_per_step"] = [torch.equal(a, b) for a, b in zip(x0["from_half"], x0["still"])]
    results["to_half_equals_full_per_step"] = [torch.equal(a, b) for a, b in zip(x0["to_half"], x0["full"])]

    # bad input: refused before the first step, naming the value
    steps_run = []
    try:
        sample(inject(base, mm, 1.0, 1.0, "auto", torch.ones(3, 64, 64))[0], record=steps_run)
    except Exception as e:  # noqa: BLE001 - reporting what the user would see
        results["mask_frames_error"] = f"{type(e).__name__}: {e}"
    results["steps_run_before_mask_error"] = len(steps_run)
    try:
        inject(base, mm, 1.0, 1.0, "auto", None, "0:1, 8=0.5")
    except Exception as e:  # noqa: BLE001
        results["curve_error"] = f"{type(e).__name__}: {e}"
    try:
        inject(base, mm, 1.0, 1.0, "auto", None, "", "", 0.6, 0.2)
    except Exception as e:  # noqa: BLE001
        results["percent_error"] = f"{type(e).__name__}: {e}"

    # FreeInit: 1 iteration = none; filters differ; Context Options + KSampler = Sample Frames
    free = N["MC_FreeInitOptions"]().options
    frames_node = N["MC_SampleFrames"]().sample
    small = {"samples": torch.zeros(FRAMES, 4, 4, 4)}

    def sample_frames(free_init=None, steps=4):
        (out,) = frames_node(full, positive, negative, FRAMES, 32, 32, SEED, steps, 6.0, "euler", "normal", 16, 4,
                             "static", False, "pyramid", "independent", 1.0, latent=small, free_init=free_init)
        return out["samples"]
    plain = sample_frames()
    results["free_init_1_vs_none"] = max_abs(sample_frames(free(1, "butterworth", 4, 0.25, 0.25, False)[0]), plain)
    by_filter = {f: sample_frames(free(2, f, 4, 0.25, 0.25, False)[0]) for f in ("butterworth", "gaussian", "ideal",
                                                                                   "box")}
    results["free_init_filters_vs_none"] = {f: max_abs(v, plain) for f, v in by_filter.items()}
    names = list(by_filter)
    results["free_init_filters_pairwise_min"] = min(max_abs(by_filter[a], by_filter[b])
                                                    for i, a in enumerate(names) for b in names[i + 1:])
    settings = free(2, "butterworth", 4, 0.25, 0.25, False)[0]
    (windowed,) = N["MC_ContextOptions"]().apply(full, 16, 4, "static", False, "pyramid", "independent", settings)
    rounds = []

    def record(executor, noise, latent_image, sampler, sigmas, *args, **kwargs):
        out = executor(noise, latent_image, sampler, sigmas, *args, **kwargs)
        rounds.append((noise.clone(), sigmas.clone(), out.clone()))
        return out
    recorded = windowed.clone()  # added after Context Options' wrapper: runs inside it, once per FreeInit round
    recorded.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, "test.rounds", record)
    (ks,) = comfy_nodes.common_ksampler(recorded, SEED, 4, 6.0, "euler", "normal", positive, negative, small)
    results["free_init_ksampler_vs_sample_frames"] = max_abs(ks["samples"], by_filter["butterworth"])
    results["free_init_rounds"] = len(rounds)

    # the second round starts from FreeInit's noise as motion_core.freeinit computes it for generate() (checked
    # against diffusers there): sigma_max^2 = (1 - alpha_bar) / alpha_bar, the sampler starts from sqrt(1 + s^2) n
    from motion_core_pack.motion_core import freeinit
    (noise0, sigmas, out0), (noise1, _, _) = rounds
    sigma = sigmas[0].double()
    alpha_bar = (1 / (1 + sigma ** 2)).float()
    clean = full.model.process_latent_in(out0)
    fresh = torch.randn(noise0.shape, generator=torch.Generator().manual_seed(SEED))
    mask = freeinit.low_pass_filter(FRAMES, 4, 4, "butterworth", 4, 0.25, 0.25)
    video = lambda x: x.movedim(0, 1)[None]  # noqa: E731  (f, c, h, w) -> (1, c, f, h, w)
    expected = freeinit.reinitialise(video(clean), video(noise0), video(fresh), alpha_bar, mask)[0].movedim(1, 0)
    results["free_init_start_vs_generate_formula"] = max_abs(noise1, expected)
    results["free_init_start_scale"] = noise1.std().item()

    rounds.clear()
    fast = free(3, "gaussian", 4, 0.25, 0.25, True)[0]
    (windowed_fast,) = N["MC_ContextOptions"]().apply(full, 16, 4, "static", False, "pyramid", "freenoise", fast)
    recorded = windowed_fast.clone()
    recorded.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, "test.rounds", record)
    comfy_nodes.common_ksampler(recorded, SEED, 6, 6.0, "euler", "normal", positive, negative, small)
    results["free_init_fast_steps"] = [len(s) - 1 for _, s, _ in rounds]
    results["free_init_fast_first_sigma_kept"] = all(s[0] == rounds[-1][1][0] for _, s, _ in rounds)
    print(json.dumps(results, default=str))


if __name__ == "__main__":
    main()
