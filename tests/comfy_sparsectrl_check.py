"""Run inside ComfyUI's Python (see test_comfy_sparsectrl.py): the SparseCtrl built on ComfyUI's own cldm ControlNet
(nodes/bridge/sparsectrl.py, sparsectrl_controlnet) against the residuals recorded from the original SparseControlNetModel
(tests/fixtures/tiny_sparsectrl_*.safetensors). Prints one JSON object of findings."""

import importlib.util
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests")]
from comfy_nodes_check import UNET, load_pack  # noqa: E402  (puts ComfyUI on sys.path, --cpu)

import torch  # noqa: E402
from einops import rearrange  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures"


def main():
    pack = load_pack()
    from motion_core_pack.motion_core.frames import frames_context
    from motion_core_pack.motion_core.sparsectrl import SparseCtrlConfig
    from motion_core_pack.nodes import bridge
    spec = importlib.util.spec_from_file_location("recorder", FIXTURES / "make_original_sparsectrl_vectors.py")
    recorder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recorder)
    full = load_file(str(FIXTURES / "tiny_unet_v3_full.safetensors"))
    image = {k: v.float() for k, v in full.items() if ".motion_modules." not in k
             and k.startswith(("conv_in.", "time_embedding.", "down_blocks.", "mid_block."))}
    results = {}
    for variant in ("rgb", "scribble"):
        data = load_file(str(FIXTURES / f"tiny_sparsectrl_{variant}.safetensors"))
        own = {k: v.float() for k, v in data.items() if not k.startswith("out")}
        seed, kwargs, keyframes, scale, channels, factor = recorder.VARIANTS[variant]
        x = recorder.inputs(seed, channels, factor, keyframes)
        config = SparseCtrlConfig(variant, channels, recorder.EMBEDDING, heads=2)
        unet_config = {k: v for k, v in UNET.items() if k != "dtype"}
        model = bridge.sparsectrl_controlnet({**image, **own}, config, unet_config)
        f = x["sample"].shape[2]
        hint = rearrange(torch.cat([x["controlnet_cond"], x["conditioning_mask"]], 1), "b c f h w -> (b f) c h w")
        text = x["encoder_hidden_states"].repeat_interleave(f, 0)
        with torch.no_grad(), frames_context(f):
            out = model(torch.zeros(f, 4, *x["sample"].shape[-2:]), hint, x["timestep"].float().repeat(f), text)
        worst = 0.0
        for i, got in enumerate(out["output"]):
            ref = data[f"out.down.{i}"]
            got = rearrange(got * scale, "(b f) c h w -> b c f h w", f=f)
            worst = max(worst, (got - ref).abs().max().item() / max(1.0, ref.abs().max().item()))
        mid = rearrange(out["middle"][0] * scale, "(b f) c h w -> b c f h w", f=f)
        worst = max(worst, (mid - data["out.mid"]).abs().max().item() / max(1.0, data["out.mid"].abs().max().item()))
        results[variant] = {"outputs": len(out["output"]), "max_rel_err": worst,
                            "motion_layers": sum(type(m).__name__ == "MotionLayer" for m in model.modules())}
    results["nodes"] = nodes_check(pack, image)
    print(json.dumps(results))


def nodes_check(pack, image) -> dict:
    """Load SparseCtrl + Apply SparseCtrl on the tiny ComfyUI model through Sample Frames with context windows."""
    import tempfile

    import folder_paths
    from safetensors.torch import save_file

    from comfy_nodes_check import tiny_folders, tiny_model
    N = pack.NODE_CLASS_MAPPINGS
    tiny_folders()
    folder = Path(tempfile.mkdtemp())
    for variant in ("rgb", "scribble"):
        data = load_file(str(FIXTURES / f"tiny_sparsectrl_{variant}.safetensors"))
        own = {k: v for k, v in data.items() if not k.startswith("out")}
        save_file({**{k: v.half() for k, v in image.items()}, **own}, folder / f"sc_{variant}.safetensors",
                  metadata={"heads": "2"})
    folder_paths.folder_names_and_paths["controlnet"] = ([str(folder)], {".safetensors"})
    base = tiny_model()
    (mm,) = N["MC_LoadMotionModule"]().load("mm_tiny_v2.safetensors")
    (model,) = N["MC_InjectMotionModule"]().inject(base, mm, 1.0, 1.0, "auto")
    (scribble,) = N["MC_LoadSparseCtrl"]().load("sc_scribble.safetensors", model)
    (rgb,) = N["MC_LoadSparseCtrl"]().load("sc_rgb.safetensors", model)
    g = torch.Generator().manual_seed(0)
    positive, negative = [[torch.randn(1, 7, 32, generator=g), {}]], [[torch.randn(1, 7, 32, generator=g), {}]]
    keys = torch.rand(1, 16, 16, 3, generator=g)
    apply = N["MC_ApplySparseCtrl"]().apply
    latent = {"samples": torch.zeros(16, 4, 2, 2)}

    def sample(pos, neg, steps=1):
        (out,) = N["MC_SampleFrames"]().sample(model, pos, neg, 16, 16, 16, 7, steps, 6.0, "euler", "normal", 8, 4,
                                               "static", False, "pyramid", "independent", 1.0, latent=latent)
        return out["samples"]  # windows 0-7, 4-11, 8-15
    plain = sample(positive, negative)
    first = sample(*apply(positive, negative, scribble, keys, "0", 1.0, 0.0, 1.0))
    last = sample(*apply(positive, negative, scribble, keys, "-1", 1.0, 0.0, 1.0))
    zero = sample(*apply(positive, negative, scribble, keys, "0", 0.0, 0.0, 1.0))
    found = {"keyframe_0_frames_12_15_equal_plain": torch.equal(first[12:], plain[12:]),
             "keyframe_0_frames_0_3_differ": (first[:4] - plain[:4]).abs().max().item(),
             "keyframe_last_frames_0_3_equal_plain": torch.equal(last[:4], plain[:4]),
             "keyframe_last_frames_12_15_differ": (last[12:] - plain[12:]).abs().max().item(),
             "strength_0_equals_plain": torch.equal(zero, plain),
             "two_keyframes_4_steps_finite": bool(torch.isfinite(sample(*apply(
                 positive, negative, scribble, torch.cat([keys, keys]), "0, 15", 1.0, 0.0, 1.0), steps=4)).all())}
    for name, call in (("count_error", lambda: apply(positive, negative, scribble, keys, "0, 15", 1.0, 0.0, 1.0)),
                       ("rgb_without_vae_error", lambda: apply(positive, negative, rgb, keys, "0", 1.0, 0.0, 1.0)),
                       ("index_error", lambda: sample(*apply(positive, negative, scribble, keys, "16", 1.0, 0.0, 1.0)))):
        try:
            call()
            found[name] = None
        except Exception as e:  # noqa: BLE001 - reporting what the user would see
            found[name] = f"{type(e).__name__}: {e}"
    return found


if __name__ == "__main__":
    main()
