#!/usr/bin/env bash
# Sets up, builds and runs graft's main job: the built-in transfer-learning
# experiment (`graft demo`) on Fashion-MNIST from Debian's dataset package.
# Extra arguments go to `graft demo` (see `build/graft demo --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
BUILD=${BUILD_DIR:-build}
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGRAFT_BUILD_TESTS=OFF -DGRAFT_BUILD_BENCHMARKS=OFF ${GRAFT_CMAKE_ARGS:-}
cmake --build "$BUILD" --parallel "$(nproc)" --target graft_cli
exec "$BUILD/graft" demo --out "${DEMO_OUT:-runs/demo}" "$@"
