"""Run inside ComfyUI's Python (see test_comfy_host.py): build ComfyUI's openaimodel.UNetModel with the tiny original
UNet's config and weights, patch it through motion_core.hosts.comfy, and compare with the original's recorded output.
Prints one JSON object: {version: {"max_abs_err": ..., "max_abs_err_ejected_vs_plain": ...}}."""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [sys.argv[1], str(ROOT)]
sys.argv = [sys.argv[0], "--cpu"]  # ComfyUI reads its command line at import: no GPU here

import comfy.options  # noqa: E402

comfy.options.enable_args_parsing()

import torch  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

import comfy.utils  # noqa: E402
from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel  # noqa: E402
from motion_core import ConfigError, load_motion_module  # noqa: E402
from motion_core.frames import frames_context  # noqa: E402
from motion_core.hosts.comfy import MotionLayer, forward_timestep_embed_handler  # noqa: E402
from motion_core.patch import Patch  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures"
CONFIG = {"use_checkpoint": False, "image_size": 12, "out_channels": 4, "use_spatial_transformer": True,
          "legacy": False, "adm_in_channels": None, "dtype": torch.float32, "in_channels": 4, "model_channels": 32,
          "num_res_blocks": [2, 2, 2, 2], "transformer_depth": [1, 1, 1, 1, 1, 1, 0, 0], "channel_mult": [1, 1, 1, 1],
          "transformer_depth_middle": 1, "use_linear_in_transformer": False, "context_dim": 32, "num_heads": 2,
          "transformer_depth_output": [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0], "use_temporal_attention": False,
          "use_temporal_resblock": False}


def main() -> None:
    results = {}
    for version in ("v1", "v2", "v3"):
        full = load_file(str(FIXTURES / f"tiny_unet_{version}_full.safetensors"))
        io = load_file(str(FIXTURES / f"tiny_unet_{version}_io.safetensors"))
        unet = UNetModel(**CONFIG).eval()
        to_ldm = comfy.utils.unet_to_diffusers(CONFIG)
        unet.load_state_dict({ldm: full[d] for d, ldm in to_ldm.items() if d in full}, strict=True)
        b, c, f, h, w = io["sample"].shape
        x = io["sample"].permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)
        t = io["timestep"].repeat_interleave(f)
        context = io["encoder_hidden_states"].repeat_interleave(f, 0)
        options = {"cond_or_uncond": [0, 1],  # the batch is 2 clips of f frames, as ComfyUI batches cond + uncond
                   "patches": {"forward_timestep_embed_patch": [(MotionLayer, forward_timestep_embed_handler)]}}
        with torch.no_grad():
            plain = unet(x, t, context, transformer_options={})
            patch = Patch(unet, load_motion_module(FIXTURES / f"tiny_unet_{version}_full.safetensors",
                                                   dtype=torch.float32))
            inserted = sum(1 for m in unet.modules() if isinstance(m, MotionLayer))
            with frames_context(f):  # only v1's cross-frame GroupNorms read it; the modules use cond_or_uncond
                out = unet(x, t, context, transformer_options=options)
            patch.remove()
            after = unet(x, t, context, transformer_options={})
        out = out.reshape(b, f, c, h, w).permute(0, 2, 1, 3, 4)
        results[version] = {"max_abs_err": (out - io["output"]).abs().max().item(),
                            "max_abs_err_ejected_vs_plain": (after - plain).abs().max().item(),
                            "modules_inserted": inserted,
                            "modules_left_after_remove": sum(1 for m in unet.modules() if isinstance(m, MotionLayer))}
    # a UNet built without a middle block (transformer_depth_middle=-2): v3 fits, v2's mid module is refused
    bare = UNetModel(**{**CONFIG, "transformer_depth_middle": -2}).eval()
    patch = Patch(bare, load_motion_module(FIXTURES / "tiny_unet_v3_full.safetensors", dtype=torch.float32))
    results["no_middle_block"] = {"v3_inserted": sum(1 for m in bare.modules() if isinstance(m, MotionLayer))}
    patch.remove()
    try:
        Patch(bare, load_motion_module(FIXTURES / "tiny_unet_v2_full.safetensors", dtype=torch.float32))
    except ConfigError as e:
        results["no_middle_block"]["v2_error"] = str(e)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
