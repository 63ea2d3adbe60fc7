"""Data parallelism through `accelerate launch`: 2 CPU processes (gloo) with batch B make the same update as
1 process with batch 2B. The run starts from a module with random proj_out, so every parameter gets a gradient."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

pytest.importorskip("cv2", reason="training data is read with opencv (the train extra)")
pytest.importorskip("accelerate", reason="training runs through Accelerate (the train extra)")
pytest.importorskip("diffusers", reason="diffusers provides the host UNet2DConditionModel")

from train_helpers import compare_updates, tiny_unet, write_clips  # noqa: E402

from motion_core import save_motion_module  # noqa: E402
from motion_core.train import new_motion_module  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).parent / "train_worker.py"


def accelerate_launch() -> list[str]:
    script = Path(sys.executable).parent / "accelerate"
    return [str(script), "launch"] if script.exists() else [sys.executable, "-m", "accelerate.commands.launch"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_batch_b_equal_one_process_batch_2b(tmp_path):
    data = write_clips(tmp_path / "clips", corrupt=False)
    torch.manual_seed(1)
    start = new_motion_module(tiny_unet(), heads=2)
    with torch.no_grad():
        for name, p in start.named_parameters():
            if ".proj_out." in name:
                p.normal_(std=0.02)
    start_file = save_motion_module(start, tmp_path / "start.safetensors")
    common = ["train", "--data", str(data), "--base", "fake", "--motion-module", str(start_file), "--frames", "8",
              "--stride", "1", "--size", "16", "--steps", "1", "--lr", "1e-4", "--mixed-precision", "no"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    one = subprocess.run([sys.executable, str(WORKER), *common, "--out", str(tmp_path / "one"), "--batch", "2"],
                         env={**env, "MC_TEST_GRADS": str(tmp_path / "one.grads")}, capture_output=True, text=True,
                         cwd=ROOT, timeout=300)
    assert one.returncode == 0, one.stderr
    # on a machine without GPUs, accelerate's torchrun launcher + ACCELERATE_USE_CPU gives MULTI_CPU over gloo
    two = subprocess.run([*accelerate_launch(), "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                          "--num_cpu_threads_per_process", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                          "--main_process_port", str(free_port()), str(WORKER), *common,
                          "--out", str(tmp_path / "two"), "--batch", "1"],
                         env={**env, "ACCELERATE_USE_CPU": "true", "MC_TEST_GRADS": str(tmp_path / "two.grads")},
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert two.returncode == 0, two.stderr
    assert "MULTI_CPU" in two.stdout and "processes=2" in two.stdout  # really two processes (printed by the worker)

    names = [n for n, _ in start.named_parameters()]
    grad_diff, weight_diff, left_out, raw, moved = compare_updates(
        load_file(str(tmp_path / "one.grads")), load_file(str(tmp_path / "two.grads")),
        load_file(str(tmp_path / "one" / "motion_module.safetensors")),
        load_file(str(tmp_path / "two" / "motion_module.safetensors")), start.state_dict(), names)
    print(f"2 processes x B vs 1 x 2B: max grad diff {grad_diff:.2e}, max weight diff {weight_diff:.2e} "
          f"(raw {raw:.2e}, {left_out} elements with |grad| <= 1e-6 left out), max update {moved:.2e}")
    assert grad_diff < 1e-6 and weight_diff < 1e-6 and moved > 5e-5


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only launch without ACCELERATE_USE_CPU")
def test_a_launch_accelerate_does_not_see_fails_instead_of_training_n_times(tmp_path):
    data = write_clips(tmp_path / "clips", corrupt=False)
    env = {k: v for k, v in os.environ.items() if k != "ACCELERATE_USE_CPU"}
    p = subprocess.run([*accelerate_launch(), "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                        "--num_cpu_threads_per_process", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                        "--main_process_port", str(free_port()), str(WORKER), "train", "--data", str(data),
                        "--base", "fake", "--out", str(tmp_path / "out"), "--frames", "8", "--size", "16",
                        "--steps", "1"], env={**env, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                       cwd=ROOT, timeout=300)
    assert p.returncode != 0 and "2 processes were launched but Accelerate sees 1" in p.stderr
    assert "ACCELERATE_USE_CPU=true" in p.stderr and not (tmp_path / "out" / "resume.pt").exists()
