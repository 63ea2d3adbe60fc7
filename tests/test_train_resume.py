"""`python -m motion_core train` in subprocesses (tests/train_worker.py: the CLI with a stand-in base model):
SIGKILL mid-run then --resume gives bit-identical weights; a kill inside a checkpoint write leaves the previous
checkpoint loadable; bad input exits 2 with the fix."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

pytest.importorskip("cv2", reason="training data is read with opencv (the train extra)")
pytest.importorskip("accelerate", reason="training runs through Accelerate (the train extra)")
pytest.importorskip("diffusers", reason="diffusers provides the host UNet2DConditionModel")

from train_helpers import tiny_unet, write_clips  # noqa: E402

from motion_core import load_motion_module, save_motion_module  # noqa: E402
from motion_core.errors import ConfigError  # noqa: E402
from motion_core.train import TrainConfig, new_motion_module, read_resume  # noqa: E402
from motion_core.train.checkpoint import check_resumable  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).parent / "train_worker.py"
STEPS = 8
ARGS = ["--frames", "8", "--stride", "1", "--size", "16", "--batch", "1", "--lr", "1e-3", "--save-every", "2"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_clips(tmp_path_factory.mktemp("clips"), corrupt=False)


def worker(data, out, *extra, env=None, steps=STEPS, wait=True):
    cmd = [sys.executable, str(WORKER), "train", "--data", str(data), "--base", "fake", "--out", str(out),
           "--steps", str(steps), *ARGS, *extra]
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full_env, cwd=ROOT)
    if not wait:
        return p
    stdout, stderr = p.communicate(timeout=300)
    p.stdout_text, p.stderr_text = stdout, stderr
    return p


@pytest.fixture(scope="module")
def straight(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("straight")
    p = worker(data, out)
    assert p.returncode == 0, p.stderr_text
    return out


def same_run(a: Path, b: Path) -> None:
    wa, wb = load_file(str(a / "motion_module.safetensors")), load_file(str(b / "motion_module.safetensors"))
    assert sorted(wa) == sorted(wb) and all(torch.equal(wa[k], wb[k]) for k in wa)  # bit-identical
    la = [(r["step"], r["loss"]) for r in map(json.loads, (a / "loss.jsonl").read_text().splitlines())]
    lb = [(r["step"], r["loss"]) for r in map(json.loads, (b / "loss.jsonl").read_text().splitlines())]
    assert la == lb and len(la) == STEPS


def test_sigkill_mid_run_then_resume_is_bit_identical(data, straight, tmp_path):
    p = worker(data, tmp_path, env={"MC_TEST_SLOW": "0.3"}, wait=False)
    deadline = time.time() + 120
    while not (tmp_path / "resume.pt").exists() and time.time() < deadline and p.poll() is None:
        time.sleep(0.02)
    p.send_signal(signal.SIGKILL)
    p.communicate()
    assert p.returncode == -signal.SIGKILL  # killed, not finished
    killed_at = read_resume(tmp_path / "resume.pt")["step"]
    assert 2 <= killed_at < STEPS
    p = worker(data, tmp_path, "--resume")
    assert p.returncode == 0, p.stderr_text
    same_run(straight, tmp_path)


def test_a_kill_inside_a_checkpoint_write_leaves_the_previous_one(data, straight, tmp_path):
    p = worker(data, tmp_path, env={"MC_TEST_KILL_SAVE": "2"})  # the 2nd resume.pt write (step 4) dies half-way
    assert p.returncode == -signal.SIGKILL
    partial = list(tmp_path.glob(".resume.pt.*.tmp"))
    assert len(partial) == 1 and partial[0].stat().st_size > 0  # the half-written temporary file
    assert read_resume(tmp_path / "resume.pt")["step"] == 2  # the previous checkpoint, intact
    load_motion_module(tmp_path / "motion_module.safetensors")  # the weights file loads (strict)
    p = worker(data, tmp_path, "--resume")
    assert p.returncode == 0, p.stderr_text
    same_run(straight, tmp_path)


def test_resume_with_other_settings_and_bad_input_exit_2(data, straight, tmp_path):
    p = worker(data, straight, "--resume", "--seed", "3", steps=STEPS + 2)
    assert p.returncode == 2 and "seed=0 (now 3)" in p.stderr_text and "Traceback" not in p.stderr_text
    p = worker(tmp_path / "missing", tmp_path / "out")
    assert p.returncode == 2 and "does not exist" in p.stderr_text
    p = worker(data, tmp_path / "out", "--lora", "4")
    assert p.returncode == 2 and "add --motion-module" in p.stderr_text
    p = worker(data, tmp_path / "out", "--size", "30")
    assert p.returncode == 2 and "size=30 must be a multiple of 8" in p.stderr_text
    save_motion_module(new_motion_module(tiny_unet(), heads=2), tmp_path / "mm32.safetensors")  # 32-frame pe
    p = worker(data, tmp_path / "out", "--frames", "40", "--motion-module", str(tmp_path / "mm32.safetensors"))
    assert p.returncode == 2 and "holds 32 frames; got 40" in p.stderr_text


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains_an_fp32_module(data, tmp_path, precision):
    """torch's autocast over the frozen model in its own process (both also run on a CPU); fp16 with loss scaling,
    whose scale is resume state. The module and its optimizer state stay fp32."""
    p = worker(data, tmp_path, "--mixed-precision", precision, steps=2)
    assert p.returncode == 0, p.stderr_text
    losses = [json.loads(line)["loss"] for line in (tmp_path / "loss.jsonl").read_text().splitlines()]
    assert len(losses) == 2 and all(0 < loss < 10 for loss in losses)
    weights = load_file(str(tmp_path / "motion_module.safetensors"))
    assert all(v.dtype == torch.float32 for v in weights.values())
    assert any(v.any() for k, v in weights.items() if ".proj_out." in k)  # it trained
    state = read_resume(tmp_path / "resume.pt")
    assert state["optimizer"]["state"][0]["exp_avg"].dtype == torch.float32
    assert (state["scaler"]["scale"] > 1) if precision == "fp16" else state["scaler"] == {}


def test_a_cosine_run_resumes_only_with_its_steps():
    """The cosine decay is laid over the whole run: resumed with other --steps it would make other updates."""
    state = {"config": TrainConfig(steps=10, lr_schedule="cosine").to_json(), "world_size": 1, "step": 5}
    check_resumable(state, TrainConfig(steps=10, lr_schedule="cosine"), 1, Path("resume.pt"))
    with pytest.raises(ConfigError, match=r"steps=10 with the cosine schedule \(now 20\)"):
        check_resumable(state, TrainConfig(steps=20, lr_schedule="cosine"), 1, Path("resume.pt"))
    with pytest.raises(ConfigError, match=r"lr_schedule='cosine' \(now 'constant'\)"):
        check_resumable(state, TrainConfig(steps=10), 1, Path("resume.pt"))
    constant = {**state, "config": TrainConfig(steps=10).to_json()}
    check_resumable(constant, TrainConfig(steps=20), 1, Path("resume.pt"))  # a constant run may go on longer
