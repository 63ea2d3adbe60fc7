"""Patching a diffusers UNet: exact to the original UNet3DConditionModel, toggles, eject, errors."""

import hashlib

import pytest
import torch

import motion_core.module as module_impl
from conftest import FIXTURES, random_module
from motion_core import ConfigError, FrameCountError, MotionModule, load_motion_module
from motion_core.patch import inject
from unets import SD15, SDXL, original_unet, random_unet


def host_hash(unet) -> str:
    h = hashlib.sha256()
    for name, t in sorted(unet.state_dict(keep_vars=False).items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def plain(unet, sample, t, context):
    """The host as an image model on every frame: ((b f), c, h, w)."""
    b, c, f, h, w = sample.shape
    x = sample.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)
    out = unet(x, t.repeat_interleave(f) if t.ndim else t, context.repeat_interleave(f, 0)).sample
    return out.reshape(b, f, c, h, w).permute(0, 2, 1, 3, 4)


@pytest.mark.parametrize("version", ["v1", "v2", "v3"])
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
def test_whole_unet_matches_the_original(version, dtype, tol):
    unet, io = original_unet(version)
    mm = load_motion_module(FIXTURES / f"tiny_unet_{version}_full.safetensors", dtype=torch.float32)
    assert mm.config.version == version
    model = inject(unet, mm).to(dtype)
    seen = {}
    for path in (k[3:-3] for k in io if k.startswith("mm.") and k.endswith(":in")):
        m = mm.get_submodule(path)
        m.residual = (lambda x, f, s, m=m, path=path:
                      seen.setdefault(path, (x, x + type(m).residual(m, x, f, s)))[1] - x)
    with torch.no_grad():
        out = model(io["sample"].to(dtype), io["timestep"], io["encoder_hidden_states"].to(dtype))
    reference = io["output"] if dtype == torch.float32 else io["output_fp64"]
    assert (out - reference.to(dtype)).abs().max().item() <= tol
    assert len(seen) == {"v1": 20, "v2": 21, "v3": 20}[version]
    # every module's input and output, in the original's (b, c, f, h, w); recorded in fp32 only, deep activations
    # reach |x| ~ 10, so the bound is 1e-5 relative to the tensor's largest value
    for path, (x, y) in seen.items():
        f = io[f"mm.{path}:in"].shape[2]
        for got, key in ((x, "in"), (y, "out")):
            ref = io[f"mm.{path}:{key}"].to(dtype)
            got = got.reshape(-1, f, *got.shape[1:]).transpose(1, 2)
            assert (got - ref).abs().max().item() <= 1e-5 * max(1.0, ref.abs().max().item()), (path, key)


def _inputs(b=1, f=8, seed=0, context_dim=32):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, 4, f, 16, 16, generator=g), torch.tensor([500] * b), torch.randn(b, 7, context_dim, generator=g)


@pytest.mark.parametrize("version", ["v2", "v3"])
def test_zero_initialised_module_leaves_the_output_bit_identical(version):
    unet = random_unet(SD15)
    sample, t, context = _inputs()
    with torch.no_grad():
        expected = plain(unet, sample, t, context)
        torch.manual_seed(0)
        out = inject(unet, MotionModule(random_module(version).config))(sample, t, context)  # proj_out zero
    assert torch.equal(out, expected)


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_eject_restores_the_host_bit_for_bit(version):
    unet = random_unet(SD15)
    before = host_hash(unet)
    sample, t, context = _inputs()
    with torch.no_grad():
        expected = plain(unet, sample, t, context)
        model = inject(unet, random_module(version))
        assert not torch.equal(model(sample, t, context), expected)
        host = model.eject()
        after = plain(host, sample, t, context)
    assert host is unet and host_hash(unet) == before
    assert torch.equal(after, expected)
    assert all(not m._forward_hooks for m in unet.modules())
    assert all("forward" not in vars(m) for m in unet.modules())  # v1's per-instance GroupNorm forward is gone


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_strength_zero_is_the_plain_host_and_strength_blends(version):
    unet = random_unet(SD15)
    sample, t, context = _inputs()
    mm = random_module(version)
    with torch.no_grad():
        expected = plain(unet, sample, t, context)
        zero = inject(unet, mm, strength=0.0)
        assert torch.equal(zero(sample, t, context), expected)
        zero.eject()
        full = inject(unet, mm)
        out_full = full(sample, t, context)
        full.eject()
        half = inject(unet, mm, strength=0.5)
        out_half = half(sample, t, context)
        half.eject()
    assert not torch.equal(out_half, expected) and not torch.equal(out_half, out_full)


def test_scale_changes_motion_and_one_is_the_original():
    unet = random_unet(SD15)
    sample, t, context = _inputs()
    mm = random_module("v3")
    outs = {}
    with torch.no_grad():
        for scale in (1.0, 1.3):
            model = inject(unet, mm, scale=scale)
            outs[scale] = model(sample, t, context)
            model.eject()
        default = inject(unet, mm)
        assert torch.equal(default(sample, t, context), outs[1.0])
    assert not torch.allclose(outs[1.3], outs[1.0])


def test_chunked_attention_gives_the_same_result(monkeypatch):
    unet, io = original_unet("v2")
    model = inject(unet, load_motion_module(FIXTURES / "tiny_unet_v2_full.safetensors", dtype=torch.float32))
    with torch.no_grad():
        whole = model(io["sample"], io["timestep"], io["encoder_hidden_states"])
        monkeypatch.setattr(module_impl, "MAX_ATTENTION_BATCH", 6)  # 3 sequences x 2 heads per SDPA call
        chunked = model(io["sample"], io["timestep"], io["encoder_hidden_states"])
    assert (whole - chunked).abs().max().item() <= 1e-6


def test_too_many_frames_names_the_limit_and_the_fix():
    model = inject(random_unet(SD15), random_module("v1"))
    with pytest.raises(FrameCountError, match="holds 24 frames; got 25.*context windows"):
        model(*_inputs(f=25))


def test_wrong_family_is_refused_naming_both():
    with pytest.raises(ConfigError, match="SDXL motion module but the model is SD1.5.*UNet has 4 levels"):
        inject(random_unet(SD15), random_module("sdxl-beta"))
    with pytest.raises(ConfigError, match="SD1.5 motion module but the model is SDXL.*UNet has 3 levels"):
        inject(random_unet(SDXL), random_module("v3"))


def test_wrong_width_and_double_injection_are_refused():
    unet = random_unet(SD15)
    with pytest.raises(ConfigError, match="has 64 channels but the UNet layer it follows has 32"):
        inject(unet, random_module("v3", channels=(64, 64, 64, 64)))
    model = inject(unet, random_module("v3"))
    with pytest.raises(ConfigError, match="already has a motion module"):
        inject(unet, random_module("v3"))
    model.eject()
    inject(unet, random_module("v3")).eject()


def test_host_called_directly_while_injected_stays_an_image_model():
    unet = random_unet(SD15)
    sample, t, context = _inputs()
    with torch.no_grad():
        expected = plain(unet, sample, t, context)
        model = inject(unet, random_module("v1"))
        assert torch.equal(plain(unet, sample, t, context), expected)
        model.eject()


def test_sdxl_layout_injection_runs():
    unet = random_unet(SDXL)
    mm = random_module("sdxl-beta")
    sample, t, context = _inputs(b=2)
    added = {"text_embeds": torch.randn(2, 32), "time_ids": torch.tensor([[16.0, 16, 0, 0, 16, 16]] * 2)}
    model = inject(unet, mm)
    assert len(model.patch._undo) == 15  # 3 down levels x 2 + 3 up levels x 3, no mid
    with torch.no_grad():
        out = model(sample, t, context, added_cond_kwargs=added)
        model.eject()
        b, c, f, h, w = sample.shape
        x = sample.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)
        base = unet(x, t.repeat_interleave(f), context.repeat_interleave(f, 0),
                    added_cond_kwargs={k: v.repeat_interleave(f, 0) for k, v in added.items()}).sample
    assert out.shape == sample.shape and torch.isfinite(out).all()
    assert not torch.allclose(out, base.reshape(b, f, c, h, w).permute(0, 2, 1, 3, 4))


def test_eject_is_idempotent_and_an_old_wrapper_cannot_unregister_a_new_one():
    unet = random_unet(SD15)
    first = inject(unet, random_module("v3"))
    first.eject()
    second = inject(unet, random_module("v3", seed=1))
    first.eject()  # a second eject of the old wrapper: nothing happens
    with pytest.raises(ConfigError, match="already has a motion module"):
        inject(unet, random_module("v3"))
    hooks = sum(len(m._forward_hooks) for m in unet.modules())
    assert hooks == 20
    with pytest.raises(ConfigError, match="was ejected"):
        first(*_inputs())
    second.eject()
    assert sum(len(m._forward_hooks) for m in unet.modules()) == 0
