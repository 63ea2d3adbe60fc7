"""Shared helpers: fixture paths and tiny seeded motion modules (channels 32/64, 2 heads)."""

from pathlib import Path

import pytest
import torch

from motion_core import MotionModule, MotionModuleConfig
from motion_core.config import VERSION_DEFAULTS

FIXTURES = Path(__file__).parent / "fixtures"
TINY_CHANNELS = {"sd15": (32, 64, 64, 64), "sdxl": (32, 64, 64)}


def tiny_config(version: str = "v2", **overrides) -> MotionModuleConfig:
    family, pe, mid = VERSION_DEFAULTS[version]
    kw = dict(family=family, version=version, channels=TINY_CHANNELS[family], mid_block=mid, heads=2, pe_length=pe)
    kw.update(overrides)
    return MotionModuleConfig(**kw)


def random_module(version: str = "v2", seed: int = 0, **overrides) -> MotionModule:
    """A tiny module whose every parameter is random (proj_out and norms included), so nothing is trivially zero."""
    torch.manual_seed(seed)
    module = MotionModule(tiny_config(version, **overrides))
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn_like(p) * 0.1)
    return module


def assert_same_tensors(a: dict, b: dict) -> None:
    """Same keys, dtypes, shapes and bits."""
    assert sorted(a) == sorted(b)
    for k in a:
        assert a[k].dtype == b[k].dtype, k
        assert a[k].shape == b[k].shape, k
        assert torch.equal(a[k], b[k]), k


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES
