"""The module against test vectors made by running the ORIGINAL AnimateDiff code (tests/fixtures/README.md)."""

import json

import pytest
import torch
from einops import rearrange
from safetensors import safe_open
from safetensors.torch import load_file

from conftest import FIXTURES
from motion_core import FrameCountError, MotionModuleConfig, VanillaTemporalModule, load_motion_module

SINGLE = [("tiny_mm_v1", "sd15", "v1"), ("tiny_mm_v2", "sd15", "v2"), ("tiny_mm_sdxl", "sdxl", "sdxl-beta"),
          ("tiny_mm_sparsectrl", "sd15", "v3")]


def _single(name, family, version):
    path = FIXTURES / f"{name}.safetensors"
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    config = MotionModuleConfig(
        family=family, version=version, channels=(int(meta["in_channels"]),),
        heads=int(meta["num_attention_heads"]), pe_length=int(meta["temporal_position_encoding_max_len"]),
        attention_blocks=len(json.loads(meta["attention_block_types"])))
    module = VanillaTemporalModule(config.channels[0], config)
    module.load_state_dict(load_file(str(path)), strict=True)
    return module.eval(), load_file(str(FIXTURES / f"{name}_io.safetensors")), config


def _to_our_layout(name, ref, b, f, h, w, cross_frame):
    """The original keeps tokens as ((b f), (h w), c) in SD1.5 modules; we keep ((b h w), f, c) throughout."""
    if name.endswith(".norm") or cross_frame or ref.ndim != 3:
        return ref
    return rearrange(ref, "(b f) (h w) c -> (b h w) f c", b=b, f=f, h=h, w=w)


@pytest.mark.parametrize("name,family,version", SINGLE)
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
def test_single_module_matches_original(name, family, version, dtype, tol):
    module, io, config = _single(name, family, version)
    module = module.to(dtype)
    x = io["input"].to(dtype)
    b, _, f, h, w = x.shape
    seen = {}
    wanted = [k[len("inter."):] for k in io if k.startswith("inter.")]
    assert len(wanted) >= 6  # norm, proj_in, attention block(s), ff, proj_out, ... (SDXL records fewer)
    hooks = [module.get_submodule(n).register_forward_hook(lambda m, i, o, n=n: seen.__setitem__(n, o))
             for n in wanted]
    with torch.no_grad():
        out = module(x)
    for hook in hooks:
        hook.remove()
    reference = io["output"] if dtype == torch.float32 else io["output_fp64"]
    assert (out - reference.to(dtype)).abs().max().item() <= tol
    for n in wanted:  # intermediates were recorded in fp32 only: compare them at the fp32 tolerance
        ref = _to_our_layout(n, io[f"inter.{n}"], b, f, h, w, config.cross_frame_norm).to(dtype)
        assert seen[n].shape == ref.shape, n
        assert (seen[n] - ref).abs().max().item() <= 1e-5, n


def test_v2_case_runs_32_frames():
    _, io, config = _single("tiny_mm_v2", "sd15", "v2")
    assert io["input"].shape[2] == 32 == config.pe_length


def test_more_frames_than_pe_fails_with_fix():
    module, io, _ = _single("tiny_mm_v1", "sd15", "v1")
    x = torch.randn(1, 64, 25, 2, 2)
    with pytest.raises(FrameCountError, match="holds 24 frames; got 25.*context windows"):
        module(x)


def test_every_module_of_the_original_unet():
    """Each of the 21 motion modules inside the original UNet3D forward: recorded input -> recorded output."""
    mm = load_motion_module(FIXTURES / "tiny_unet_v2_full.safetensors", dtype=torch.float32)
    assert mm.config.version == "v2" and mm.config.heads == 2
    io = load_file(str(FIXTURES / "tiny_unet_v2_io.safetensors"))
    paths = sorted({k[3:].split(":")[0] for k in io if k.startswith("mm.")})
    assert len(paths) == 21
    worst = 0.0
    with torch.no_grad():
        for path in paths:
            out = mm.get_submodule(path)(io[f"mm.{path}:in"])
            worst = max(worst, (out - io[f"mm.{path}:out"]).abs().max().item())
    assert worst <= 1e-5


@pytest.mark.parametrize("version", ["v1", "v2", "v3"])
def test_derived_published_files_are_what_the_recorder_wrote(version):
    """tiny_<v>.safetensors is derived from tiny_unet_<v>_full (tests/fixture_files.py): tensor for tensor and
    metadata what make_original_unet_vectors.py once wrote (its digest, recorded in MANIFEST.json)."""
    import json

    from safetensors import safe_open

    from fixture_files import tensor_digest, tiny_published
    entry = json.loads((FIXTURES / "MANIFEST.json").read_text())[f"tiny_{version}.safetensors"]
    path = tiny_published(version)
    assert tensor_digest(load_file(str(path))) == entry["tensor_sha256"]
    with safe_open(str(path), "pt") as f, safe_open(str(FIXTURES / f"tiny_unet_{version}_full.safetensors"), "pt") as g:
        assert f.metadata() == g.metadata()
