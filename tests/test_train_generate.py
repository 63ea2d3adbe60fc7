"""Train, then animate: `python -m motion_core train` on a real diffusers base (tiny, with its VAE and CLIP text
encoder, loaded by motion_core.base) writes a module that `generate` samples with right away."""

import subprocess
import sys

import pytest

from train_helpers import write_clips

pytest.importorskip("diffusers", reason="the base model loads through diffusers")
pytest.importorskip("transformers", reason="the base model's text encoder comes from transformers")
pytest.importorskip("accelerate", reason="training runs through Accelerate")
pytest.importorskip("cv2", reason="training reads videos with opencv")


def run(*args):
    p = subprocess.run([sys.executable, "-m", "motion_core", *map(str, args)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-3000:]
    return p


def test_train_on_a_diffusers_base_then_generate(tmp_path):
    from motion_core import load_motion_module
    from motion_core.media import read_frames
    run("create-base", tmp_path / "base", "--seed", 4)
    data = write_clips(tmp_path / "data", frames=12, size=40, corrupt=False)
    run("train", "--data", data, "--base", tmp_path / "base", "--out", tmp_path / "out", "--frames", 8,
        "--stride", 1, "--size", 64, "--steps", 4, "--batch", 2, "--save-every", 2)
    trained = load_motion_module(tmp_path / "out" / "motion_module.safetensors")
    assert trained.config.version == "v3" and trained.config.channels == (32, 64, 64, 64)
    assert any(p.abs().sum() > 0 for n, p in trained.named_parameters() if ".proj_out." in n)  # it learned something
    run("generate", "--model", tmp_path / "base", "--motion-module", tmp_path / "out" / "motion_module.safetensors",
        "--prompt", "a shape moving", "--frames", 8, "--steps", 2, "--size", "64x64", "--out", tmp_path / "anim",
        "--quiet")
    assert read_frames(tmp_path / "anim").shape == (8, 64, 64, 3)
