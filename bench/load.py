"""Loading a full-size v2 motion module (453M params, 1.8 GB fp32 safetensors) with `load_motion_module`, against a
bare `safetensors.torch.load_file` of the same file (the baseline), each in a fresh process so peak RSS is its own.

Both are lazy: load_file maps the file and returns tensors whose pages are read on first touch, and
load_motion_module hands those same tensors to the module (no copy). So two times are printed per run:
  load   the call itself;
  ready  the call plus one pass over every weight (what a user waits for before the first frame).
Two page-cache states: cold (the file evicted from the page cache before each run) and warm.
Targets: time <= 1.3x the baseline's, peak RSS <= 1.3x the file size. Prints medians and ratios.
    python bench/load.py [--repeats 5] [--file PATH]   (the file is built once with random weights and kept)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_FILE = Path(__file__).resolve().parents[1] / "build" / "bench" / "full_v2_fp32.safetensors"


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def worker(kind: str, path: str) -> None:
    import torch  # noqa: F401  (imports happen before the baseline RSS is taken)
    from safetensors.torch import load_file

    from motion_core import load_motion_module
    base = _rss_bytes()
    start = time.perf_counter()
    tensors = load_file(path) if kind == "load_file" else load_motion_module(path).state_dict()
    loaded = time.perf_counter() - start
    total = sum(float(tensors[k].sum()) for k in sorted(tensors))  # touch every weight once
    ready = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"load": loaded, "ready": ready, "peak": peak, "base": base, "checksum": total}))


def build(path: Path) -> None:
    import torch

    from motion_core import MotionModule, MotionModuleConfig, save_motion_module
    print(f"building {path} (random full-size v2 module, fp32) ...", flush=True)
    torch.manual_seed(0)
    config = MotionModuleConfig(family="sd15", version="v2", channels=(320, 640, 1280, 1280), mid_block=True)
    save_motion_module(MotionModule(config), path)


def drop_page_cache(path: Path) -> None:
    """Evict this file (only) from the page cache, so the next read comes from disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def measure(kind: str, path: Path, cold: bool) -> dict:
    if cold:
        drop_page_cache(path)
    out = subprocess.run([sys.executable, __file__, "--worker", kind, str(path)], check=True, capture_output=True,
                         text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--file", type=Path, default=DEFAULT_FILE)
    p.add_argument("--worker", nargs=2, metavar=("KIND", "PATH"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(*args.worker)
    if not args.file.exists():
        args.file.parent.mkdir(parents=True, exist_ok=True)
        build(args.file)
    size = args.file.stat().st_size
    gb = 1024 ** 3
    print(f"file: {args.file} ({size / gb:.2f} GiB), {args.repeats} runs per row, medians, each in a fresh process")
    states = ["cold", "warm"]
    print(f"{'':28}{'load s':>8}{'ready s':>9}{'peak RSS GiB':>14}{'RSS added GiB':>15}")
    checksums = set()
    for state in states:
        if state == "warm":
            measure("load_file", args.file, cold=False)  # bring the file into the page cache
        runs = {"load_file": [], "load_motion_module": []}
        for _ in range(args.repeats):  # interleaved, so drift in machine load hits both alike
            for kind in runs:
                runs[kind].append(measure(kind, args.file, cold=state == "cold"))
        med = {k: {m: statistics.median(r[m] for r in v) for m in ("load", "ready", "peak", "base")}
               for k, v in runs.items()}
        checksums |= {r["checksum"] for v in runs.values() for r in v}
        for kind, m in med.items():
            print(f"{state + ' ' + kind:28}{m['load']:8.3f}{m['ready']:9.3f}{m['peak'] / gb:14.2f}"
                  f"{(m['peak'] - m['base']) / gb:15.2f}")
        ours, base = med["load_motion_module"], med["load_file"]
        print(f"  {state}: time ratio ours / load_file: ready {ours['ready'] / base['ready']:.2f}x, "
              f"load call alone {ours['load'] / base['load']:.2f}x (target <= 1.3x); peak RSS / file size "
              f"{ours['peak'] / size:.2f}x whole process, {(ours['peak'] - ours['base']) / size:.2f}x added by "
              f"loading (target <= 1.3x; baseline {base['peak'] / size:.2f}x / {(base['peak'] - base['base']) / size:.2f}x)")
    assert len(checksums) == 1, "both loaders must see the same weights"

if __name__ == "__main__":
    main()
