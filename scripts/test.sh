#!/usr/bin/env bash
# Sets up, builds (CUDA backend compiled when the toolkit is present, warnings
# as errors), generates the PyTorch fixtures, and runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
BUILD=${BUILD_DIR:-build}
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGRAFT_WERROR=ON ${GRAFT_CMAKE_ARGS:-}
cmake --build "$BUILD" --parallel "$(nproc)"
tests/fixtures/generate.sh
cd "$BUILD"
ctest --output-on-failure --parallel "$(nproc)" --timeout 1200
