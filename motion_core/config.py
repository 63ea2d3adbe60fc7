"""MotionModuleConfig: what a motion-module checkpoint is, inferred from its keys and shapes by pure functions.

Everything here reads a state dict in the ORIGINAL AnimateDiff key layout
(`down_blocks.i.motion_modules.j.temporal_transformer.<...>`); other layouts are converted first (formats/).
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from typing import Mapping

from .errors import ConfigError, UnknownLayoutError

FAMILIES = ("sd15", "sdxl")
# version -> (family, position-encoding length, mid-block module): the published modules' shapes
VERSION_DEFAULTS = {
    "v1": ("sd15", 24, False), "v2": ("sd15", 32, True), "v3": ("sd15", 32, False),
    "sdxl-beta": ("sdxl", 32, False), "hotshot-xl": ("sdxl", 24, False), "animatelcm": ("sd15", 64, True),
}
VERSIONS = tuple(VERSION_DEFAULTS)

# `down_blocks.1.motion_modules.0.temporal_transformer.proj_in.weight` -> ("down_blocks.1", "0", "proj_in.weight")
MODULE_KEY = re.compile(r"^(down_blocks\.\d+|mid_block|up_blocks\.\d+)\.motion_modules\.(\d+)\.temporal_transformer\.(.+)$")


@dataclass(frozen=True)
class MotionModuleConfig:
    family: str  # host image-model family the module plugs into: "sd15" or "sdxl"
    version: str  # one of VERSIONS; decides the GroupNorm axes (module and host) and defaults
    channels: tuple[int, ...]  # channels per down level, e.g. (320, 640, 1280, 1280); up levels mirror them
    layers_per_block: int = 2  # motion modules per down level; each up level holds one more
    mid_block: bool = False  # one module in the mid block (v2 and AnimateDiff-Lightning)
    heads: int = 8  # attention heads (not stored in checkpoints; every published module uses 8)
    pe_length: int = 32  # frames the sinusoidal position encoding holds (24 for v1)
    attention_blocks: int = 2  # temporal self-attentions per transformer block (1 in SparseCtrl)
    transformer_blocks: int = 1  # transformer blocks per module
    ff_mult: int = 4  # GEGLU feed-forward inner width = ff_mult * channels
    norm_groups: int = 32  # GroupNorm groups at the module input

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise ConfigError(f"family {self.family!r} is not one of {FAMILIES}")
        if self.version not in VERSIONS:
            raise ConfigError(f"version {self.version!r} is not one of {VERSIONS}")
        if VERSION_DEFAULTS[self.version][0] != self.family:
            raise ConfigError(f"version {self.version!r} is a {VERSION_DEFAULTS[self.version][0]} module, not "
                              f"{self.family}: pick a version of the module's family")
        for name in ("layers_per_block", "heads", "pe_length", "attention_blocks", "transformer_blocks", "ff_mult",
                     "norm_groups"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)!r} must be an integer of at least 1")
        if not self.channels:
            raise ConfigError("channels is empty: a motion module needs at least one level")
        for c in self.channels:
            if c <= 0 or c % self.norm_groups:
                raise ConfigError(
                    f"channel count {c} is not a positive multiple of {self.norm_groups} (GroupNorm groups): "
                    "the file is damaged or not an AnimateDiff motion module")
            if c % self.heads:
                raise ConfigError(f"channel count {c} is not divisible by heads={self.heads}: "
                                  "pass a heads value that divides it")

    @property
    def cross_frame_norm(self) -> bool:
        """GroupNorm statistics inside the module: across all frames (SDXL beta) or per frame (SD1.5 modules)."""
        return self.version == "sdxl-beta"

    @property
    def host_cross_frame_norm(self) -> bool:
        """v1 was trained with the host UNet's resnet GroupNorms normalising across frames."""
        return self.version == "v1"

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "MotionModuleConfig":
        d = json.loads(text)
        d["channels"] = tuple(d["channels"])
        return cls(**d)


def module_paths(config: MotionModuleConfig) -> list[str]:
    """Every injection point in the original naming, in the original's registration order (down, up, mid)."""
    n = len(config.channels)
    paths = [f"down_blocks.{i}.motion_modules.{j}" for i in range(n) for j in range(config.layers_per_block)]
    paths += [f"up_blocks.{i}.motion_modules.{j}" for i in range(n) for j in range(config.layers_per_block + 1)]
    if config.mid_block:
        paths.append("mid_block.motion_modules.0")
    return paths


# ---- inference: pure functions over an original-layout state dict ---------------------------------------------

def _shape(value) -> tuple[int, ...]:
    return tuple(value.shape) if hasattr(value, "shape") else tuple(value)


# sub-key suffix -> number of dimensions its tensor must have (the rest are checked against the built module)
_NDIM = {"norm.weight": 1, "pos_encoder.pe": 3, "ff.net.2.weight": 2, "to_q.weight": 2}


def _check_ndim(path: str, sub: Mapping) -> None:
    for key, shape in sub.items():
        for suffix, ndim in _NDIM.items():
            if key.endswith(suffix) and (len(shape) != ndim or 0 in shape):
                raise UnknownLayoutError(f"{path}.temporal_transformer.{key} has shape {shape}; expected "
                                         f"{ndim} non-empty dimensions: the file is damaged")


def group_modules(state_dict: Mapping) -> dict[str, dict[str, tuple[int, ...]]]:
    """{module path: {sub-key: shape}}; raises UnknownLayoutError on keys outside any motion module."""
    modules: dict[str, dict[str, tuple[int, ...]]] = {}
    stray: list[str] = []
    for key, value in state_dict.items():
        m = MODULE_KEY.match(key)
        if m is None:
            stray.append(key)
            continue
        modules.setdefault(f"{m[1]}.motion_modules.{m[2]}", {})[m[3]] = _shape(value)
    if stray:
        raise UnknownLayoutError(
            f"{len(stray)} key(s) are not motion-module weights, e.g. {stray[:5]}; "
            "expected keys like 'down_blocks.0.motion_modules.0.temporal_transformer.norm.weight'")
    if not modules:
        raise UnknownLayoutError("the state dict holds no motion-module weights (it is empty)")
    for path, sub in modules.items():
        _check_ndim(path, sub)
    return modules


def _level_counts(modules, prefix: str) -> dict[int, int]:
    counts: dict[int, int] = {}
    for path in modules:
        if path.startswith(prefix + "."):
            level = int(path.split(".")[1])
            counts[level] = counts.get(level, 0) + 1
    return counts


def _indices(sub: Mapping, pattern: str) -> int:
    found = {int(m[1]) for k in sub if (m := re.match(pattern, k))}
    return len(found)


def infer_pe_length(modules) -> int | None:
    """Position-encoding length stored in the file, or None when the file has no `pe` (AnimateLCM, re-saved)."""
    lengths = {shape[1] for sub in modules.values() for k, shape in sub.items() if k.endswith("pos_encoder.pe")}
    if len(lengths) > 1:
        raise ConfigError(f"the modules disagree on the position-encoding length: {sorted(lengths)}; the file mixes two modules")
    return lengths.pop() if lengths else None


def infer_config(state_dict: Mapping, *, heads: int = 8, pe_length: int | None = None,
                 version: str | None = None) -> tuple[MotionModuleConfig, list[str]]:
    """Config of an original-layout state dict, plus notes on what had to be assumed.

    `heads` is not recorded in checkpoints (8 in every published module). `pe_length` and `version` override what
    the keys say, for files without a position encoding."""
    modules = group_modules(state_dict)
    notes: list[str] = []
    down = _level_counts(modules, "down_blocks")
    up = _level_counts(modules, "up_blocks")
    n = len(down)
    if sorted(down) != list(range(n)) or sorted(up) != list(range(n)):
        raise UnknownLayoutError(f"down levels {sorted(down)} and up levels {sorted(up)} do not form a UNet: "
                                 "expected the same levels 0..N-1 on both sides")
    layers = down[0]
    if any(c != layers for c in down.values()) or any(c != layers + 1 for c in up.values()):
        raise UnknownLayoutError(f"modules per level: down {down}, up {up}; expected {layers} per down level "
                                 f"and {layers + 1} per up level")
    missing = [f"down_blocks.{i}.motion_modules.0.temporal_transformer.norm.weight" for i in range(n)
               if "norm.weight" not in modules[f"down_blocks.{i}.motion_modules.0"]]
    if missing:
        raise UnknownLayoutError(f"missing key(s) {missing[:5]}: the file is incomplete or not a motion module")
    channels = tuple(modules[f"down_blocks.{i}.motion_modules.0"]["norm.weight"][0] for i in range(n))
    first = modules["down_blocks.0.motion_modules.0"]
    ff_in = first.get("transformer_blocks.0.ff.net.2.weight", (channels[0], 4 * channels[0]))[1]
    stored_pe = infer_pe_length(modules)
    has_mid = "mid_block.motion_modules.0" in modules
    family = "sdxl" if n == 3 else "sd15"
    if version is None:
        if family == "sdxl":  # HotShot-XL (24-frame pe) stored in AnimateDiff's key names, or AnimateDiff's beta
            version = "hotshot-xl" if (stored_pe or pe_length) == 24 else "sdxl-beta"
        elif has_mid and stored_pe is None and pe_length is None:
            version = "animatelcm"
            notes.append("no position encoding in the file and a mid-block module: AnimateLCM")
        elif has_mid:
            version = "v2"
        elif (stored_pe or pe_length) == 24:
            version = "v1"
        else:
            version = "v3"
            if stored_pe is None and pe_length is None:
                notes.append("no position encoding in the file (AnimateLCM or a re-saved module): v1 and v3 look "
                             "the same without it; assumed v3 (pass version='v1' if it is a v1 module)")
    if pe_length is None:
        pe_length = stored_pe or VERSION_DEFAULTS.get(version, ("", 32))[1]
        if stored_pe is None:
            notes.append(f"position-encoding length assumed {pe_length} frames (computed sinusoid, not from the file)")
    elif stored_pe is not None and stored_pe != pe_length:
        raise ConfigError(f"pe_length={pe_length} was asked for but the file stores a {stored_pe}-frame position "
                          "encoding: leave pe_length unset")
    config = MotionModuleConfig(
        family=family, version=version, channels=channels, layers_per_block=layers, mid_block=has_mid,
        heads=heads, pe_length=pe_length,
        attention_blocks=_indices(first, r"transformer_blocks\.\d+\.attention_blocks\.(\d+)\."),
        transformer_blocks=_indices(first, r"transformer_blocks\.(\d+)\."),
        ff_mult=max(1, ff_in // channels[0]))
    return config, notes
