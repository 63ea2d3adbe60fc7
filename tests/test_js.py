"""The web extension's drawing and graph logic, through Node's built-in test runner (no network, no browser)."""

import shutil
import subprocess
from pathlib import Path

import pytest

JS = Path(__file__).resolve().parents[1] / "js"


def test_js_unit_tests_pass():
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed: the js/ unit tests need `node --test` (Node 18+)")
    p = subprocess.run([node, "--test", "tests/"], cwd=JS, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-2000:]
    assert "# fail 0" in p.stdout and "# pass 0" not in p.stdout
