#!/usr/bin/env bash
# make gpu-wheels: what the GPU machine (no network) needs beside the tree, in .whl/ (ignored by git):
#   .whl/*.whl     the wheels of benchmarks/gpu/wheels.txt for Python 3.12 on manylinux x86-64
#   .whl/data/     tinyshakespeare and SST-2 (train, dev) from $MODELLADDER_DATA
#   .whl/minilm/   all-MiniLM-L6-v2 made small (benchmarks/gpu/minilm.py)
# and checks that the tree plus .whl stays under 60 MiB (the device tool carries 64 MiB in all).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY="${PYTHON:-.venv/bin/python}"
DATA="${MODELLADDER_DATA:-../shared/data}"
exclude="$(git rev-parse --git-path info/exclude)"
mkdir -p "$(dirname "$exclude")"
grep -qx '/.whl/' "$exclude" 2>/dev/null || echo '/.whl/' >>"$exclude"
rm -rf .whl
mkdir -p .whl/data/sst
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 \
         manylinux1_x86_64; do platforms+=(--platform "$p"); done
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "${platforms[@]}" \
    -d .whl $(sed -e 's/#.*//' benchmarks/gpu/wheels.txt)
cp -r "$DATA/tinyshakespeare" .whl/data/
cp "$DATA/sst/sst2_train.tsv" "$DATA/sst/sst2_dev.tsv" .whl/data/sst/
chmod -R u+w .whl
MODELLADDER_DATA="$DATA" PYTHONPATH="$PWD/src:$PWD" "$PY" -m benchmarks.gpu.minilm pack .whl/minilm
tree=$(git ls-files -z | du -cb --files0-from=- | tail -1 | cut -f1)
carried=$(du -sb .whl | cut -f1)
echo "tracked tree $((tree / 1048576)) MiB + .whl $((carried / 1048576)) MiB = $(((tree + carried) / 1048576)) MiB"
if (( tree + carried > 60 * 1048576 )); then
    echo "over 60 MiB: the device tool carries 64 MiB in all" >&2
    exit 1
fi
