"""Full-size shapes on CPU: a random SD1.5 UNet (320/640/1280, context 768) with a random full-size v2 set."""

import pytest
import torch

from motion_core import MotionModule, MotionModuleConfig, inject

diffusers = pytest.importorskip("diffusers", reason="diffusers provides the host UNet2DConditionModel")


@pytest.mark.slow
def test_full_size_v2_runs_16_frames_at_64px():
    torch.manual_seed(0)
    unet = diffusers.UNet2DConditionModel(sample_size=64, cross_attention_dim=768).eval()  # SD1.5's layout
    mm = MotionModule(MotionModuleConfig(family="sd15", version="v2", channels=(320, 640, 1280, 1280), mid_block=True))
    with torch.no_grad():
        for name, p in mm.named_parameters():
            if ".proj_out." in name:
                p.normal_(std=0.02)  # a module that does something (a new one is zero-initialised)
    assert mm.num_parameters() == 453_209_280
    model = inject(unet, mm)
    sample = torch.randn(1, 4, 16, 8, 8)  # 16 frames of 64x64 px latents
    context = torch.randn(1, 77, 768)
    with torch.no_grad():
        out = model(sample, torch.tensor([500]), context)
        host = model.eject()
        plain = host(sample[0].transpose(0, 1), torch.tensor([500] * 16), context.repeat(16, 1, 1)).sample
    assert out.shape == (1, 4, 16, 8, 8) and torch.isfinite(out).all()
    assert not torch.allclose(out[0].transpose(0, 1), plain)  # the frames now see each other
