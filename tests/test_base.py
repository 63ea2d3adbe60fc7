"""Image models for the standalone pipeline: diffusers folders and single-file (ldm layout) checkpoints, SD1.5 and
SDXL; what cannot be read fails with a typed error that names the fix."""

import os
import subprocess
import sys

import pytest
import torch

from conftest import FIXTURES
from fixture_files import tiny_published
from ldm_checkpoint import write_ldm_checkpoint

pytest.importorskip("diffusers", reason="image models load through diffusers")
pytest.importorskip("transformers", reason="the text encoder comes from transformers")

from motion_core import ConfigError, MotionModule, MotionModuleConfig, UnsafeCheckpointError  # noqa: E402
from motion_core.base import load_base  # noqa: E402
from motion_core.pipeline import generate  # noqa: E402
from motion_core.tiny import build_tiny_base  # noqa: E402


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return build_tiny_base(tmp_path_factory.mktemp("sd15"), seed=2)


@pytest.fixture(scope="module")
def single_file(folder, tmp_path_factory):
    path = tmp_path_factory.mktemp("single") / "model.safetensors"
    write_ldm_checkpoint(load_base(folder), path)
    return path


def random_module(**config):
    torch.manual_seed(0)
    mm = MotionModule(MotionModuleConfig(**config))
    with torch.no_grad():
        for p in mm.parameters():
            p.normal_(std=0.05)
    return mm


def test_folder_loads_frozen(folder):
    base = load_base(folder)
    assert base.family == "sd15" and base.source == str(folder)
    for module in (base.unet, base.vae, base.text_encoder):
        assert not module.training and not any(p.requires_grad for p in module.parameters())
    embeds, pooled = base.encode_prompt(["a cat", "a dog"])
    assert embeds.shape == (2, 77, 32) and pooled is None


def test_single_file_equals_its_folder(folder, single_file):
    a, b = load_base(folder), load_base(single_file, config=folder)
    for name in ("unet", "vae", "text_encoder"):
        sa, sb = getattr(a, name).state_dict(), getattr(b, name).state_dict()
        assert set(sa) == set(sb) and all(torch.equal(sa[k], sb[k]) for k in sa), name
    mm = random_module(family="sd15", version="v3", channels=(32, 64, 64, 64), heads=2)
    run = dict(frames=8, steps=2, width=64, height=64, progress=False)
    assert torch.equal(generate(a, mm, "a cat", **run).frames, generate(b, mm, "a cat", **run).frames)


def test_single_file_without_configs_names_the_fix(single_file, tmp_path):
    env = dict(os.environ, HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="1")
    p = subprocess.run([sys.executable, "-m", "motion_core", "generate", "--model", str(single_file),
                        "--motion-module", str(tiny_published("v2")), "--prompt", "a cat",
                        "--out", str(tmp_path / "x.gif")], capture_output=True, text=True, env=env)
    assert p.returncode == 2, p.stderr[-2000:]
    assert "--config DIR" in p.stderr and "sd15" in p.stderr


def test_bad_models_are_refused(folder, single_file, tmp_path):
    with pytest.raises(ConfigError, match="not a single-file SD1.5 or SDXL checkpoint"):
        load_base(tiny_published("v2"), config=folder)  # a motion module
    with pytest.raises(ConfigError, match="not a diffusers model folder"):
        load_base(tmp_path)
    with pytest.raises(ConfigError, match="no model_index.json"):
        load_base(single_file, config=tmp_path)

    class Payload:
        def __reduce__(self):
            return (open, (str(tmp_path / "pwned"), "w"))
    torch.save({"state_dict": {"model.diffusion_model.x": torch.zeros(1)}, "p": Payload()}, tmp_path / "evil.ckpt")
    with pytest.raises(UnsafeCheckpointError):
        load_base(tmp_path / "evil.ckpt", config=folder)
    assert not (tmp_path / "pwned").exists()


def test_sdxl_folder_generates(tmp_path):
    base = load_base(build_tiny_base(tmp_path / "sdxl", "sdxl", seed=3))
    assert base.family == "sdxl"
    embeds, pooled = base.encode_prompt(["a cat"])
    assert embeds.shape == (1, 77, 64) and pooled["text_embeds"].shape == (1, 32)
    mm = random_module(family="sdxl", version="sdxl-beta", channels=(32, 64, 64), heads=2)
    out = generate(base, mm, "0: a cat\n5: a dog", frames=6, steps=2, width=64, height=64, progress=False)
    assert out.frames.shape == (6, 64, 64, 3) and out.settings["scheduler"] == "EulerDiscreteScheduler"
    with pytest.raises(ConfigError, match="SD1.5 motion module but the model is SDXL"):
        generate(base, random_module(family="sd15", version="v3", channels=(32, 64, 64, 64), heads=2), "a cat",
                 frames=4, steps=1, width=64, height=64, progress=False)
