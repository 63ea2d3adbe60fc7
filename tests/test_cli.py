"""`python -m motion_core` as a user runs it (subprocess), plus argument errors."""

import json
import subprocess
import sys

import pytest

from conftest import FIXTURES
from fixture_files import tiny_published

JSON_KEYS = {"format", "family", "version", "pe_length", "mid_block", "params", "dtype"}


def run(*args, check=True):
    p = subprocess.run([sys.executable, "-m", "motion_core", *map(str, args)], capture_output=True, text=True)
    if check:
        assert p.returncode == 0, p.stderr
    return p


@pytest.mark.parametrize("name,version,pe,mid,params", [("tiny_v1", "v1", 24, False, 464_000),
                                                        ("tiny_v2", "v2", 32, True, 487_200)])
def test_inspect_json(name, version, pe, mid, params):
    d = json.loads(run("inspect", tiny_published(version), "--json").stdout)
    assert JSON_KEYS <= set(d)
    assert (d["format"], d["family"], d["version"], d["pe_length"], d["mid_block"], d["params"], d["dtype"]) == \
        ("original", "sd15", version, pe, mid, params, "float16")  # stored as a published fp16 file
    assert d["channels"] == [32, 32, 32, 32] and d["heads"] == 2 and d["lora_rank"] is None


def test_inspect_text_reads_like_a_table():
    out = run("inspect", tiny_published("v3")).stdout
    for line in ("version    v3", "pe length  32 frames", "channels   32, 32, 32, 32", "params     464,000"):
        assert line in out


def test_create_convert_inspect(tmp_path):
    run("create", tmp_path / "xl.safetensors", "--version", "sdxl-beta", "--channels", "32,64,64", "--heads", "2",
        "--init", "random")
    run("convert", tmp_path / "xl.safetensors", tmp_path / "xl_adapter", "--layout", "diffusers")
    d = json.loads(run("inspect", tmp_path / "xl_adapter", "--json").stdout)
    assert (d["format"], d["container"], d["family"], d["version"], d["heads"]) == \
        ("diffusers", "folder", "sdxl", "sdxl-beta", 2)


def test_bad_input_exits_2_with_the_fix(tmp_path):
    p = run("inspect", tmp_path / "missing.ckpt", check=False)
    assert p.returncode == 2 and p.stderr == f"error: no such file: {tmp_path / 'missing.ckpt'}\n"
    p = run("create", tmp_path / "x.safetensors", "--channels", "32,abc", check=False)
    assert p.returncode == 2 and "is not a comma-separated list of integers" in p.stderr
    p = run("create", tmp_path / "x.safetensors", "--channels", "40,80", check=False)
    assert p.returncode == 2 and "40 is not a positive multiple of 32" in p.stderr
    p = run("create", tmp_path / "x.safetensors", "--pe-length", "0", check=False)
    assert p.returncode == 2 and "pe_length=0 must be an integer of at least 1" in p.stderr
    p = run("convert", tiny_published("v1"), tmp_path, check=False)
    assert p.returncode == 2 and "is a folder" in p.stderr
    p = run("convert", tiny_published("v1"), tmp_path / "o.safetensors", "--layout", "kohya", check=False)
    assert p.returncode == 2 and "invalid choice: 'kohya'" in p.stderr
    assert "Traceback" not in p.stderr


def test_help_reads_like_a_man_page():
    out = run("--help").stdout
    assert "inspect" in out and "convert" in out and "exit codes" in out
    assert "--layout" in run("convert", "--help").stdout
