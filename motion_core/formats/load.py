"""load_motion_module / save_motion_module: any published file in, the original layout (or diffusers) out."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import torch
from safetensors.torch import save_file

from ..config import MODULE_KEY, MotionModuleConfig, infer_config, module_paths
from ..errors import (ConfigError, CorruptCheckpointError, NotAMotionModuleError, UnknownLayoutError,
                      UnsupportedMethodError)
from ..module import MotionModule, TorchOps, cast_module, sinusoidal_pe
from .files import RawCheckpoint, atomic_write, from_state_dict, read_checkpoint
from .layouts import (describe_other, detect_layout, from_original, is_motion_lora, related_method, strip_prefixes,
                      to_original)
from .lora import load_motion_lora, merge_motion_lora, parse_motion_lora

CONFIG_METADATA_KEY = "motion_core_config"


@dataclass
class LoadInfo:
    """Where a loaded motion module came from and what had to be assumed (printed by `inspect`)."""
    format: str  # key layout of the file: "original" | "diffusers" | "hotshot"
    container: str  # "safetensors" | "pickle" | "folder" | "state_dict"
    dtype: str  # dtype of the file's floating tensors ("mixed" if several)
    path: str | None = None
    notes: list[str] = field(default_factory=list)
    loras: list[str] = field(default_factory=list)


def _dtype_name(tensors: Iterable[torch.Tensor]) -> str:
    names = {str(t.dtype).removeprefix("torch.") for t in tensors if t.is_floating_point()}
    return names.pop() if len(names) == 1 else ("mixed" if names else "none")


def _hints(raw: RawCheckpoint) -> dict[str, Any]:
    """heads / pe_length / version recorded beside the weights: our metadata, a diffusers config.json, or the
    original code's `unet_config` / `animatediff_config` entries."""
    if CONFIG_METADATA_KEY in raw.metadata:
        try:
            c = MotionModuleConfig.from_json(raw.metadata[CONFIG_METADATA_KEY])
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            raise CorruptCheckpointError(f"{raw.path}: its {CONFIG_METADATA_KEY} metadata is damaged ({e})") from None
        return {"heads": c.heads, "pe_length": c.pe_length, "version": c.version}
    if raw.config is not None:
        c = raw.config
        if c.get("_class_name") not in (None, "MotionAdapter"):
            raise NotAMotionModuleError(f"{raw.path} is a diffusers {c['_class_name']}, not a MotionAdapter")
        hints = {"heads": c.get("motion_num_attention_heads"), "pe_length": c.get("motion_max_seq_length")}
    else:
        hints = {}
        for entry in (raw.metadata.get("unet_config"), raw.extras.get("animatediff_config")):
            try:
                kwargs = (json.loads(entry) if isinstance(entry, str) else entry or {}).get("motion_module_kwargs", {})
                hints = {"heads": kwargs.get("num_attention_heads"),
                         "pe_length": kwargs.get("temporal_position_encoding_max_len")}
            except (json.JSONDecodeError, AttributeError):  # foreign metadata we cannot read: not a reason to fail
                continue
            break
    for key, value in list(hints.items()):
        if value is None:
            del hints[key]
        elif not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise CorruptCheckpointError(f"{raw.path}: its recorded config says {key}={value!r}, which is not a "
                                         f"positive integer; pass {key}=... to override it")
    return hints


def _check_keys(module: MotionModule, sd: Mapping[str, torch.Tensor]) -> None:
    not_float = [f"{k} ({v.dtype})" for k, v in sd.items() if not v.is_floating_point()]
    if not_float:
        raise UnknownLayoutError(f"{len(not_float)} tensor(s) are not floating point, e.g. {not_float[:3]}: "
                                 "the file is damaged or not a motion module")
    expected = module.state_dict()
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    wrong = [f"{k} {tuple(sd[k].shape)} (expected {tuple(v.shape)})" for k, v in expected.items()
             if k in sd and tuple(sd[k].shape) != tuple(v.shape)]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing key(s), e.g. {missing[:3]}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s), e.g. {unexpected[:3]}")
    if wrong:
        problems.append(f"{len(wrong)} shape mismatch(es), e.g. {wrong[:3]}")
    if problems:
        raise UnknownLayoutError(f"the weights do not fit a {module.config.version} motion module with channels "
                                 f"{module.config.channels}: " + "; ".join(problems))


def _add_missing_pe(sd: dict, config: MotionModuleConfig, dtype: torch.dtype | None = None) -> dict:
    """The sinusoid for every module whose file lacks it, in `dtype` (default: the file's): an fp16 file loaded
    for fp32 use gets the fp32 sinusoid the original computes, not one rounded through fp16."""
    for key, value in list(sd.items()):
        m = MODULE_KEY.match(key)
        if m and m[3].endswith(".to_q.weight"):
            pe_key = key[:-len("to_q.weight")] + "pos_encoder.pe"
            if pe_key not in sd:
                sd[pe_key] = sinusoidal_pe(config.pe_length, value.shape[1]).to(dtype or value.dtype)
    return sd


def _read_raw(source) -> RawCheckpoint:
    """A file is read zero-copy; a caller's state dict is copied, so the module never shares (and never later
    changes) the caller's tensors."""
    if isinstance(source, RawCheckpoint):
        return source
    if isinstance(source, Mapping):
        return from_state_dict({k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in source.items()})
    return read_checkpoint(source)


def read_motion_state_dict(source, *, heads: int | None = None, pe_length: int | None = None,
                           version: str | None = None, pe_dtype: torch.dtype | None = None):
    """(original-layout state dict with pe, config, LoadInfo) without building the module. pe_dtype: the dtype of
    position encodings the file lacks (default: the file's)."""
    raw = _read_raw(source)
    other = describe_other(list(raw.state_dict))
    if other:
        raise NotAMotionModuleError(f"{raw.path or 'the state dict'} is {other}")
    method = related_method(raw.state_dict)
    if method:
        raise UnsupportedMethodError(f"{raw.path or 'the state dict'} is a {method} checkpoint: motion_core does not "
                                     "support it (only its motion modules would load, and run as plain text-to-video)")
    sd, notes = strip_prefixes(raw.state_dict)
    layout = detect_layout(sd)
    sd = to_original(sd, layout)
    hints = _hints(raw)
    if layout == "hotshot":
        hints.setdefault("version", "hotshot-xl")
    if any(n.startswith("whole-UNet") for n in notes) and "pe_length" not in hints \
            and not any(k.endswith(".pos_encoder.pe") for k in sd):
        hints["pe_length"] = 32  # the original train.py (HEAD) does not save pe: a training run, not AnimateLCM
        notes.append("whole-UNet training checkpoint without position encoding: assumed 32 frames "
                     "(pass pe_length=24 for a v1 run)")
    given = {"heads": heads, "pe_length": pe_length, "version": version}
    hints.update({k: v for k, v in given.items() if v is not None})
    config, more = infer_config(sd, heads=hints.get("heads", 8), pe_length=hints.get("pe_length"),
                                version=hints.get("version"))
    if layout == "diffusers" and config.version == "v3" and "version" not in hints:
        more.append("diffusers MotionAdapter files do not tell v1 from v3 (both lack a mid block): assumed v3; "
                    "pass version='v1' for mm_sd_v14 / mm_sd_v15")
    dtype = _dtype_name(sd.values())
    if dtype == "mixed":  # e.g. fp16 linears with fp32 norms: one dtype, or the first forward fails
        sd = {k: v.float() if v.is_floating_point() else v for k, v in sd.items()}
        more.append("the file mixes floating dtypes: converted to float32")
    info = LoadInfo(format=layout, container=raw.container, dtype=dtype, path=raw.path, notes=notes + more)
    return _add_missing_pe(sd, config, pe_dtype), config, info


def load_motion_module(source, *, loras: Iterable = (),
                       heads: int | None = None, pe_length: int | None = None, version: str | None = None,
                       dtype: torch.dtype | None = None, device: str | torch.device = "cpu",
                       operations=TorchOps, pe_dtype: torch.dtype | None = None) -> MotionModule:
    """Load a motion module from any published format (path, diffusers folder or state dict).

    loras: MotionLoRAs to merge, each a path / state dict / MotionLoRA, or a (that, strength) pair.
    heads, pe_length, version: override what the file says (it never records heads; 8 is assumed).
    dtype: convert the weights to this dtype (default: keep the file's); pe_dtype: the position encodings' dtype
    (default: dtype), e.g. the compute dtype of fp8-stored weights.
    operations: the layer types (motion_core.module.TorchOps, or a host's: ComfyUI's comfy.ops).
    Returns the module in eval mode without gradients, carrying `.config` and `.info` (format, notes, LoRAs)."""
    pe_dtype = pe_dtype or dtype
    sd, config, info = read_motion_state_dict(source, heads=heads, pe_length=pe_length, version=version,
                                              pe_dtype=pe_dtype)
    with torch.device("meta"):
        module = MotionModule(config, operations=operations)
    _check_keys(module, sd)
    module.load_state_dict(sd, strict=True, assign=True)  # the file's tensors become the parameters: no copy
    cast_module(module, dtype, pe_dtype, device)
    module.info = info
    _merge_all(module, loras)
    return module.requires_grad_(False).eval()


def _merge_all(module: MotionModule, loras: Iterable) -> None:
    for entry in loras:
        lora, strength = entry if isinstance(entry, tuple) else (entry, 1.0)
        lora = load_motion_lora(lora)
        merge_motion_lora(module, lora, strength)
        module.info.loras.append(f"{lora.source} x {strength}")


def copy_module(module: MotionModule, *, operations=None, dtype: torch.dtype | None = None,
                pe_dtype: torch.dtype | None = None) -> MotionModule:
    """A new module with `module`'s weights, built from `operations` (default: the module's own) and cast to
    `dtype` (weights) and `pe_dtype` (position encodings; default: dtype) where given. The input is untouched;
    tensors that need no cast are shared, not copied."""
    with torch.device("meta"):  # requires_grad off first: assign keeps it, and inference tensors may come
        twin = MotionModule(module.config, operations=operations or getattr(module, "operations", TorchOps))
    twin.requires_grad_(False).load_state_dict(module.state_dict(), strict=True, assign=True)
    cast_module(twin, dtype, pe_dtype)
    info = getattr(module, "info", None)
    twin.info = dataclasses.replace(info, notes=list(info.notes), loras=list(info.loras)) if info else \
        LoadInfo(format="original", container="state_dict", dtype=_dtype_name(module.state_dict().values()))
    return twin.eval()


def with_loras(module: MotionModule, loras: Iterable) -> MotionModule:
    """A new module: `module` with MotionLoRAs merged (computed in fp32, rounded once to the module's dtype). The
    input is untouched; weights no LoRA changes are shared."""
    twin = copy_module(module)
    _merge_all(twin, loras)
    return twin.requires_grad_(False).eval()


def save_motion_module(module: MotionModule, path: str | os.PathLike, *, layout: str = "original") -> Path:
    """Write safetensors atomically. layout "original" (any loader) or "diffusers" (a `.safetensors` file, or a
    MotionAdapter folder with config.json when `path` has no suffix)."""
    if layout not in ("original", "diffusers"):
        raise ConfigError(f"layout {layout!r} is not one of 'original', 'diffusers'")
    config: MotionModuleConfig = module.config
    sd = {k: v.detach().contiguous() for k, v in from_original(module.state_dict(), layout).items()}
    metadata = {"format": "pt", "layout": layout, CONFIG_METADATA_KEY: config.to_json()}
    path = Path(path)
    if layout == "diffusers" and path.suffix == "":  # a MotionAdapter folder: weights first, then the config
        folder, path = path, path / "diffusion_pytorch_model.safetensors"
        atomic_write(path, lambda tmp: save_file(sd, tmp, metadata=metadata))
        atomic_write(folder / "config.json",
                     lambda tmp: Path(tmp).write_text(json.dumps(adapter_config(config), indent=2)))
        return path
    atomic_write(path, lambda tmp: save_file(sd, tmp, metadata=metadata))
    return path


def adapter_config(config: MotionModuleConfig) -> dict:
    """config.json of a diffusers MotionAdapter with the same shapes."""
    return {
        "_class_name": "MotionAdapter",
        "block_out_channels": list(config.channels),
        "motion_layers_per_block": config.layers_per_block,
        "motion_transformer_layers_per_block": config.transformer_blocks,
        "motion_mid_block_layers_per_block": 1,
        "motion_transformer_layers_per_mid_block": config.transformer_blocks,
        "motion_num_attention_heads": config.heads,
        "motion_norm_num_groups": config.norm_groups,
        "motion_max_seq_length": config.pe_length,
        "use_motion_mid_block": config.mid_block,
        "conv_in_channels": None,
    }


def describe(source) -> dict[str, Any]:
    """What `inspect` prints: a motion module's or a MotionLoRA's facts, without merging anything."""
    raw = _read_raw(source)
    from ..sparsectrl import infer_config as sparsectrl_config, is_sparsectrl
    if is_sparsectrl(raw.state_dict):
        c = sparsectrl_config(raw.state_dict)
        return {"format": "sparsectrl", "kind": c.kind, "family": "sd15", "version": "v3", "pe_length": c.pe_length,
                "mid_block": False, "params": sum(v.numel() for v in raw.state_dict.values()),
                "dtype": _dtype_name(raw.state_dict.values()), "lora_rank": None,
                "modules": len({k.split(".temporal_transformer.")[0] for k in raw.state_dict if ".motion_modules." in k}),
                "container": raw.container, "path": raw.path,
                "notes": [f"a SparseCtrl ControlNet ({c.kind} keyframes): use it with Load SparseCtrl or "
                          "generate --sparse-ctrl, not as a motion module"]}
    if is_motion_lora(raw.state_dict):
        lora = parse_motion_lora(raw.state_dict, raw.path or "the state dict")
        sd15 = any(k.startswith("down_blocks.3.") for k in lora.pairs)
        return {"format": "motion-lora", "family": "sd15" if sd15 else "sdxl", "version": None, "pe_length": None,
                "mid_block": any(k.startswith("mid_block.") for k in lora.pairs), "params": lora.num_parameters(),
                "dtype": _dtype_name(raw.state_dict.values()), "lora_rank": lora.rank, "layers": len(lora.pairs),
                "container": raw.container, "path": raw.path, "notes": []}
    module = load_motion_module(raw)
    c, info = module.config, module.info
    return {"format": info.format, "family": c.family, "version": c.version, "pe_length": c.pe_length,
            "mid_block": c.mid_block, "params": module.num_parameters(), "dtype": info.dtype, "lora_rank": None,
            "channels": list(c.channels), "heads": c.heads, "layers_per_block": c.layers_per_block,
            "attention_blocks": c.attention_blocks, "modules": len(module_paths(c)),
            "container": info.container, "path": info.path, "notes": info.notes}


def convert_file(src, dst: str | os.PathLike, *, layout: str = "original", **load_kwargs) -> Path:
    """Any readable motion module -> safetensors in `layout`, same dtype, written atomically."""
    return save_motion_module(load_motion_module(src, **load_kwargs), dst, layout=layout)
