"""Fixture files derived from committed ones instead of being stored twice; each is written once under
build/fixtures/ and reused. No pytest here: ComfyUI's interpreter runs the comfy_*_check.py scripts that use it.

tiny_<v>.safetensors (v1, v2, v3): the motion modules of tiny_unet_<v>_full.safetensors as a published fp16 file holds
them (flat, original keys, the 24- or 32-frame position encodings included, the same metadata), what
make_original_unet_vectors.py once wrote beside it. Its tensors' digest is recorded in MANIFEST.json
("derived" entries) and checked by tests/test_reference_vectors.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
DERIVED = ROOT / "build" / "fixtures"


def tensor_digest(tensors: dict) -> str:
    """sha256 over sorted keys, dtypes, shapes and bytes (independent of the file's header layout)."""
    h = hashlib.sha256()
    for key in sorted(tensors):
        t = tensors[key].contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.view(-1).view(dtype=__import__("torch").uint8).numpy().tobytes())
    return h.hexdigest()


def tiny_published(version: str) -> Path:
    """build/fixtures/tiny_<version>.safetensors, written from tiny_unet_<version>_full the first time."""
    path = DERIVED / f"tiny_{version}.safetensors"
    if path.exists():
        return path
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file
    if str(ROOT) not in sys.path:
        sys.path.append(str(ROOT))
    from motion_core.module import sinusoidal_pe  # the original's sinusoid, bit for bit
    source = FIXTURES / f"tiny_unet_{version}_full.safetensors"
    with safe_open(str(source), "pt") as f:
        meta = f.metadata()
    frames = json.loads(meta["unet_config"])["motion_module_kwargs"]["temporal_position_encoding_max_len"]
    tensors = {k: v for k, v in load_file(str(source)).items() if ".motion_modules." in k}
    for key, weight in list(tensors.items()):
        if key.endswith(".to_q.weight"):  # one position encoding per temporal attention
            tensors[key[:-len("to_q.weight")] + "pos_encoder.pe"] = sinusoidal_pe(frames, weight.shape[0]).half()
    DERIVED.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    save_file(tensors, str(tmp), metadata=meta)
    os.replace(tmp, path)
    return path
