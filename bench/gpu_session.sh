#!/usr/bin/env bash
# What a session with a lent GPU runs, in two calls of the `device` tool (each under its 10-minute limit),
# writing everything worth keeping under $OUT (at most 8 files come back):
#
#   bash bench/gpu_session.sh tests   # every test on the GPU: gpu-marked and the rest, as CI runs them
#   bash bench/gpu_session.sh bench   # the GEMM tiling sweep, then the ops and models suites on the GPU
#
# Then copy the files into bench/results/ under the date and the GPU's name, and set the dispatch
# constants (MATMUL_MIN_FLOP in dlgpu/backend/kernel_ops/gemm_bias_act.py) from gemm_sweep.json.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:?set OUT to the folder whose files come back}"
mode="${1:?usage: gpu_session.sh tests|bench}"

# The machine has CuPy, PyTorch and nvidia-ml-py; dlgpu itself and the test tools may be missing.
python3 -m pip install -q --no-deps -e . >/dev/null 2>&1 || true
python3 -m pip install -q pytest pytest-xdist hypothesis threadpoolctl safetensors pillow h5py >/dev/null 2>&1 || true

facts() {
    { echo "# $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
      nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader 2>&1
      python3 -c "import cupy, numpy, sys; print('python', sys.version.split()[0], 'cupy', cupy.__version__, 'numpy', numpy.__version__)" 2>&1
    } > "$out/$1"
}

case "$mode" in
  tests)
    facts gpu-tests-facts.txt
    # -p no:cacheprovider: the tree is a copy; nothing to cache between calls
    timeout 540 python3 -m pytest -q -n 8 -p no:cacheprovider -m 'not slow' -ra tests \
        > "$out/gpu-tests.txt" 2>&1
    echo "exit $?" >> "$out/gpu-tests.txt"
    tail -3 "$out/gpu-tests.txt"
    ;;
  bench)
    facts gpu-bench-facts.txt
    PYTHONPATH=. timeout 230 python3 bench/gemm_sweep.py --budget 200 --out "$out/gemm_sweep.json" \
        > "$out/gemm_sweep.txt" 2>&1
    timeout 330 python3 -m bench --suite ops,models --device gpu --out "$out" --quiet \
        > "$out/bench.md" 2>&1
    tail -30 "$out/bench.md"
    ;;
  *)
    echo "usage: gpu_session.sh tests|bench" >&2
    exit 2
    ;;
esac
