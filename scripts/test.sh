#!/usr/bin/env bash
# Sets up, builds and runs graft's whole test suite, as CI does (.ci/run):
#   1. build/      Release, warnings as errors, with the real CUDA backend
#                  compiled for sm_80/sm_90 when /usr/local/cuda has nvcc,
#                  cuBLAS and cuDNN (proof that it compiles and links; with no
#                  GPU its CUDA tests skip here and run in 2.). The whole suite,
#                  then the float parity tests again on one thread with Eigen's
#                  blocking forced to other cache sizes (GRAFT_TEST_CACHE_SIZES)
#                  and the baseline GEMM instead of the AVX-512 one (GRAFT_CPU_ISA).
#   static:        build-static/, a CPU-only -DBUILD_SHARED_LIBS=OFF build at
#                  -O1 (only the link matters): the CLI and tests/consumer
#                  linked against libgraft.a, kernel registration intact.
#   2. build-san/  ASan + UBSan (float-cast-overflow included, halting on the
#                  first report) with the emulated CUDA device: the whole suite
#                  again, including every CUDA test on the emulator (none may
#                  skip) and the fuzz corpus replay.
#   3. build-race/ racecheck: ThreadSanitizer with the emulated CUDA device
#                  (-DGRAFT_SANITIZE=thread), only libgraft, test_cuda_ops and
#                  test_cuda_emu: the cross-backend suite on the hand-written
#                  kernels and the emulator's racecheck test (ctest -L racecheck).
# The PyTorch fixtures are generated once and shared by the builds.
# SKIP_SANITIZE=1 runs only the first configuration and the static one;
# SKIP_RACECHECK=1 skips the third.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
BUILD=${BUILD_DIR:-build}
SAN=${SAN_BUILD_DIR:-build-san}
RACE=${RACE_BUILD_DIR:-build-race}
STATIC=${STATIC_BUILD_DIR:-build-static}
JOBS=$(nproc)
step() { printf '\n==== %s (%s)\n' "$*" "$(date +%T)"; }

step "configure and build $BUILD"
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGRAFT_WERROR=ON ${GRAFT_CMAKE_ARGS:-}
cmake --build "$BUILD" --parallel "$JOBS"

step "generate the PyTorch fixtures"
tests/fixtures/generate.sh

step "test $BUILD"
ctest --test-dir "$BUILD" --output-on-failure --parallel "$JOBS" --timeout 1200

# Another machine's cache sizes, thread count and vector width change Eigen's
# float32 summation order; the parity bounds must hold under any of them. The
# run above used the GEMM chosen from CPUID (AVX-512 where the CPU has it);
# this one forces the build's baseline (AVX2) copy.
step "parity variant: 1 thread, baseline GEMM, GRAFT_TEST_CACHE_SIZES=16384,262144,1048576"
for t in test_resnet test_nn_ops test_ops test_linalg test_optim test_train_cli; do
  echo "-- $t"
  OMP_NUM_THREADS=1 GRAFT_CPU_ISA=baseline GRAFT_TEST_CACHE_SIZES=16384,262144,1048576 \
    "$BUILD/tests/$t" --gtest_brief=1
done

step "static CPU-only build $STATIC (BUILD_SHARED_LIBS=OFF)"
scripts/static_check.sh "$STATIC"

if [[ "${SKIP_SANITIZE:-0}" == 1 ]]; then exit 0; fi

step "configure and build $SAN (ASan + UBSan, emulated CUDA device)"
cmake -S . -B "$SAN" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGRAFT_WERROR=ON \
  -DGRAFT_SANITIZE=ON -DGRAFT_CUDA=EMULATE -DGRAFT_BUILD_BENCHMARKS=OFF ${GRAFT_CMAKE_ARGS:-}
cmake --build "$SAN" --parallel "$JOBS"
# The emulated build must register CUDA tests; each of them fails rather
# than skips when the emulated device cannot run it.
ctest --test-dir "$SAN" -N -L test_cuda_ops | grep -q 'Total Tests: [1-9]' ||
  { echo "no CUDA tests registered in $SAN" >&2; exit 1; }

step "test $SAN"
# No detect_stack_use_after_return: its fake stacks are rebuilt at every switch
# to an emulated CUDA thread's fiber, which made test_cuda_ops ~100x slower.
export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:strict_string_checks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
ctest --test-dir "$SAN" --output-on-failure --parallel "$JOBS" --timeout 1800

if [[ "${SKIP_RACECHECK:-0}" == 1 ]]; then exit 0; fi

step "configure and build $RACE (racecheck: ThreadSanitizer, emulated CUDA device)"
cmake -S . -B "$RACE" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGRAFT_WERROR=ON \
  -DGRAFT_SANITIZE=thread -DGRAFT_CUDA=EMULATE -DGRAFT_BUILD_BENCHMARKS=OFF ${GRAFT_CMAKE_ARGS:-}
cmake --build "$RACE" --parallel "$JOBS" --target test_cuda_ops test_cuda_emu
ctest --test-dir "$RACE" -N -L racecheck | grep -q 'Total Tests: [1-9]' ||
  { echo "no racecheck tests registered in $RACE" >&2; exit 1; }

step "test $RACE (racecheck)"
unset ASAN_OPTIONS UBSAN_OPTIONS
ctest --test-dir "$RACE" --output-on-failure --parallel "$JOBS" --timeout 1800 -L racecheck
