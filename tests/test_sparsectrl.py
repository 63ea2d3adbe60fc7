"""SparseCtrl against the original SparseControlNetModel's recorded residuals (tests/fixtures/
make_original_sparsectrl_vectors.py: RGB with keyframe {0}, scribble with keyframes {0, 4}), and its loader."""

import importlib.util
import json

import pytest
import torch
from einops import rearrange
from safetensors import safe_open
from safetensors.torch import load_file

from conftest import FIXTURES
from fixture_files import tiny_published
from motion_core import ConfigError, NotAMotionModuleError
from motion_core.sparsectrl import SparseCtrlConfig, build_sparsectrl, infer_config, keyframe_condition, load_sparsectrl
from unets import original_unet

spec = importlib.util.spec_from_file_location("recorder", FIXTURES / "make_original_sparsectrl_vectors.py")
recorder = importlib.util.module_from_spec(spec)
spec.loader.exec_module(recorder)


def fixture(variant: str):
    path = FIXTURES / f"tiny_sparsectrl_{variant}.safetensors"
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    data = load_file(str(path))
    own = {k: v.float() for k, v in data.items() if not k.startswith("out")}
    seed, kwargs, keyframes, scale, channels, factor = recorder.VARIANTS[variant]
    inputs = recorder.inputs(seed, channels, factor, keyframes)
    sums = json.loads(meta["input_sums"])
    for k, v in inputs.items():  # the same inputs the original saw
        assert v.double().sum().item() == pytest.approx(sums[k], rel=1e-12, abs=1e-9), k
    return own, inputs, data, scale, meta


def whole_file(own: dict) -> dict:
    """What an official file holds: the ControlNet's own tensors and the image layers from_unet copied."""
    full = load_file(str(FIXTURES / "tiny_unet_v3_full.safetensors"))
    image = {k: v.float() for k, v in full.items() if ".motion_modules." not in k
             and k.startswith(("conv_in.", "time_embedding.", "down_blocks.", "mid_block."))}
    return {**image, **own}


@pytest.mark.parametrize("variant", ["rgb", "scribble"])
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
def test_residuals_match_the_original(variant, dtype, tol):
    own, x, data, scale, _ = fixture(variant)
    unet, _ = original_unet("v3")
    model = load_sparsectrl(whole_file(own), unet, heads=2).to(dtype)
    assert model.config.kind == variant
    with torch.no_grad():
        down, mid = model(x["sample"].to(dtype), x["timestep"], x["encoder_hidden_states"].to(dtype),
                          x["controlnet_cond"].to(dtype), x["conditioning_mask"].to(dtype), scale)
    prefix = "out." if dtype == torch.float32 else "out64."
    refs = {int(k.split(".")[-1]): v for k, v in data.items() if k.startswith(prefix + "down.")}
    assert len(down) == 12 and len(refs) == (12 if dtype == torch.float32 else 6)
    frames = x["sample"].shape[2]
    for i, ref in refs.items():  # deep activations reach |x| ~ 100: the bound is relative to the largest value
        got = rearrange(down[i], "(b f) c h w -> b c f h w", f=frames)
        assert (got - ref.to(dtype)).abs().max().item() <= tol * max(1.0, ref.abs().max().item()), (variant, i)
    ref = data[prefix + "mid"].to(dtype)
    got = rearrange(mid, "(b f) c h w -> b c f h w", f=frames)
    assert (got - ref).abs().max().item() <= tol * max(1.0, ref.abs().max().item())


def test_a_keyframe_steers_its_frames_only_through_the_motion_modules():
    own, x, _, scale, _ = fixture("rgb")
    unet, _ = original_unet("v3")
    model = load_sparsectrl(whole_file(own), unet, heads=2)
    with torch.no_grad():
        base = model(x["sample"], x["timestep"], x["encoder_hidden_states"], x["controlnet_cond"],
                     x["conditioning_mask"], scale)[1]
        empty = torch.zeros_like(x["controlnet_cond"])
        none = model(x["sample"], x["timestep"], x["encoder_hidden_states"], empty, torch.zeros_like(empty[:, :1]),
                     scale)[1]
        noise = model(torch.randn_like(x["sample"]), x["timestep"], x["encoder_hidden_states"], x["controlnet_cond"],
                      x["conditioning_mask"], scale)[1]
    assert not torch.allclose(base, none)
    assert torch.equal(base, noise)  # the noisy sample is zeroed, as in the official files


def test_config_is_read_from_the_keys_and_bad_files_are_named():
    own_rgb, *_ = fixture("rgb")
    own_scribble, *_ = fixture("scribble")
    assert infer_config(own_rgb) == SparseCtrlConfig("rgb", 4)
    assert infer_config(own_scribble) == SparseCtrlConfig("scribble", 3, (8, 16, 32, 32))
    assert SparseCtrlConfig("scribble", 3, (8, 16, 32, 32)).factor == 8
    unet, _ = original_unet("v3")
    with pytest.raises(NotAMotionModuleError, match="not a SparseCtrl"):
        load_sparsectrl(load_file(str(tiny_published("v3"))), unet)
    from unets import SDXL, random_unet
    with pytest.raises(ConfigError, match="it has 4 levels.*the SDXL base UNet has 3.*use an SD1.5 base"):
        load_sparsectrl(whole_file(own_rgb), random_unet(SDXL))


def test_keyframe_condition_places_keyframes_in_the_window():
    keys = {0: torch.ones(4, 2, 2), 15: torch.full((4, 2, 2), 2.0)}
    cond, mask = keyframe_condition(keys, range(12, 16), torch.zeros(1), clips=2)
    assert cond.shape == (2, 4, 4, 2, 2) and mask[0, 0, :, 0, 0].tolist() == [0, 0, 0, 1]
    assert cond[:, :, 3].eq(2.0).all() and cond[:, :, :3].eq(0).all()
    cond, mask = keyframe_condition(keys, range(4, 8), torch.zeros(1))
    assert not mask.any() and not cond.any()


def test_build_from_unet_copies_the_image_layers():
    unet, _ = original_unet("v3")
    model = build_sparsectrl(unet, SparseCtrlConfig("rgb", 4, heads=2), load_weights_from_unet=True)
    assert torch.equal(model.controlnet.conv_in.weight, unet.conv_in.weight)
    assert not model.controlnet.controlnet_cond_embedding.weight.any()  # zero-initialised


def test_related_files_are_named_not_half_loaded(tmp_path):
    from safetensors.torch import save_file

    from motion_core import UnsupportedMethodError, load_motion_module
    from motion_core.cli import main
    own, *_ = fixture("rgb")
    path = tmp_path / "v3_sd15_sparsectrl_rgb.safetensors"
    save_file({k: v.contiguous() for k, v in whole_file(own).items()}, path)
    with pytest.raises(NotAMotionModuleError, match="a SparseCtrl ControlNet.*Load SparseCtrl"):
        load_motion_module(path)
    mm = load_file(str(tiny_published("v3")))
    pia = {**mm, "conv_in.weight": torch.zeros(32, 9, 3, 3), "conv_in.bias": torch.zeros(32)}
    with pytest.raises(UnsupportedMethodError, match="PIA .*9 channels.*does not support it"):
        load_motion_module(pia)
    with pytest.raises(UnsupportedMethodError, match="AnimateLCM-I2V"):
        load_motion_module({**mm, "img_encoder.proj.weight": torch.zeros(4, 4)})
    with pytest.raises(UnsupportedMethodError, match="CameraCtrl"):
        load_motion_module({**mm, "pose_encoder.conv_in.weight": torch.zeros(4, 4)})
    whole_unet = {**mm, "conv_in.weight": torch.zeros(32, 4, 3, 3)}  # a training checkpoint: still loads
    assert load_motion_module(whole_unet).config.version == "v3"
    import contextlib
    import io
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main(["inspect", str(path)])
    assert "sparsectrl (safetensors)" in out.getvalue() and "rgb keyframes" in out.getvalue()


@pytest.mark.parametrize("variant", ["rgb", "scribble"])
def test_diffusers_sparsectrl_differs_from_the_original_by_its_cross_frame_norm(variant):
    """diffusers' SparseControlNetModel on the same weights (sample zeroed, as the original's config does) is not the
    original: its motion modules normalise across frames. Measured: max |diffusers - original| 0.31 (rgb) and 0.062
    (scribble) on residuals up to 1.4; ours with that one switch flipped equals diffusers within 5e-6."""
    diffusers = pytest.importorskip("diffusers")
    if not hasattr(diffusers, "SparseControlNetModel"):
        pytest.skip("this diffusers has no SparseControlNetModel")
    from motion_core.formats.layouts import original_key_to_diffusers
    own, x, data, scale, _ = fixture(variant)
    sd = whole_file(own)
    theirs = diffusers.SparseControlNetModel(
        conditioning_channels=4 if variant == "rgb" else 3, block_out_channels=(32, 32, 32, 32),
        cross_attention_dim=32, attention_head_dim=2, conditioning_embedding_out_channels=(8, 16, 32, 32),
        motion_num_attention_heads=2, use_simplified_condition_embedding=variant == "rgb").eval()
    missing, unexpected = theirs.load_state_dict(
        {original_key_to_diffusers(k) if ".motion_modules." in k else k: v for k, v in sd.items()}, strict=False)
    assert not unexpected and all("pos_embed" in k or "pe" in k.split(".")[-1] for k in missing)
    unet, _ = original_unet("v3")
    ours = load_sparsectrl(sd, unet, heads=2)
    frames = x["sample"].shape[2]
    video = lambda t: t if t.ndim == 5 else rearrange(t, "(b f) c h w -> b c f h w", f=frames)  # noqa: E731
    with torch.no_grad():
        down, mid = theirs(torch.zeros_like(x["sample"]), x["timestep"], x["encoder_hidden_states"].repeat_interleave(
            frames, 0), x["controlnet_cond"], conditioning_scale=scale, conditioning_mask=x["conditioning_mask"],
            return_dict=False)
        theirs_out = [video(t) for t in list(down) + [mid]]
        for m in ours.motion.modules():
            if hasattr(m, "cross_frame_norm"):
                m.cross_frame_norm = True
        switched = ours(x["sample"], x["timestep"], x["encoder_hidden_states"], x["controlnet_cond"],
                        x["conditioning_mask"], scale)
    refs = [data[f"out.down.{i}"] for i in range(12)] + [data["out.mid"]]
    to_original = max((a - r).abs().max().item() for a, r in zip(theirs_out, refs))
    to_switched = max((a - video(b)).abs().max().item() for a, b in zip(theirs_out, switched[0] + [switched[1]]))
    assert to_original > 0.03 and to_switched < 2e-5, (to_original, to_switched)


def tiny_sparsectrl(base, kind: str, seed: int = 5):
    """A SparseCtrl for the tiny pipeline's base, every weight random (its zero convs too), 2 heads."""
    from motion_core.sparsectrl import SparseCtrlConfig, build_sparsectrl
    config = SparseCtrlConfig(kind, 4 if kind == "rgb" else 3, (8, 16, 32, 32), heads=2)
    model = build_sparsectrl(base.unet, config, load_weights_from_unet=True)
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    pytest.importorskip("transformers")
    from motion_core.base import load_base
    from motion_core.tiny import build_tiny_base
    from test_pipeline import random_module
    base = load_base(build_tiny_base(tmp_path_factory.mktemp("base"), words=["cat"]))
    return base, random_module()


def test_generate_with_keyframes_steers_only_the_windows_that_hold_them(tiny):
    from motion_core.context import ContextOptions
    from motion_core.pipeline import generate
    base, mm = tiny
    ctrl = tiny_sparsectrl(base, "rgb")
    image = torch.rand(48, 40, 3)
    run = dict(frames=12, steps=1, width=32, height=32, guidance=1.0, progress=False, seed=3,
               context=ContextOptions(length=8, overlap=4))  # windows 0..7 and 4..11
    plain = generate(base, mm, "a cat", **run).latents
    keyed = generate(base, mm, "a cat", sparse_ctrl=ctrl, keyframes={0: image}, **run)
    last = generate(base, mm, "a cat", sparse_ctrl=ctrl, keyframes={-1: image}, **run).latents
    assert keyed.settings["sparse_ctrl"] == {"kind": "rgb", "keyframes": [0], "strength": 1.0}
    assert torch.equal(keyed.latents[:, :, 8:], plain[:, :, 8:])  # only in the window without the keyframe
    assert not torch.allclose(keyed.latents[:, :, :4], plain[:, :, :4])
    assert torch.equal(last[:, :, :4], plain[:, :, :4]) and not torch.allclose(last[:, :, 8:], plain[:, :, 8:])
    zero = generate(base, mm, "a cat", sparse_ctrl=ctrl, keyframes={0: image}, sparse_strength=0.0, **run).latents
    assert torch.equal(zero, plain)


def test_generate_refuses_bad_keyframes(tiny):
    from motion_core.pipeline import generate
    base, mm = tiny
    ctrl = tiny_sparsectrl(base, "scribble")
    run = dict(frames=8, steps=1, width=32, height=32, progress=False)
    with pytest.raises(ConfigError, match="keyframe 8 is outside the clip of 8 frames"):
        generate(base, mm, "a cat", sparse_ctrl=ctrl, keyframes={8: torch.rand(8, 8, 3)}, **run)
    with pytest.raises(ConfigError, match="keyframes were given without sparse_ctrl"):
        generate(base, mm, "a cat", keyframes={0: torch.rand(8, 8, 3)}, **run)
    with pytest.raises(ConfigError, match="keyframe 0 has shape \\(8, 8\\)"):
        generate(base, mm, "a cat", sparse_ctrl=ctrl, keyframes={0: torch.rand(8, 8)}, **run)


def test_cli_scribble_keyframes_write_an_animation(tiny, tmp_path):
    import subprocess
    import sys

    from PIL import Image

    from motion_core.media import read_frames, read_metadata
    from motion_core.sparsectrl import save_sparsectrl
    from motion_core.tiny import build_tiny_base
    base_dir = build_tiny_base(tmp_path / "base", words=["cat"])
    from motion_core.base import load_base
    from test_pipeline import random_module
    base = load_base(base_dir)
    save_sparsectrl(tiny_sparsectrl(base, "scribble"), tmp_path / "scribble.safetensors")
    save_sparsectrl(tiny_sparsectrl(base, "rgb"), tmp_path / "rgb.safetensors")
    from motion_core import save_motion_module
    save_motion_module(random_module(), tmp_path / "mm.safetensors")
    frames = [Image.fromarray((torch.rand(40, 40, 3) * 255).byte().numpy()) for _ in range(2)]
    frames[0].save(tmp_path / "keys.gif", save_all=True, append_images=frames[1:])
    frames[0].save(tmp_path / "first.png")
    common = [sys.executable, "-m", "motion_core", "generate", "--model", base_dir, "--motion-module",
              tmp_path / "mm.safetensors", "--prompt", "a cat", "--frames", 16, "--steps", 1, "--size", "32x32",
              "--quiet"]
    run = lambda *a: subprocess.run([str(x) for x in common + list(a)], capture_output=True, text=True)  # noqa: E731
    scribble = ("--sparse-ctrl", tmp_path / "scribble.safetensors")
    p = run(*scribble, "--keyframe", f"0,15:{tmp_path / 'keys.gif'}", "--out", tmp_path / "a.gif")
    assert p.returncode == 0, p.stderr[-2000:]
    assert read_frames(tmp_path / "a.gif").shape == (16, 32, 32, 3)
    assert read_metadata(tmp_path / "a.gif")["motion_core"]["sparse_ctrl"]["keyframes"] == [0, 15]
    p = run("--sparse-ctrl", tmp_path / "rgb.safetensors", "--keyframe", f"0:{tmp_path / 'first.png'}", "--out",
            tmp_path / "rgb.gif")
    assert p.returncode == 0, p.stderr[-2000:]
    assert read_metadata(tmp_path / "rgb.gif")["motion_core"]["sparse_ctrl"] == {"kind": "rgb", "keyframes": [0],
                                                                                 "strength": 1.0}
    for args, message in (((f"0:{tmp_path / 'keys.gif'}",), "holds 2 images but 1 frame indices"),
                          ((f"0,19:{tmp_path / 'keys.gif'}",), "keyframe 19 is outside the clip of 16 frames"),
                          (("x:keys.gif",), "is not FRAMES:FILE")):
        p = run(*scribble, "--keyframe", *args, "--out", tmp_path / "b.gif")
        assert p.returncode == 2 and message in p.stderr, p.stderr[-1000:]
    sdxl = build_tiny_base(tmp_path / "sdxl", "sdxl")
    p = run(*scribble, "--keyframe", f"0:{tmp_path / 'first.png'}", "--model", sdxl, "--out", tmp_path / "c.gif")
    assert p.returncode == 2 and "SparseCtrl exists for SD1.5 models" in p.stderr, p.stderr[-1000:]


def test_sparsectrl_with_the_v3_domain_adapter(tiny, tmp_path):
    """The adapter merges into the base UNet only (as the original's animate.py): SparseCtrl's own image layers stay
    as its file has them, and both shape the frames."""
    from safetensors.torch import save_file

    from motion_core.pipeline import generate
    base, mm = tiny
    g = torch.Generator().manual_seed(0)
    adapter = {}
    for name, module in base.unet.named_modules():
        if name.endswith(("attn1", "attn2")):
            w = module.to_q.weight
            adapter[f"{name}.processor.to_q_lora.down.weight"] = torch.randn(4, w.shape[1], generator=g) * 0.3
            adapter[f"{name}.processor.to_q_lora.up.weight"] = torch.randn(w.shape[0], 4, generator=g) * 0.3
    save_file(adapter, tmp_path / "adapter.safetensors")
    ctrl = tiny_sparsectrl(base, "rgb")
    before = {k: v.clone() for k, v in ctrl.state_dict().items()}
    run = dict(frames=8, steps=2, width=32, height=32, progress=False, seed=2)
    keys = {0: torch.rand(32, 32, 3)}
    both = generate(base, mm, "a cat", sparse_ctrl=ctrl, keyframes=keys,
                    domain_adapter=tmp_path / "adapter.safetensors", **run).latents
    sparse_only = generate(base, mm, "a cat", sparse_ctrl=ctrl, keyframes=keys, **run).latents
    adapter_only = generate(base, mm, "a cat", domain_adapter=tmp_path / "adapter.safetensors", **run).latents
    assert not torch.allclose(both, sparse_only) and not torch.allclose(both, adapter_only)
    assert all(torch.equal(v, ctrl.state_dict()[k]) for k, v in before.items())
