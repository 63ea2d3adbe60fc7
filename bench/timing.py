"""Interleaved timing for the benches that compare settings of one call against a baseline in the same run."""

from __future__ import annotations

import statistics
import time
from typing import Callable


def interleaved(settings: dict[str, dict], call: Callable[..., object], repeats: int) -> dict[str, float]:
    """Median seconds of `call(**settings[name])` per setting: one warm-up call (the first setting), then `repeats`
    rounds that run every setting once each, so drift of the machine hits every setting alike."""
    call(**next(iter(settings.values())))
    seconds = {name: [] for name in settings}
    for _ in range(repeats):
        for name, extra in settings.items():
            started = time.perf_counter()
            call(**extra)
            seconds[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in seconds.items()}
