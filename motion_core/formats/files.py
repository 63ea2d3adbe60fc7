"""Reading checkpoint files safely, and writing them atomically.

Reading never runs pickled code: safetensors has no code to run, and pickle-based files go through
`torch.load(weights_only=True)`, which refuses any global that is not a tensor type. The container is told from the
file's first bytes, not trusted from its extension.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file

from ..errors import CheckpointNotFoundError, ConfigError, CorruptCheckpointError, UnsafeCheckpointError

DIFFUSERS_WEIGHTS = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors",
                     "diffusion_pytorch_model.bin", "diffusion_pytorch_model.fp16.bin")


@dataclass
class RawCheckpoint:
    """What a file holds, before any layout is interpreted."""
    state_dict: dict[str, torch.Tensor]  # every tensor, with its key as stored (nesting under `state_dict` removed)
    container: str  # "safetensors" | "pickle" | "folder" | "state_dict" (handed in from memory)
    metadata: dict[str, str] = field(default_factory=dict)  # safetensors header metadata
    config: dict[str, Any] | None = None  # a diffusers folder's config.json
    extras: dict[str, Any] = field(default_factory=dict)  # non-tensor entries (animatediff_config, global_step, ...)
    path: str | None = None


def sniff(path: Path) -> str:
    """'safetensors', 'zip-pickle' or 'legacy-pickle' from the first bytes; CorruptCheckpointError otherwise."""
    with open(path, "rb") as f:
        head = f.read(9)
    if len(head) == 0:
        raise CorruptCheckpointError(f"{path} is empty (0 bytes): the download or copy did not finish; fetch it again")
    if head[:4] == b"PK\x03\x04":
        return "zip-pickle"
    if head[:1] == b"\x80":
        return "legacy-pickle"
    if len(head) == 9 and head[8:9] == b"{":
        return "safetensors"
    raise CorruptCheckpointError(
        f"{path} is neither a safetensors file nor a PyTorch checkpoint (first bytes {head[:8]!r}); "
        "it may be an HTML error page or a partial download: fetch it again")


def read_checkpoint(path: str | os.PathLike, *, mmap: bool | None = None) -> RawCheckpoint:
    """Tensors and extras of a checkpoint file or diffusers folder. mmap: map a zip pickle's tensors from the file
    (the default, None) or read them into memory (False), as a host that reads its own model files so asks."""
    path = Path(path)
    if path.is_dir():
        return _read_diffusers_folder(path)
    if not path.exists():
        raise CheckpointNotFoundError(f"no such file: {path}")
    kind = sniff(path)
    if kind == "safetensors":
        return _read_safetensors(path)
    return _read_pickle(path, mmap=kind == "zip-pickle" and mmap is not False)


def _read_safetensors(path: Path) -> RawCheckpoint:
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = dict(f.metadata() or {})
        tensors = load_file(str(path))  # memory-mapped read, one copy per tensor
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CorruptCheckpointError(f"{path} is a damaged safetensors file ({e}); fetch it again") from None
    return RawCheckpoint(tensors, "safetensors", metadata=metadata, path=str(path))


def _read_pickle(path: Path, *, mmap: bool) -> RawCheckpoint:
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as e:
        if "weights only" in str(e).lower():
            found = re.search(r"GLOBAL ([\w.]+)", str(e))
            refused = f"it wants {found[1]}" if found else "it holds objects other than tensors"
            raise UnsafeCheckpointError(
                f"{path} asks to run code while loading ({refused}); it was refused and nothing ran. "
                "Only tensors are accepted: get a .safetensors version of this file") from None
        raise CorruptCheckpointError(f"{path} is a damaged PyTorch checkpoint ({e}); fetch it again") from None
    except Exception as e:  # noqa: BLE001 - a damaged pickle fails anywhere inside torch.load, with any type
        detail = str(e).splitlines()[0] if str(e) else "no detail"
        raise CorruptCheckpointError(f"{path} is a damaged or truncated PyTorch checkpoint ({type(e).__name__}: "
                                     f"{detail}); fetch it again") from None
    return _from_object(obj, "pickle", path=str(path))


def _from_object(obj: Any, container: str, *, path: str | None = None) -> RawCheckpoint:
    """Split a loaded object into tensors and extras; unwraps `{"state_dict": {...}}`."""
    where = path or "the state dict"
    if not isinstance(obj, dict):
        raise CorruptCheckpointError(f"{where} holds a {type(obj).__name__}, not a dict of tensors")
    extras = {}
    if isinstance(obj.get("state_dict"), dict):
        extras = {k: v for k, v in obj.items() if k != "state_dict"}
        obj = obj["state_dict"]
    tensors = {}
    for key, value in obj.items():
        if isinstance(value, torch.Tensor):
            tensors[str(key)] = value
        else:
            extras[str(key)] = value
    return RawCheckpoint(tensors, container, extras=extras, path=path)


def from_state_dict(state_dict: dict) -> RawCheckpoint:
    return _from_object(state_dict, "state_dict")


def _read_diffusers_folder(path: Path) -> RawCheckpoint:
    config_path = path / "config.json"
    weights = next((path / n for n in DIFFUSERS_WEIGHTS if (path / n).exists()), None)
    if not config_path.exists() or weights is None:
        raise CheckpointNotFoundError(
            f"{path} is a folder but not a diffusers MotionAdapter: it needs config.json and one of "
            f"{', '.join(DIFFUSERS_WEIGHTS)}; found {sorted(p.name for p in path.iterdir())[:10]}")
    try:
        config = json.loads(config_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CorruptCheckpointError(f"{config_path} is not valid JSON ({e})") from None
    if not isinstance(config, dict):
        raise CorruptCheckpointError(f"{config_path} holds a {type(config).__name__}, not a JSON object")
    raw = read_checkpoint(weights)
    raw.container, raw.config, raw.path = "folder", config, str(path)
    return raw


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Call `write(tmp)` on a temporary file beside `path`, flush it to disk, then rename it over `path`.

    A crash at any moment leaves either the old file or the new one, never a partial file."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointNotFoundError(f"{path} is a folder: give a file name ending in .safetensors")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~umask)  # mkstemp made it 0600
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a power cut
    finally:
        os.close(directory)


def atomic_folder(folder: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp)` on a new temporary folder beside `folder`, then put it in `folder`'s place: a crash at any
    moment leaves the old folder (or none) or the new one whole, never a partial one. Returns the folder."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{folder} exists and is not a folder")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp made it 0700
        old = None
        if folder.exists():  # keep the previous contents until the new ones are in place
            old = Path(tempfile.mkdtemp(prefix=f".{folder.name}.old.", dir=folder.parent))
            os.replace(folder, old / folder.name)
        os.replace(tmp, folder)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder
