"""Round trips between layouts are bit-exact, and diffusers' own MotionAdapter takes what we write."""

import pytest
import torch
from safetensors.torch import load_file, save_file

from conftest import FIXTURES, assert_same_tensors, random_module
from fixture_files import tiny_published
from motion_core import load_motion_module, save_motion_module
from motion_core.cli import main
from motion_core.formats import adapter_config, from_original, to_original

diffusers = pytest.importorskip("diffusers", reason="diffusers is the reference for the MotionAdapter layout")


def _adapter(config):
    kw = {k: v for k, v in adapter_config(config).items() if not k.startswith("_")}
    return diffusers.MotionAdapter(**kw)


@pytest.mark.parametrize("name", ["tiny_v1", "tiny_v2", "tiny_v3"])
def test_original_diffusers_original_is_bit_exact(name):
    sd = load_file(str(tiny_published(name[-2:])))
    there = from_original(sd, "diffusers")
    assert not any(".temporal_transformer." in k for k in there)
    assert_same_tensors(to_original(there, "diffusers"), sd)


@pytest.mark.parametrize("version", ["v2", "v3", "sdxl-beta"])
def test_diffusers_original_diffusers_is_bit_exact_from_a_real_motion_adapter(version):
    module = random_module(version)
    adapter = _adapter(module.config)
    torch.manual_seed(3)
    with torch.no_grad():
        for p in adapter.parameters():
            p.normal_()
    sd = adapter.state_dict()  # diffusers' own keys, with diffusers' own computed pos_embed.pe
    back = from_original(to_original(sd, "diffusers"), "diffusers")
    assert_same_tensors(back, sd)
    # and our module accepts it strict, its pe equal to the one diffusers computed
    loaded = load_motion_module(sd, heads=2)
    assert loaded.info.format == "diffusers"
    assert_same_tensors(from_original(loaded.state_dict(), "diffusers"), sd)


@pytest.mark.parametrize("name", ["tiny_v1", "tiny_v2", "tiny_v3"])
def test_converted_files_load_in_diffusers_motion_adapter(tmp_path, name):
    assert main(["convert", str(tiny_published(name[-2:])), str(tmp_path / "adapter"),
                 "--layout", "diffusers"]) == 0
    mm = load_motion_module(tiny_published(name[-2:]))
    adapter = _adapter(mm.config)
    result = adapter.load_state_dict(load_file(str(tmp_path / "adapter" / "diffusion_pytorch_model.safetensors")),
                                     strict=False)
    assert result.missing_keys == [] and result.unexpected_keys == []  # not even the pe buffers are missing
    loaded = diffusers.MotionAdapter.from_pretrained(str(tmp_path / "adapter"),  # the folder as diffusers reads it
                                                     torch_dtype=next(mm.parameters()).dtype)  # fp16, as stored
    ours = from_original(mm.state_dict(), "diffusers")
    assert_same_tensors(loaded.state_dict(), ours)


def test_file_round_trips_through_the_cli_keep_bits_and_dtype(tmp_path):
    sd = {k: v.half() for k, v in load_file(str(tiny_published("v2"))).items()}
    save_file(sd, tmp_path / "v2_fp16.safetensors")
    assert main(["convert", str(tmp_path / "v2_fp16.safetensors"), str(tmp_path / "d.safetensors"),
                 "--layout", "diffusers", "--heads", "2"]) == 0
    assert main(["convert", str(tmp_path / "d.safetensors"), str(tmp_path / "o.safetensors")]) == 0
    assert_same_tensors(load_file(str(tmp_path / "o.safetensors")), sd)
    assert main(["convert", str(tmp_path / "o.safetensors"), str(tmp_path / "d2.safetensors"), "--layout",
                 "diffusers"]) == 0
    assert_same_tensors(load_file(str(tmp_path / "d2.safetensors")), load_file(str(tmp_path / "d.safetensors")))


def test_saving_is_atomic_and_leaves_no_temp_files(tmp_path, monkeypatch):
    module = random_module("v3")
    target = tmp_path / "mm.safetensors"
    save_motion_module(module, target)
    before = target.read_bytes()

    import motion_core.formats.load as load_mod

    def crash(sd, path, metadata=None):
        with open(path, "wb") as f:
            f.write(b"partial")
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(load_mod, "save_file", crash)
    with pytest.raises(KeyboardInterrupt):
        save_motion_module(random_module("v3", seed=9), target)
    assert target.read_bytes() == before  # the last good file is intact
    assert [p.name for p in tmp_path.iterdir()] == ["mm.safetensors"]
