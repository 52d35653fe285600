#!/usr/bin/env bash
# Builds bench_resnet and compares graft's ResNet train/feature-extract/inference images/s
# and peak RSS with PyTorch's (see compare_resnet.py). Extra args pass through,
# e.g. benchmarks/compare_resnet.sh --threads 2 --repeats 3 --cases r18-224-train,r18-32-train
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
ninja -C "$BUILD" benchmarks/bench_resnet >/dev/null
# Debian python3 with torch; a pyenv python3 on PATH may lack it.
PY=${PYTHON:-/usr/bin/python3}
exec "$PY" benchmarks/compare_resnet.py --bench "$BUILD/benchmarks/bench_resnet" "$@"
