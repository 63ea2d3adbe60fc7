"""Tiny diffusers UNets for the patch tests (config of the original's tiny test UNets)."""

import torch
from safetensors.torch import load_file

from conftest import FIXTURES

diffusers = __import__("pytest").importorskip("diffusers", reason="diffusers provides the host UNet2DConditionModel")

SD15 = dict(sample_size=16, in_channels=4, out_channels=4, block_out_channels=(32, 64, 64, 64), layers_per_block=2,
            cross_attention_dim=32, attention_head_dim=2, norm_num_groups=32,
            down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
            up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3)
SDXL = dict(sample_size=16, in_channels=4, out_channels=4, block_out_channels=(32, 64, 64), layers_per_block=2,
            cross_attention_dim=32, attention_head_dim=2, norm_num_groups=32, transformer_layers_per_block=(1, 1, 2),
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
            addition_embed_type="text_time", addition_time_embed_dim=8, projection_class_embeddings_input_dim=32 + 6 * 8)


# the original tiny UNet3Ds the reference vectors were recorded from (tests/fixtures/make_original_unet_vectors.py)
ORIGINAL_SD15 = dict(SD15, sample_size=12, block_out_channels=(32, 32, 32, 32))


def original_unet(version: str):
    """(diffusers UNet with the original tiny UNet3D's spatial weights, its recorded io). The weights are stored in
    fp16 and hold fp16-exact values: read back in fp32, they are the recorded ones bit for bit."""
    full = {k: v.float() for k, v in load_file(str(FIXTURES / f"tiny_unet_{version}_full.safetensors")).items()}
    unet = diffusers.UNet2DConditionModel(**ORIGINAL_SD15).eval()
    unet.load_state_dict({k: v for k, v in full.items() if ".motion_modules." not in k}, strict=True)
    return unet, load_file(str(FIXTURES / f"tiny_unet_{version}_io.safetensors"))


def random_unet(config: dict, seed: int = 0):
    torch.manual_seed(seed)
    return diffusers.UNet2DConditionModel(**config).eval()
