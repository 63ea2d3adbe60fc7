"""bench/gpu.sh, the command prepared for a GPU machine, runs end to end on the CPU at tiny shapes (every section of
bench/gpu.py), so it cannot rot between the sessions that have a GPU (issues 20, 31)."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("diffusers", reason="bench/gpu.py compares against diffusers' UNetMotionModel")
ROOT = Path(__file__).resolve().parents[1]


def test_the_prepared_command_runs_every_section_and_writes_one_results_file(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable}
    p = subprocess.run([str(ROOT / "bench" / "gpu.sh"), "--device", "cpu", "--tiny", "--repeats", "1"],
                       capture_output=True, text=True, timeout=900, env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout.startswith(f"bench/gpu.sh: budget 420 s of sections (+ installs), results in {tmp_path}/gpu.json")
    assert [f.name for f in tmp_path.iterdir()] == ["gpu.json"]
    results = json.loads((tmp_path / "gpu.json").read_text())
    sections = results["sections"]
    assert set(sections) == {"precision", "fp8", "speed", "long", "train", "compile"}
    assert not [name for name, s in sections.items() if "error" in s or "skipped" in s], sections
    for family in ("sd15", "sdxl"):
        for dtype in ("float16", "bfloat16"):
            assert math.isfinite(sections["precision"][f"{family}_{dtype}_max_abs_diff"])
    for row in ("fp16", "bf16", "fp8 (module fp16)", "fp8 (module fp8)"):
        assert math.isfinite(sections["fp8"][row]["max_abs_diff_vs_fp32"]) and sections["fp8"][row]["seconds"] > 0
    assert sections["speed"]["sd15_64px_8f"]["time_ratio"] > 0 and sections["speed"]["sdxl_64px_8f"]["time_ratio"] > 0
    assert sections["long"]["ran"] and sections["train"]["checkpointing"]["steps_per_s"] > 0
    assert sections["compile"]["relative"] < 1e-3 and sections["compile"]["unet_relative"] < 1e-3
    assert results["report"].startswith("bench/gpu.py on CPU (tiny shapes)")


def test_a_spent_budget_skips_the_sections_left(tmp_path):
    p = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu.py"), "--out", str(tmp_path), "--device", "cpu",
                        "--tiny", "--repeats", "1", "--budget", "0.5", "--only", "precision", "long"],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    sections = json.loads((tmp_path / "gpu.json").read_text())["sections"]
    assert "skipped" not in sections["precision"] and sections["long"] == {"skipped": "the 0.5 s budget was spent"}
