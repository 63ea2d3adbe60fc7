"""Import the node pack the way ComfyUI does: the repository's `__init__.py` as a package of its own (so its
relative imports `..motion_core` resolve inside it). Plain Python: usable from pytest, from scripts run in ComfyUI's
interpreter, and from bench/."""

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_pack(name: str = "motion_core_pack"):
    """The pack as module `name` (its submodules become `name.nodes...`, `name.motion_core...`)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "__init__.py", submodule_search_locations=[str(ROOT)])
    pack = importlib.util.module_from_spec(spec)
    sys.modules[name] = pack
    spec.loader.exec_module(pack)
    return pack
