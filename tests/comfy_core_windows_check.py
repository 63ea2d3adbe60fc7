"""Run inside ComfyUI's Python (see test_comfy_core_windows.py): Inject into Model under ComfyUI's own context windows
(its Context Windows (Manual) node, comfy.context_windows, 0.3.51+) on the tiny SD1.5-layout model with the tiny v2
motion module, 48 frames in windows of 16 / 4: what each UNet call sees (frames, ad_params, the motion layers'
window), whether per-frame strength follows the windows, whether core ControlNet hints do, and the refusal of core's
windows together with Context Options, in both orders. Prints one JSON object of findings."""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT)]
from comfy_windows_check import EVENTS, FRAMES, SIZE, hint_video, ksampler, tiny_controlnet, unet_options  # noqa: E402
from comfy_nodes_check import load_pack, tiny_folders, tiny_model  # noqa: E402

import torch  # noqa: E402

import nodes as comfy_nodes  # noqa: E402


def core_windows(model, length=16, overlap=4, schedule="standard_static"):
    """The model through core's Context Windows (Manual) node, as the graph would run it."""
    from comfy_extras.nodes_context_windows import ContextWindowsManualNode
    out = ContextWindowsManualNode.execute(model, length, overlap, schedule, 1, False, "pyramid", 0)
    return out.result[0] if hasattr(out, "result") else out[0]


def core_window_lists(length=16, overlap=4):
    import comfy.context_windows as cw
    handler = cw.IndexListContextHandler(cw.get_matching_context_schedule("standard_static"),
                                         cw.get_matching_fuse_method("pyramid"), length, overlap)
    return [tuple(w) for w in handler.context_schedule.func(FRAMES, handler, {})]


def recording(model):
    """A clone whose UNet calls record (frames per clip, ad_params' sub_idxs and full_length: the window the pack's
    motion layers take their per-frame values by) into EVENTS."""
    m = model.clone()

    def record(executor, x, *args, **kwargs):
        options = unet_options(args, kwargs)
        params = options.get("ad_params") or {}
        EVENTS.append(("unet", x.shape[0] // len(options.get("cond_or_uncond") or [0]),
                       params.get("sub_idxs"), params.get("full_length")))
        return executor(x, *args, **kwargs)
    m.add_wrapper_with_key("diffusion_model", "mctest_core_windows", record)
    return m


def main():
    pack = load_pack()
    N = pack.NODE_CLASS_MAPPINGS
    tiny_folders()
    (mm,) = N["MC_LoadMotionModule"]().load("mm_tiny_v2.safetensors")
    inject = N["MC_InjectMotionModule"]().inject
    g = torch.Generator().manual_seed(0)
    text = [[torch.randn(1, 7, 32, generator=g), {}]]
    negative = [[torch.randn(1, 7, 32, generator=g), {}]]
    empty = {"samples": torch.zeros(FRAMES, 4, SIZE // 8, SIZE // 8)}
    want = core_window_lists()
    results = {"core_windows": [list(w) for w in want]}

    # 1. constant strength: each UNet call is one window of 16 frames, ad_params name its frames in the 48
    (plain,) = inject(tiny_model(), mm, 1.0, 1.0, "auto")
    EVENTS.clear()
    out = ksampler(core_windows(recording(plain)), text, negative, empty)
    calls = [e for e in EVENTS if e[0] == "unet"]
    results["constant"] = {"frames_per_call": sorted({e[1] for e in calls}),
                           "ad_params_windows": sorted({tuple(e[2]) for e in calls if e[2]}) == sorted(set(want)),
                           "full_length": sorted({e[3] for e in calls if e[3]}), "calls": len(calls),
                           "finite": bool(torch.isfinite(out).all())}

    # 2. per-frame strength (a FLOAT list, as a value schedule gives it): 0 on frames 0-23, 1 on 24-47; the motion
    # layers get each window's own values: frames 0-11 (window 0 alone, all 0) match strength 0 exactly, 40-47 not
    values = [0.0] * 24 + [1.0] * 24
    (stepped,) = inject(tiny_model(), mm, 1.0, 1.0, "auto", strength_values=values)
    (still,) = inject(tiny_model(), mm, 1.0, 0.0, "auto")
    EVENTS.clear()
    out_stepped = ksampler(core_windows(recording(stepped)), text, negative, empty, steps=1)
    windows_seen = sorted({tuple(e[2]) for e in EVENTS if e[0] == "unet" and e[2]})
    out_still = ksampler(core_windows(still), text, negative, empty, steps=1)
    results["per_frame"] = {"motion_windows": windows_seen == sorted(set(want)),
                            "first_frames_as_strength_0": (out_stepped[:12] - out_still[:12]).abs().max().item(),
                            "last_frames_moved": (out_stepped[40:] - out_still[40:]).abs().mean().item()}

    # 3. a core ControlNet under core's windows: which hint frames each window's control call reads
    apply = comfy_nodes.ControlNetApplyAdvanced().apply_controlnet
    pos, neg = apply(text, negative, tiny_controlnet(1), hint_video([i / (FRAMES - 1) for i in range(FRAMES)]), 1.0,
                     0.0, 1.0)
    EVENTS.clear()
    ksampler(core_windows(recording(plain)), pos, neg, empty, steps=1)
    hints = [tuple(e[2]) for e in EVENTS if e[0] == "hint"]
    results["core_controlnet_hints"] = {"windows_read": sorted(set(hints)),
                                        "follow_windows": sorted(set(hints)) == sorted(set(want))}

    # 4. core's windows and Context Options on one MODEL: refused in either order, naming both nodes
    options = N["MC_ContextOptions"]()
    for order in ("core_then_ours", "ours_then_core"):
        try:
            if order == "core_then_ours":
                options.apply(core_windows(plain), 16, 4, "static", False, "pyramid", "independent")
            else:
                m = core_windows(options.apply(plain, 16, 4, "static", False, "pyramid", "independent")[0])
                ksampler(m, text, negative, empty, steps=1)
            results[order] = None
        except Exception as e:  # noqa: BLE001 - what the user would see
            results[order] = f"{type(e).__name__}: {e}"
    # context_length 0 (noise / FreeInit only) is no second schedule: it runs under core's windows
    zero = options.apply(plain, 0, 4, "static", False, "pyramid", "freenoise")[0]
    results["context_length_0_under_core"] = bool(torch.isfinite(ksampler(core_windows(zero), text, negative, empty,
                                                                            steps=1)).all())
    print(json.dumps(results))


if __name__ == "__main__":
    main()
