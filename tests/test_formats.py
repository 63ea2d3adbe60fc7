"""Every published format is told apart automatically and loads strict into the same module."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from conftest import FIXTURES, assert_same_tensors, random_module
from motion_core import describe, load_motion_module
from motion_core.formats import from_original


def _same_function(a, b, frames=8):
    x = torch.randn(1, a.config.channels[0], frames, 3, 2, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(a.down_blocks[0].motion_modules[0](x), b.down_blocks[0].motion_modules[0](x))


@pytest.fixture
def v2():
    return random_module("v2")


def test_safetensors_original(tmp_path, v2):
    save_file(v2.state_dict(), tmp_path / "mm.safetensors")
    mm = load_motion_module(tmp_path / "mm.safetensors", heads=2)
    assert (mm.info.format, mm.info.container, mm.config.version) == ("original", "safetensors", "v2")
    assert_same_tensors(mm.state_dict(), v2.state_dict())


@pytest.mark.parametrize("suffix", [".ckpt", ".pt", ".pth"])
@pytest.mark.parametrize("wrap", ["flat", "state_dict", "animatediff_config"])
def test_pickle_containers(tmp_path, v2, suffix, wrap):
    sd = v2.state_dict()
    obj = {"flat": sd, "state_dict": {"state_dict": sd, "global_step": 10},
           "animatediff_config": {**sd, "animatediff_config": ""}}[wrap]
    torch.save(obj, tmp_path / f"mm{suffix}")
    mm = load_motion_module(tmp_path / f"mm{suffix}", heads=2)
    assert (mm.info.container, mm.config.version) == ("pickle", "v2")
    assert_same_tensors(mm.state_dict(), sd)


def test_legacy_pickle_format(tmp_path, v2):
    torch.save(v2.state_dict(), tmp_path / "old.ckpt", _use_new_zipfile_serialization=False)
    assert_same_tensors(load_motion_module(tmp_path / "old.ckpt", heads=2).state_dict(), v2.state_dict())


def test_container_is_sniffed_not_trusted_from_suffix(tmp_path, v2):
    save_file(v2.state_dict(), tmp_path / "really_safetensors.ckpt")
    assert load_motion_module(tmp_path / "really_safetensors.ckpt", heads=2).info.container == "safetensors"


def test_whole_unet_training_checkpoint_with_module_prefix(tmp_path):
    full = load_file(str(FIXTURES / "tiny_unet_v2_full.safetensors"))
    torch.save({"epoch": 1, "global_step": 100, "state_dict": {f"module.{k}": v for k, v in full.items()}},
               tmp_path / "checkpoint.ckpt")
    mm = load_motion_module(tmp_path / "checkpoint.ckpt", heads=2)
    assert mm.config.version == "v2" and mm.config.pe_length == 32
    assert any("whole-UNet" in n for n in mm.info.notes) and any("'module.'" in n for n in mm.info.notes)
    ref = load_motion_module(FIXTURES / "tiny_unet_v2_full.safetensors")
    assert_same_tensors(mm.state_dict(), ref.state_dict())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_half_precision_files(tmp_path, v2, dtype):
    sd = {k: v.to(dtype) for k, v in v2.state_dict().items()}
    save_file(sd, tmp_path / "mm.safetensors")
    mm = load_motion_module(tmp_path / "mm.safetensors", heads=2)
    assert mm.info.dtype == str(dtype).removeprefix("torch.")
    assert next(mm.parameters()).dtype == dtype
    assert_same_tensors(mm.state_dict(), sd)
    up = load_motion_module(tmp_path / "mm.safetensors", heads=2, dtype=torch.float32)
    assert next(up.parameters()).dtype == torch.float32


def test_diffusers_folder_and_single_file(tmp_path, v2):
    from motion_core import save_motion_module
    folder = save_motion_module(v2, tmp_path / "adapter", layout="diffusers").parent
    config = json.loads((folder / "config.json").read_text())
    assert config["_class_name"] == "MotionAdapter" and config["motion_num_attention_heads"] == 2
    mm = load_motion_module(folder)  # heads come from config.json
    assert (mm.info.format, mm.info.container, mm.config.heads) == ("diffusers", "folder", 2)
    assert_same_tensors(mm.state_dict(), v2.state_dict())
    save_file(from_original(v2.state_dict(), "diffusers"), tmp_path / "adapter.safetensors")
    single = load_motion_module(tmp_path / "adapter.safetensors", heads=2)
    assert single.info.format == "diffusers"
    assert_same_tensors(single.state_dict(), v2.state_dict())


def test_hotshot_xl(tmp_path):
    hs = random_module("hotshot-xl")
    sd = from_original(hs.state_dict(), "hotshot")
    # key names as Hotshot-XL's own TransformerTemporal writes them
    for key in ("down_blocks.0.temporal_attentions.0.norm.weight",
                "down_blocks.0.temporal_attentions.1.transformer_blocks.0.attention_blocks.0.pos_encoder.positional_encoding",
                "up_blocks.2.temporal_attentions.2.transformer_blocks.0.ff_norm.bias",
                "up_blocks.0.temporal_attentions.0.proj_out.weight"):
        assert key in sd, key
    assert sd["down_blocks.0.temporal_attentions.0.transformer_blocks.0.attention_blocks.0.pos_encoder."
              "positional_encoding"].shape == (1, 24, 32)
    save_file(sd, tmp_path / "hsxl.safetensors")
    mm = load_motion_module(tmp_path / "hsxl.safetensors", heads=2)
    assert (mm.info.format, mm.config.family, mm.config.version, mm.config.pe_length) == \
        ("hotshot", "sdxl", "hotshot-xl", 24)
    assert not mm.config.cross_frame_norm  # HotShot normalises per frame, unlike AnimateDiff's SDXL beta
    assert_same_tensors(mm.state_dict(), hs.state_dict())
    # the same weights re-saved in AnimateDiff's key names (as AnimateDiff-Evolved keeps them) are still HotShot
    assert load_motion_module(hs.state_dict(), heads=2).config.version == "hotshot-xl"


def test_animatelcm_has_no_pe_and_gets_a_computed_one(tmp_path):
    lcm = random_module("animatelcm")
    save_file({k: v for k, v in lcm.state_dict().items() if not k.endswith(".pe")}, tmp_path / "lcm.safetensors")
    mm = load_motion_module(tmp_path / "lcm.safetensors", heads=2)
    assert mm.config.version == "animatelcm" and mm.config.pe_length == 64
    assert any("assumed 64" in n for n in mm.info.notes)
    assert_same_tensors(mm.state_dict(), lcm.state_dict())  # the computed pe is bit-identical to a stored one
    assert any("assumed 64" in n for n in describe(tmp_path / "lcm.safetensors")["notes"])


def test_sdxl_beta(tmp_path):
    xl = random_module("sdxl-beta")
    save_file(xl.state_dict(), tmp_path / "mm_sdxl_v10_beta.safetensors")
    mm = load_motion_module(tmp_path / "mm_sdxl_v10_beta.safetensors", heads=2)
    assert (mm.config.family, mm.config.version, mm.config.cross_frame_norm) == ("sdxl", "sdxl-beta", True)
    _same_function(mm, xl)


def test_a_callers_state_dict_is_copied_not_shared(v2):
    sd = v2.state_dict()
    before = {k: t.clone() for k, t in sd.items()}
    mm = load_motion_module(sd, heads=2)
    key = "down_blocks.0.motion_modules.0.temporal_transformer.proj_in.weight"
    assert mm.state_dict()[key].data_ptr() != sd[key].data_ptr()
    with torch.no_grad():
        for p in mm.parameters():
            p.mul_(2)  # an optimiser step, a user's edit: never reaches the caller's tensors
    assert_same_tensors(sd, before)
    _same_function(load_motion_module(sd, heads=2), v2)


def test_our_files_carry_their_config(tmp_path, v2):
    from motion_core import save_motion_module
    save_motion_module(v2, tmp_path / "mm.safetensors")
    assert load_motion_module(tmp_path / "mm.safetensors").config == v2.config  # heads=2 without being told


def test_whole_diffusers_unet_motion_model_keeps_only_motion_weights(v2):
    sd = from_original(v2.state_dict(), "diffusers")
    sd.update({"conv_in.weight": torch.zeros(32, 4, 3, 3), "down_blocks.0.resnets.0.conv1.weight": torch.zeros(1)})
    mm = load_motion_module(sd, heads=2)
    assert mm.info.format == "diffusers" and any("kept its 567 motion-module tensors" in n for n in mm.info.notes)
    assert_same_tensors(mm.state_dict(), v2.state_dict())


def test_mixed_dtype_files_load_as_float32_with_a_note(v2):
    sd = {k: v.half() if k.endswith("proj_in.weight") else v for k, v in v2.state_dict().items()}
    mm = load_motion_module(sd, heads=2)
    assert mm.info.dtype == "mixed" and any("mixes floating dtypes" in n for n in mm.info.notes)
    assert all(p.dtype == torch.float32 for p in mm.parameters())
    _same_function(mm, load_motion_module({k: v.float() for k, v in sd.items()}, heads=2))


def test_diffusers_files_say_v1_and_v3_look_alike(tmp_path):
    v3 = random_module("v3")
    mm = load_motion_module(from_original(v3.state_dict(), "diffusers"), heads=2)
    assert mm.config.version == "v3" and any("do not tell v1 from v3" in n for n in mm.info.notes)
    assert load_motion_module(from_original(v3.state_dict(), "diffusers"), heads=2, version="v1",
                              pe_length=32).config.version == "v1"


def test_config_json_without_heads_uses_the_default(tmp_path):
    from motion_core import save_motion_module
    module = random_module("v3", heads=8)
    folder = save_motion_module(module, tmp_path / "adapter", layout="diffusers").parent
    config = json.loads((folder / "config.json").read_text())
    config["motion_num_attention_heads"] = None
    (folder / "config.json").write_text(json.dumps(config))
    assert load_motion_module(folder).config.heads == 8


def test_saved_files_follow_the_umask_and_keep_an_existing_mode(tmp_path):
    import os
    import stat
    from motion_core import save_motion_module
    old = os.umask(0o022)
    try:
        path = save_motion_module(random_module("v3"), tmp_path / "mm.safetensors")
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
        os.chmod(path, 0o640)
        save_motion_module(random_module("v3", seed=1), path)
        assert stat.S_IMODE(path.stat().st_mode) == 0o640
    finally:
        os.umask(old)
