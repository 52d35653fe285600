#!/usr/bin/env bash
# A static build (-DBUILD_SHARED_LIBS=OFF), CPU only, as people embed graft:
# the kernels register themselves from static initialisers, which a plain
# static link drops; graft::graft links libgraft.a whole-archive. Builds the
# CLI at -O1 (only the link is under test), checks that it carries libgraft,
# runs `graft info` and a forward pass (inspect --graph: every module's output
# shape), then installs and builds tests/consumer against libgraft.a with g++
# and clang++ (tests/consumer/check.cmake). Part of scripts/test.sh.
#   scripts/static_check.sh [BUILD_DIR]     (default build-static)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build-static}
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE="-O1 -DNDEBUG" \
  -DGRAFT_WERROR=ON -DBUILD_SHARED_LIBS=OFF -DGRAFT_CUDA=OFF -DGRAFT_BUILD_TESTS=OFF \
  -DGRAFT_BUILD_BENCHMARKS=OFF ${GRAFT_CMAKE_ARGS:-}
cmake --build "$BUILD" --parallel "$(nproc)" --target graft_cli
if ldd "$BUILD/graft" | grep -E 'libgraft|libcu'; then
  echo "the static graft needs a shared libgraft or a CUDA library" >&2
  exit 1
fi
"$BUILD/graft" info
"$BUILD/graft" inspect --graph --arch resnet18 --num-classes 10 --image-size 64 \
  --mode feature-extract >"$BUILD/graph.txt"
tail -2 "$BUILD/graph.txt"
grep -q 'parameters: 11,181,642 total, 5,130 trainable' "$BUILD/graph.txt"
grep -Eq '^  layer4 +Sequential +1x512x2x2 ' "$BUILD/graph.txt" ||
  { echo "inspect --graph: no layer4 output of 1x512x2x2" >&2; exit 1; }
cmake -DGRAFT_BUILD_DIR="$BUILD" -DCONSUMER_SOURCE_DIR="$PWD/tests/consumer" \
  -DGRAFT_CUDA_BACKEND=none -DGRAFT_SANITIZED=OFF \
  -DWORK_DIR="$(cd "$BUILD" && pwd)/consumer_check" -P tests/consumer/check.cmake
echo "static build: ok"
