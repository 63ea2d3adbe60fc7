"""Config inference from state dicts, and the full-size layouts (keys, shapes, parameter counts)."""

import json
import math

import pytest
import torch

from conftest import FIXTURES, random_module, tiny_config
from fixture_files import tiny_published
from motion_core import ConfigError, MotionModule, MotionModuleConfig, infer_config, load_motion_module, module_paths


@pytest.mark.parametrize("name,version,mid,pe", [("tiny_v1", "v1", False, 24), ("tiny_v2", "v2", True, 32),
                                                 ("tiny_v3", "v3", False, 32)])
def test_tiny_sets_load_strict_and_are_recognised(name, version, mid, pe):
    mm = load_motion_module(tiny_published(version))
    c = mm.config
    assert (c.family, c.version, c.mid_block, c.pe_length) == ("sd15", version, mid, pe)
    assert c.channels == (32, 32, 32, 32) and c.layers_per_block == 2
    assert c.heads == 2  # read from the file's recorded original config
    assert len(mm.state_dict()) == {"tiny_v1": 560, "tiny_v2": 588, "tiny_v3": 560}[name]


def _shapes(module: MotionModule) -> dict:
    return {k: list(v.shape) for k, v in module.state_dict().items()}


@pytest.mark.parametrize("keys_file,version,params", [("full_v2_keys.json", "v2", 453_209_280),
                                                      ("full_sdxl_keys.json", "sdxl-beta", 236_779_200)])
def test_full_size_layouts_match_the_published_keys(keys_file, version, params):
    expected = json.loads((FIXTURES / keys_file).read_text())
    family = "sdxl" if version == "sdxl-beta" else "sd15"
    channels = (320, 640, 1280) if family == "sdxl" else (320, 640, 1280, 1280)
    config = MotionModuleConfig(family=family, version=version, channels=channels, mid_block=version == "v2")
    torch.manual_seed(0)
    module = MotionModule(config)  # real, random weights with the real shapes (1.8 GB / 0.9 GB fp32)
    shapes = _shapes(module)
    assert shapes == expected
    assert module.num_parameters() == params
    assert sum(math.prod(s) for s in expected.values()) - params == sum(
        b.numel() for b in module.buffers())  # the difference is exactly the pe buffers
    inferred, notes = infer_config(module.state_dict())
    assert inferred == config and notes == []


def test_inference_of_each_version():
    for version in ("v1", "v2", "v3", "sdxl-beta"):
        sd = random_module(version).state_dict()
        config, notes = infer_config(sd, heads=2)
        assert config == tiny_config(version) and notes == []


def test_no_pe_without_mid_block_is_ambiguous_and_says_so():
    sd = {k: v for k, v in random_module("v3").state_dict().items() if not k.endswith(".pe")}
    config, notes = infer_config(sd, heads=2)
    assert config.version == "v3" and config.pe_length == 32
    assert any("assumed v3" in n for n in notes) and any("assumed 32" in n for n in notes)
    assert infer_config(sd, heads=2, version="v1")[0].pe_length == 24


def test_no_pe_with_mid_block_is_animatelcm_with_64_frames():
    sd = {k: v for k, v in random_module("v2").state_dict().items() if not k.endswith(".pe")}
    config, notes = infer_config(sd, heads=2)
    assert config.version == "animatelcm" and config.pe_length == 64
    assert any("AnimateLCM" in n for n in notes)


def test_sparsectrl_single_attention_block_is_inferred():
    config = tiny_config("v3", attention_blocks=1)
    sd = MotionModule(config).state_dict()
    assert infer_config(sd, heads=2)[0].attention_blocks == 1


def test_module_paths_follow_the_original_registration_order():
    paths = module_paths(tiny_config("v2"))
    assert len(paths) == 21 and paths[0] == "down_blocks.0.motion_modules.0" and paths[-1] == "mid_block.motion_modules.0"


@pytest.mark.parametrize("kwargs,match", [
    (dict(channels=(48, 64)), "48 is not a positive multiple of 32"),
    (dict(channels=()), "channels is empty"),
    (dict(heads=3), "not divisible by heads=3"),
    (dict(version="v9"), "version 'v9'"),
    (dict(family="sd3"), "family 'sd3'"),
    (dict(pe_length=0), "pe_length=0"),
])
def test_impossible_configs_fail_early(kwargs, match):
    base = dict(family="sd15", version="v3", channels=(32, 64), heads=2)
    base.update(kwargs)
    with pytest.raises(ConfigError, match=match):
        MotionModuleConfig(**base)


def test_config_json_round_trip():
    c = tiny_config("sdxl-beta")
    assert MotionModuleConfig.from_json(c.to_json()) == c
    assert c.cross_frame_norm and not tiny_config("v2").cross_frame_norm
    assert tiny_config("v1").host_cross_frame_norm and not tiny_config("v3").host_cross_frame_norm


def test_each_version_has_the_beta_schedule_it_was_trained_with():
    from motion_core.config import VERSIONS
    from motion_core.schedule import MODULE_SCHEDULES, module_schedule
    assert set(MODULE_SCHEDULES) == set(VERSIONS)
    assert module_schedule("v3") == module_schedule("v2") == module_schedule("v1") == ("sqrt_linear", 0.012)
    assert module_schedule("sdxl-beta") == ("linear", 0.020) and module_schedule("hotshot-xl") == ("linear", 0.012)
    assert module_schedule("animatelcm") == ("lcm", 0.012)
    with pytest.raises(ConfigError, match="v9"):
        module_schedule("v9")
