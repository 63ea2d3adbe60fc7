"""The standalone pipeline against diffusers' AnimateDiffPipeline (same components, weights and seed), and its
options: prompt travel, context windows, FreeNoise, video-to-video, the domain adapter, bad arguments."""

import copy

import pytest
import torch

from conftest import FIXTURES
from fixture_files import tiny_published

diffusers = pytest.importorskip("diffusers", reason="the pipeline runs over diffusers components")
pytest.importorskip("transformers", reason="the pipeline's text encoder comes from transformers")

from motion_core import (ConfigError, FrameCountError, MotionModule, MotionModuleConfig, UnknownLayoutError,  # noqa: E402
                         save_motion_module)
from motion_core.base import load_base  # noqa: E402
from motion_core.pipeline import generate  # noqa: E402
from motion_core.schedule import make_scheduler  # noqa: E402
from motion_core.tiny import build_tiny_base  # noqa: E402

SCALE = 0.05
TINY = dict(family="sd15", version="v3", channels=(32, 64, 64, 64), heads=2)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return load_base(build_tiny_base(tmp_path_factory.mktemp("base"), words=["cat", "running", "sitting"]))


def random_module(seed=1, **overrides) -> MotionModule:
    """A motion module with every weight random (proj_out too, so it changes the output)."""
    torch.manual_seed(seed)
    mm = MotionModule(MotionModuleConfig(**{**TINY, **overrides}))
    with torch.no_grad():
        for p in mm.parameters():
            p.copy_(torch.randn_like(p) * SCALE)
    return mm.eval()


def diffusers_pipeline(base, mm, tmp_path):
    """diffusers' AnimateDiffPipeline over the same UNet, VAE, text encoder, tokenizer and motion weights."""
    save_motion_module(mm, tmp_path / "adapter", layout="diffusers")
    adapter = diffusers.MotionAdapter.from_pretrained(tmp_path / "adapter")
    unet = diffusers.UNetMotionModel.from_unet2d(copy.deepcopy(base.unet), adapter).eval()
    return diffusers.AnimateDiffPipeline(vae=base.vae, text_encoder=base.text_encoder, tokenizer=base.tokenizer,
                                         unet=unet, motion_adapter=adapter, scheduler=make_scheduler("sd15"))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_unet_inputs_and_frames_match_diffusers(base, tmp_path, dtype):
    """float64: the UNet inputs agree within 1e-5 at every step (measured 6e-12) and the frames within 1e-4: the
    plumbing is the same. float32: step 0 is bit-identical; after it, diffusers' UNetMotionModel differs from the
    UNet2DConditionModel it was built from by ~1.3e-5 even with a zero motion module (its own fp32 rounding), which
    guidance 7.5 and DDIM's x0 prediction amplify on this random, untrained model (latents grow to ~25): measured
    3e-3 on the step-3 latents and 2.3e-4 on the frames."""
    base = copy.deepcopy(base).to(dtype=dtype)
    mm = random_module().to(dtype)
    for module in mm.modules():  # diffusers' motion blocks normalise across frames: compare the same function
        if hasattr(module, "cross_frame_norm"):
            module.cross_frame_norm = True
    pipe = diffusers_pipeline(base, mm, tmp_path).to(dtype=dtype)
    theirs, ours = [], []
    pipe.unet.register_forward_pre_hook(
        lambda m, a, kw: theirs.append((a[0].clone(), a[1].clone(), kw["encoder_hidden_states"].clone())),
        with_kwargs=True)
    handle = base.unet.register_forward_pre_hook(
        lambda m, a, kw: ours.append((a[0].clone(), a[1].clone(), a[2].clone())), with_kwargs=True)
    args = dict(num_frames=16, num_inference_steps=4, guidance_scale=7.5, height=64, width=64)
    expected = pipe("a cat running", negative_prompt="sitting", generator=torch.Generator().manual_seed(7),
                    output_type="pt", **args).frames[0]  # (f, 3, h, w) in [0, 1]
    try:
        got = generate(base, mm, "a cat running", negative_prompt="sitting", frames=16, steps=4, guidance=7.5,
                       width=64, height=64, seed=7, progress=False)
    finally:
        handle.remove()
    assert len(ours) == len(theirs) == 4
    bound, frame_bound = (1e-5, 1e-4) if dtype == torch.float64 else (1e-2, 1e-3)
    for i, ((x, t, text), (x2, t2, text2)) in enumerate(zip(theirs, ours)):
        x = x.permute(0, 2, 1, 3, 4).flatten(0, 1)  # diffusers hands the UNet (b, c, f, h, w); ours sees (b f)
        assert (x - x2).abs().max() <= (0 if i == 0 else bound), (i, (x - x2).abs().max())
        assert torch.equal(t.reshape(-1).expand(t2.numel()), t2.reshape(-1))  # the same timestep
        assert (text - text2).abs().max() <= 1e-5
    diff = (expected.permute(0, 2, 3, 1) - got.frames).abs().max().item()
    assert diff <= frame_bound, diff
    assert got.frames.std() > 0.01  # a picture of noise, not a constant


def test_motion_module_changes_frames_and_base_is_untouched(base):
    before = {k: v.clone() for k, v in base.unet.state_dict().items()}
    run = dict(frames=8, steps=2, width=64, height=64, seed=3, progress=False)
    moving = generate(base, random_module(), "a cat", **run).frames
    still = generate(base, random_module(), "a cat", motion_strength=0.0, **run).frames
    zero = generate(base, MotionModule(MotionModuleConfig(**TINY)), "a cat", **run).frames
    assert torch.equal(still, zero)  # a zero-initialised module is the image model, bit for bit
    assert (moving - still).abs().max() > 1e-3
    assert all(torch.equal(v, base.unet.state_dict()[k]) for k, v in before.items())
    assert not base.unet._forward_hooks and all(not m._forward_hooks for m in base.unet.modules())


def test_prompt_travel_interpolates_per_frame(base):
    from motion_core.pipeline import _Text
    text = _Text(base, "0: a cat\n7: a cat running", "sitting", 8, 64, 64, cfg=True)
    (cat, running), _ = base.encode_prompt(["a cat", "a cat running"])
    negative = base.encode_prompt(["sitting"])[0][0]
    assert text.cond.shape == (2, 8, 77, 32)  # [negative, positive] x frames
    assert torch.allclose(text.cond[1, 0], cat, atol=1e-6) and torch.allclose(text.cond[1, 7], running, atol=1e-6)
    assert torch.allclose(text.cond[1, 3], cat * 4 / 7 + running * 3 / 7, atol=1e-6)
    assert all(torch.allclose(text.cond[0, f], negative, atol=1e-6) for f in range(8))
    window, _ = text.window([2, 3, 4])
    assert torch.equal(window, text.cond[:, 2:5])  # a context window gets its own frames' prompts
    run = dict(frames=8, steps=2, width=64, height=64, seed=3, progress=False)
    mm = random_module()
    one = generate(base, mm, "a cat", **run).frames
    travel = generate(base, mm, "0: a cat\n7: a cat running", **run).frames
    assert (one - travel).abs().max() > 1e-3
    assert "\n7: a cat running" in generate(base, mm, ["0: a cat", "7: a cat running"], **run).settings["prompt"]
    with pytest.raises(ConfigError, match="past the last frame"):
        generate(base, mm, "0: a\n8: b", **run)


def test_long_clip_runs_through_windows(base):
    mm = random_module()
    run = dict(steps=1, width=64, height=64, seed=3, progress=False)
    with pytest.raises(FrameCountError, match="holds 32 frames"):
        generate(base, mm, "a cat", frames=40, context=None, **run)
    out = generate(base, mm, "a cat", frames=40, **run)
    assert out.frames.shape == (40, 64, 64, 3) and out.settings["context"]["length"] == 16
    free = generate(base, mm, "a cat", frames=40, noise="freenoise", **run)
    assert (free.frames - out.frames).abs().max() > 1e-3


def test_closed_loop_joins_the_last_frame_to_the_first(base):
    """Perturb the last frame's starting noise: after one step the first frame moves only when a window spans the
    end and the start (looped + closed loop); with static windows they never meet, and frame 0 keeps its bits."""
    from motion_core.context import ContextOptions
    mm = random_module(seed=2)
    noise = torch.randn(1, 4, 40, 8, 8, generator=torch.Generator().manual_seed(0))
    nudged = noise.clone()
    nudged[:, :, -1] += 1.0
    run = dict(frames=40, steps=1, width=64, height=64, progress=False)
    for schedule, joined in (("static", False), ("looped", True)):
        context = ContextOptions(length=16, overlap=4, schedule=schedule, closed_loop=True)
        a, b = (generate(base, mm, "a cat", context=context, latents=x, **run).latents for x in (noise, nudged))
        moved = (a[:, :, 0] - b[:, :, 0]).abs().max().item()
        assert (moved > 1e-4) if joined else (moved == 0.0), (schedule, moved)
        assert (a[:, :, 20] - b[:, :, 20]).abs().max() == 0  # a frame far from both ends never sees it


def test_video_to_video_keeps_the_video_at_low_strength(base):
    mm = random_module()
    video = torch.zeros(8, 64, 64, 3)
    video[:, 16:48, 16:48] = 1.0  # a white square
    run = dict(frames=8, steps=4, width=64, height=64, seed=3, progress=False)
    low = generate(base, mm, "a cat", init_video=video, strength=0.25, **run)
    assert low.settings["strength"] == 0.25
    high = generate(base, mm, "a cat", init_video=video, strength=1.0, **run)
    plain = generate(base, mm, "a cat", **run)
    assert not torch.equal(high.frames, plain.frames)  # a different start, even at strength 1
    with pytest.raises(ConfigError, match="has 8 frames but 9"):
        generate(base, mm, "a cat", init_video=video, **{**run, "frames": 9})


def test_domain_adapter_changes_frames_and_is_taken_out_again(base, tmp_path):
    """An image-layer LoRA in the v3 adapter's naming (attn1/attn2 ... processor.to_q_lora.down.weight) is merged
    for the sampling only: frames change, the UNet's weights are bit-identical afterwards, scale 0 is no adapter."""
    from safetensors.torch import save_file
    g = torch.Generator().manual_seed(0)
    adapter = {}
    for name, module in base.unet.named_modules():
        if name.endswith(("attn1", "attn2")):
            for proj in ("to_q", "to_k", "to_v", "to_out"):
                w = module.get_submodule("to_out.0" if proj == "to_out" else proj).weight
                adapter[f"{name}.processor.{proj}_lora.down.weight"] = torch.randn(4, w.shape[1], generator=g) * 0.3
                adapter[f"{name}.processor.{proj}_lora.up.weight"] = torch.randn(w.shape[0], 4, generator=g) * 0.3
    save_file(adapter, tmp_path / "adapter.safetensors")
    before = {k: v.clone() for k, v in base.unet.state_dict().items()}
    run = dict(frames=4, steps=2, width=64, height=64, seed=1, progress=False)
    mm = random_module()
    plain = generate(base, mm, "a cat", **run).frames
    adapted = generate(base, mm, "a cat", domain_adapter=tmp_path / "adapter.safetensors", **run).frames
    off = generate(base, mm, "a cat", domain_adapter=tmp_path / "adapter.safetensors", domain_adapter_scale=0, **run)
    assert (plain - adapted).abs().max() > 1e-3 and torch.equal(plain, off.frames)
    assert all(torch.equal(v, base.unet.state_dict()[k]) for k, v in before.items())
    with pytest.raises(UnknownLayoutError, match="not an image-layer LoRA"):
        generate(base, mm, "a cat", domain_adapter=tiny_published("v3"), **run)


@pytest.mark.parametrize("bad, match", [
    (dict(frames=0), "frames=0"), (dict(steps=0), "steps=0"), (dict(width=60), "multiple of 8"),
    (dict(guidance=-1), "guidance"), (dict(noise="pink"), "noise"), (dict(scheduler="nope"), "scheduler"),
    (dict(strength=0), "strength"), (dict(prompt=""), "prompt is empty")])
def test_bad_arguments_are_typed_errors(base, bad, match):
    kwargs = dict(frames=8, steps=1, width=64, height=64, progress=False)
    prompt = bad.pop("prompt", "a cat")
    with pytest.raises(ConfigError, match=match):
        generate(base, random_module(), prompt, **{**kwargs, **bad})
