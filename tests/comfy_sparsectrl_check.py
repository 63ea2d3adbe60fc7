"""Run inside ComfyUI's Python (see test_comfy_sparsectrl.py): the SparseCtrl built on ComfyUI's own cldm ControlNet
(nodes/bridge.sparsectrl_controlnet) against the residuals recorded from the original SparseControlNetModel
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
    print(json.dumps(results))


if __name__ == "__main__":
    main()
