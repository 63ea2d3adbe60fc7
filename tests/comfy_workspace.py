"""Build a ComfyUI base directory for the workflow tests. Run inside ComfyUI's Python:

    python tests/comfy_workspace.py COMFYUI_PATH BASE_DIR

BASE_DIR gets models with the conventional names the shipped workflows use, all random-weight and full-size (fp16):
  models/checkpoints/v1-5-pruned-emaonly.safetensors   an SD1.5 checkpoint ComfyUI detects as SD1.5
  models/animatediff_models/mm_sd_v15_v2.ckpt, v3_sd15_mm.ckpt   motion modules, original layout (pickle .ckpt)
  models/animatediff_motion_lora/v2_lora_ZoomIn.ckpt    a rank-64 MotionLoRA for v2
  models/controlnet/control_v11p_sd15_canny.pth         an SD1.5 ControlNet (ldm layout)
  models/controlnet/v3_sd15_sparsectrl_rgb.ckpt, _scribble.ckpt   SparseCtrl files (official key layout)
  input/motion_core_input.webp, motion_core_input_48.webp   16- and 48-frame 64x64 clips for video-to-video
  input/motion_core_keyframe.png, motion_core_scribbles.webp   SparseCtrl keyframes (one image; two frames)
  custom_nodes/motion_core                              a link to this repository
  custom_nodes/mctest_nodes                             a link to tests/comfy_test_nodes (test-only nodes)
Nothing is downloaded; what a BASE_DIR already has is reused (delete it to rebuild)."""

import json
import math
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMFY, BASE = Path(sys.argv[1]), Path(sys.argv[2])
sys.path[:0] = [str(COMFY), str(ROOT)]
sys.argv = [sys.argv[0], "--cpu"]

import comfy.options  # noqa: E402

comfy.options.enable_args_parsing()

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

SD15_UNET = {"image_size": 32, "out_channels": 4, "use_spatial_transformer": True, "legacy": False,
             "in_channels": 4, "model_channels": 320, "num_res_blocks": [2, 2, 2, 2],
             "transformer_depth": [1, 1, 1, 1, 1, 1, 0, 0], "channel_mult": [1, 2, 4, 4], "transformer_depth_middle": 1,
             "use_linear_in_transformer": False, "context_dim": 768, "num_heads": 8,
             "transformer_depth_output": [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0], "adm_in_channels": None,
             "dtype": torch.float32}
VAE = {"double_z": True, "z_channels": 4, "resolution": 256, "in_channels": 3, "out_ch": 3, "ch": 128,
       "ch_mult": [1, 2, 4, 4], "num_res_blocks": 2, "attn_resolutions": [], "dropout": 0.0}


def randomize(module: torch.nn.Module) -> dict:
    """PyTorch's default init for every weight (ComfyUI's layers skip init), fp16 state dict."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.ndim >= 2:
                bound = 1 / math.sqrt(p[0].numel())
                p.copy_(torch.rand(p.shape, generator=g) * 2 * bound - bound)
            elif name.endswith("weight"):
                p.fill_(1.0)
            else:
                p.zero_()
    return {k: v.half().contiguous() for k, v in module.state_dict().items() if v.is_floating_point()}


def checkpoint(path: Path) -> None:
    from transformers import CLIPTextConfig, CLIPTextModel

    from comfy.ldm.models.autoencoder import AutoencoderKL
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel
    sd = {f"model.diffusion_model.{k}": v for k, v in randomize(UNetModel(**SD15_UNET)).items()}
    sd.update({f"first_stage_model.{k}": v for k, v in randomize(AutoencoderKL(ddconfig=VAE, embed_dim=4)).items()})
    clip = CLIPTextModel(CLIPTextConfig(vocab_size=49408, hidden_size=768, intermediate_size=3072,
                                        num_hidden_layers=12, num_attention_heads=12, max_position_embeddings=77,
                                        hidden_act="quick_gelu"))
    sd.update({f"cond_stage_model.transformer.{k}": v for k, v in randomize(clip).items()})
    save_file(sd, path)


def motion_modules(folder: Path, lora_folder: Path) -> None:
    from motion_core import MotionModule, MotionModuleConfig
    for name, version in (("mm_sd_v15_v2.ckpt", "v2"), ("v3_sd15_mm.ckpt", "v3")):
        mm = MotionModule(MotionModuleConfig(family="sd15", version=version, channels=(320, 640, 1280, 1280),
                                             mid_block=version == "v2"))
        with torch.no_grad():
            for key, p in mm.named_parameters():
                if ".proj_out." in key:
                    p.normal_(std=0.02)
        torch.save({k: v.half() for k, v in mm.state_dict().items()}, folder / name)
        if version == "v2":
            g = torch.Generator().manual_seed(1)
            lora = {}
            for key, w in mm.state_dict().items():
                if key.endswith(("to_q.weight", "to_k.weight", "to_v.weight", "to_out.0.weight")):
                    stem = key.rsplit(".", 2 if key.endswith("to_out.0.weight") else 1)[0]
                    proj = stem.rsplit(".", 1)[1]
                    attn = stem.rsplit(".", 1)[0]
                    lora[f"{attn}.processor.{proj}_lora.down.weight"] = torch.randn(64, w.shape[1], generator=g) * 0.01
                    lora[f"{attn}.processor.{proj}_lora.up.weight"] = torch.randn(w.shape[0], 64, generator=g) * 0.01
            torch.save({k: v.half() for k, v in lora.items()}, lora_folder / "v2_lora_ZoomIn.ckpt")


def controlnet(path: Path) -> None:
    """A full-size SD1.5 ControlNet (ldm layout, as control_v11p_sd15_*.pth), every weight random: the zero
    convolutions too, so its hint visibly steers."""
    from comfy.cldm.cldm import ControlNet
    config = {k: v for k, v in SD15_UNET.items() if k != "out_channels"}
    torch.save(randomize(ControlNet(hint_channels=3, **config)), path)


def sparsectrl(path: Path, kind: str) -> None:
    """A full-size SD1.5 SparseCtrl in the official layout (diffusers key names, pickle .ckpt), every weight random
    (zero convolutions too, so its keyframes visibly steer): the encoder of a random cldm ControlNet renamed, and a
    SparseCtrl motion set (one attention block per module)."""
    import comfy.utils
    from comfy.cldm.cldm import ControlNet

    from motion_core.config import MotionModuleConfig
    from motion_core.sparsectrl import SparseMotion
    config = {k: v for k, v in SD15_UNET.items() if k != "out_channels"}
    ldm = randomize(ControlNet(hint_channels=4, **config))
    sd = {d: ldm[k] for d, k in comfy.utils.unet_to_diffusers(SD15_UNET).items()
          if k in ldm and d.startswith(("conv_in.", "time_embedding.", "down_blocks.", "mid_block."))}
    for key, value in ldm.items():
        leaf = key.rsplit(".", 1)[1]
        if key.startswith("zero_convs."):
            sd[f"controlnet_down_blocks.{key.split('.')[1]}.{leaf}"] = value
        elif key.startswith("middle_block_out.0."):
            sd[f"controlnet_mid_block.{leaf}"] = value
        elif key.startswith("input_hint_block.") and kind == "scribble":  # convs at 0, 2, ..., 14
            i = int(key.split(".")[1])
            sd[f"controlnet_cond_embedding.{'conv_in' if i == 0 else 'conv_out' if i == 14 else f'blocks.{i // 2 - 1}'}"
               f".{leaf}"] = value
    if kind == "rgb":  # the simplified embedding: one conv over 4 latent channels + the mask
        g = torch.Generator().manual_seed(2)
        sd["controlnet_cond_embedding.weight"] = (torch.randn(320, 5, 3, 3, generator=g) * 0.02).half()
        sd["controlnet_cond_embedding.bias"] = torch.zeros(320).half()
    motion = SparseMotion(MotionModuleConfig(family="sd15", version="v3", channels=(320, 640, 1280, 1280),
                                             attention_blocks=1))
    with torch.no_grad():
        for key, p in motion.named_parameters():
            if ".proj_out." in key:
                p.normal_(std=0.02)
    sd.update({k: v.half() for k, v in motion.state_dict().items()})
    torch.save(sd, path)


def keyframe_images(path: Path, frames: int) -> None:
    """`frames` 64x64 keyframes (a red square at the left, then at the right): a PNG for one, an animated WebP for
    more (LoadImage gives every frame)."""
    from motion_core.media import write_animation
    images = torch.zeros(frames, 64, 64, 3)
    for i in range(frames):
        x = 4 + 36 * i // max(1, frames - 1)
        images[i, 20:44, x:x + 24] = torch.tensor([0.9, 0.2, 0.1])
    if frames == 1:
        from PIL import Image
        Image.fromarray((images[0] * 255).byte().numpy()).save(path, format="PNG")
    else:
        write_animation(images, path, fps=8, quality=100)


def input_clip(path: Path, frames: int = 16) -> None:
    """A red square sliding right over black, 64x64 px; past 16 frames it slides back and forth, 4 px lower at each
    turn (lossy WebP drops a frame too like the one before it: every frame must differ to keep the count)."""
    from motion_core.media import write_animation
    video = torch.zeros(frames, 64, 64, 3)
    for i in range(frames):
        x = 2 * (i % 16 if (i // 16) % 2 == 0 else 15 - i % 16)
        y = 20 + 4 * (i // 16)
        video[i, y:y + 24, 2 + x: 26 + x] = torch.tensor([0.9, 0.2, 0.1])
    write_animation(video, path, fps=8)


def main() -> None:
    for sub in ("models/checkpoints", "models/animatediff_models", "models/animatediff_motion_lora",
                "models/controlnet", "input", "output", "custom_nodes", "user"):
        (BASE / sub).mkdir(parents=True, exist_ok=True)
    for name, target in (("motion_core", ROOT), ("mctest_nodes", ROOT / "tests" / "comfy_test_nodes")):
        link = BASE / "custom_nodes" / name
        if not link.exists():
            os.symlink(target, link)
    models = BASE / "models"
    parts = {  # each built when missing, so a workspace from an older version of this script gains the new parts
        models / "checkpoints/v1-5-pruned-emaonly.safetensors": checkpoint,
        models / "animatediff_models/v3_sd15_mm.ckpt":
            lambda _: motion_modules(models / "animatediff_models", models / "animatediff_motion_lora"),
        models / "controlnet/control_v11p_sd15_canny.pth": controlnet,
        BASE / "input/motion_core_input.webp": input_clip,
        BASE / "input/motion_core_input_48.webp": lambda path: input_clip(path, 48),
        models / "controlnet/v3_sd15_sparsectrl_rgb.ckpt": lambda path: sparsectrl(path, "rgb"),
        models / "controlnet/v3_sd15_sparsectrl_scribble.ckpt": lambda path: sparsectrl(path, "scribble"),
        BASE / "input/motion_core_keyframe.png": lambda path: keyframe_images(path, 1),
        BASE / "input/motion_core_scribbles.webp": lambda path: keyframe_images(path, 2),
    }
    missing = [path for path in parts if not path.exists()]
    for path in missing:
        tmp = path.with_name(path.name + ".tmp" + path.suffix)
        parts[path](tmp)
        if tmp.exists():  # the motion modules write their own files (three of them)
            os.replace(tmp, path)  # a killed build leaves no half-written file under the real name
    (BASE / ".complete").write_text(json.dumps({"built_by": "tests/comfy_workspace.py"}))
    print(f"built {len(missing)} of {len(parts)} parts in {BASE}" if missing else f"reusing {BASE}")


if __name__ == "__main__":
    main()
