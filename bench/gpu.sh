#!/usr/bin/env bash
# The one prepared command for a GPU machine; the device tool runs it from the repository root:
#
#   bench/gpu.sh                                    # full-size shapes on CUDA
#   bench/gpu.sh --device cpu --tiny --repeats 1    # the same, end to end, on the CPU at tiny shapes (tests run it)
#
# Results: one file, $OUT/gpu.json (the device tool's $OUT; else build/gpu), rewritten after every section of
# bench/gpu.py, so a run stopped at its budget keeps what finished. The machine has torch and no network: what else
# bench/gpu.py imports (diffusers, huggingface_hub, ...) comes as wheels in build/wheels, made on a machine with one:
#   pip download --no-deps -d build/wheels diffusers huggingface_hub
# (pass build/wheels in the device tool's `carry`). Extra arguments go to bench/gpu.py.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-build/gpu}"
budget="${GPU_BUDGET_S:-420}"  # seconds for the sections; bench/gpu.py skips what would start after it
python="${PYTHON:-python3}"
echo "bench/gpu.sh: budget ${budget} s of sections (+ installs), results in ${out}/gpu.json"
if ! "$python" -c "import diffusers" 2>/dev/null; then
    if [[ ! -d build/wheels ]]; then
        echo "bench/gpu.sh: diffusers is not installed and no build/wheels was carried (see the header)" >&2
        exit 2
    fi
    "$python" -m pip install --quiet --no-index --find-links build/wheels diffusers
fi
"$python" -c "import torch; print('torch', torch.__version__, '| cuda', torch.cuda.is_available())"
exec "$python" bench/gpu.py --out "$out" --budget "$budget" "$@"
