"""Packaging invariants: the ComfyUI entry point stays light, motion_core stays standalone and safe."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys; print('\\n'.join(sys.modules))"],
                         capture_output=True, text=True, check=True, cwd=ROOT.parent).stdout
    return set(out.split())


def test_comfyui_entry_point_imports_no_diffusers_no_cv2():
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('motion_core_pack', r'{ROOT / '__init__.py'}',"
        f" submodule_search_locations=[r'{ROOT}'])\n"
        "pack = importlib.util.module_from_spec(spec); sys.modules['motion_core_pack'] = pack\n"
        "spec.loader.exec_module(pack)\n"
        "assert isinstance(pack.NODE_CLASS_MAPPINGS, dict) and pack.WEB_DIRECTORY == './js'\n")
    loaded = _modules_after(code)
    assert "motion_core_pack" in loaded
    assert not {m for m in loaded if m.split(".")[0] in ("diffusers", "cv2", "transformers")}


def test_motion_core_imports_nothing_heavy_or_comfy():
    loaded = _modules_after("import motion_core, motion_core.cli")
    assert not {m for m in loaded if m.split(".")[0] in ("diffusers", "cv2", "transformers", "comfy", "folder_paths")}


def test_source_has_no_comfy_import_and_no_unsafe_torch_load():
    for path in (ROOT / "motion_core").rglob("*.py"):
        text = path.read_text()
        assert not re.search(r"^\s*(import|from)\s+(comfy|folder_paths|server)\b", text, re.M), path
        for call in re.findall(r"torch\.load\(.*", text):
            assert "weights_only=True" in call, (path, call)


def test_pyproject_declares_cli_registry_and_careful_deps():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    deps = {re.split(r"[<>=!~ \[]", d)[0] for d in meta["project"]["dependencies"]}
    assert deps == {"torch", "einops", "safetensors", "numpy", "Pillow", "tqdm"}
    assert meta["project"]["scripts"]["motion-core"] == "motion_core.cli:main"
    assert {"PublisherId", "DisplayName"} <= set(meta["tool"]["comfy"])
    assert "Apache License" in (ROOT / "LICENSE").read_text()[:200]


def test_readme_starts_with_the_two_commands_and_ci_runs_the_test_one():
    lines = [l for l in (ROOT / "README.md").read_text().splitlines() if l.strip()]
    assert lines[1] == "```sh" and lines[2].startswith("make demo") and lines[3].startswith("make test")
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_the_tracked_tree_travels_to_a_device_machine():
    """The device tool copies the working tree (64 MiB at most, with what a run carries): the tracked files stay under
    40 MiB (issue 20). Skipped outside a git checkout (an sdist)."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True)
    if listed.returncode != 0:
        pytest.skip("not a git checkout: the tree size is checked on clones")
    files = [ROOT / name for name in listed.stdout.decode().split("\0") if name]
    total = sum(f.stat().st_size for f in files if f.is_file())
    assert total < 40 * 1024 * 1024, f"tracked files total {total / 2**20:.1f} MiB; keep them under 40 MiB"


def _tracked() -> list[str]:
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True)
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    return [name for name in listed.stdout.decode().split("\0") if name]


def _published() -> list[str]:
    """What `comfy node pack` zips: the tracked files minus .comfyignore's patterns (here: folders and file names,
    matched as gitignore matches them)."""
    patterns = [p.strip() for p in (ROOT / ".comfyignore").read_text().splitlines()
                if p.strip() and not p.startswith("#")]
    assert all(re.fullmatch(r"[\w.\-]+/?", p) for p in patterns), patterns  # (what this simple matcher handles)
    return [f for f in _tracked()
            if not any(f.startswith(p) if p.endswith("/") else f == p or f.endswith("/" + p) for p in patterns)]


def test_the_registry_package_is_the_pack_alone_and_small():
    published = _published()
    tops = {f.split("/")[0] for f in published}
    assert {"__init__.py", "nodes", "motion_core", "js", "workflows", "pyproject.toml", "requirements.txt",
            "README.md", "LICENSE"} <= tops
    assert not tops & {"tests", "bench", "demo", ".ci"}, tops  # no tests, benches or the demo's training
    size = sum((ROOT / f).stat().st_size for f in published)
    assert size < 2 * 2**20, f"the published package holds {size / 2**20:.2f} MiB"


def test_the_registry_security_rules_hold_everywhere():
    """`comfy node validate`'s ruff rules (S102 exec, S307 eval, E702 statements joined by ';') on every tracked
    Python file, and no runtime `pip install` in what is published."""
    import ast
    import io
    import tokenize
    for name in (f for f in _tracked() if f.endswith(".py")):
        source = (ROOT / name).read_text()
        tree = ast.parse(source)
        called = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
        assert not called & {"exec", "eval"}, name
        semicolons = [t.start for t in tokenize.generate_tokens(io.StringIO(source).readline)
                      if t.type == tokenize.OP and t.string == ";"]
        assert not semicolons, (name, semicolons)
    for name in (f for f in _published() if f.endswith(".py")):
        text = (ROOT / name).read_text()
        assert not re.search(r"""["']pip["']|pip\.main|ensurepip""", text), name
