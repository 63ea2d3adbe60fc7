"""bench/gpu.py, the benchmark prepared for a GPU machine, runs its every section on the CPU at tiny shapes, so it
cannot rot between the sessions that have a GPU (issue 20)."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("diffusers", reason="bench/gpu.py compares against diffusers' UNetMotionModel")
ROOT = Path(__file__).resolve().parents[1]


def test_every_section_runs_on_tiny_shapes_and_writes_its_report(tmp_path):
    p = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu.py"), "--out", str(tmp_path), "--device", "cpu",
                        "--tiny", "--repeats", "1"], capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-3000:]
    results = json.loads((tmp_path / "gpu.json").read_text())
    sections = results["sections"]
    assert set(sections) == {"precision", "speed", "long", "train", "compile"}
    assert not [name for name, s in sections.items() if "error" in s], {n: s.get("error") for n, s in sections.items()}
    for family in ("sd15", "sdxl"):
        for dtype in ("float16", "bfloat16"):
            assert math.isfinite(sections["precision"][f"{family}_{dtype}_max_abs_diff"])
    assert sections["speed"]["sd15_64px_8f"]["time_ratio"] > 0 and sections["speed"]["sdxl_64px_8f"]["time_ratio"] > 0
    assert sections["long"]["ran"] and sections["train"]["checkpointing"]["steps_per_s"] > 0
    assert sections["compile"]["relative"] < 1e-3  # fp32 on the CPU: compiled kernels only reorder the sums
    assert (tmp_path / "gpu.txt").read_text().startswith("bench/gpu.py on CPU (tiny shapes)")
