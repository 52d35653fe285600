#!/usr/bin/env bash
# One command for a session with a GPU (see /work/shared/GPU.md), within 8
# minutes on an H100/H200 (GPU_SUITE_BUDGET_S, default 450 s: every step has a
# timeout, and the optional sanitizer steps get only what is left). In this order:
#   1. the card (nvidia-smi) and the libraries the test binary resolves;
#   2. the plain CUDA suite (cuDNN / cuBLAS), then test_cuda_train when built;
#      any CUDA test run in which zero tests ran fails the suite;
#   3. the native kernel selections (GRAFT_CONV/GRAFT_BN/GRAFT_GEMM=native) and
#      cuDNN's benchmark mode;
#   4. the GPU benchmarks, then PyTorch's numbers on the same card;
#   5. compute-sanitizer memcheck, then racecheck on the shared-memory kernels,
#      last and optional (missing, refused under gVisor, or out of time: not
#      counted; only errors found fail the suite).
# No file-system search: cuDNN/cuBLAS are found through Python's nvidia package.
# A short table goes last; full logs go to $OUT (or /tmp) as gpu_*.log.
#
# Usage (repository root, with a build made for the GPU, e.g.
#   cmake -S . -B build -G Ninja -DGRAFT_CUDA=ON -DGRAFT_CUDA_ARCHITECTURES=90 \
#     -DCMAKE_BUILD_TYPE=Release
#   cmake --build build --target test_cuda_ops test_cuda_train graft_cli bench_cuda
#   tests/fixtures/generate.sh    # test_cuda_train's fixtures; needs python3-torch):
#   benchmarks/gpu_suite.sh [build-dir]          # default: build
set -uo pipefail
BUILD=${1:-build}
LOGS=${OUT:-/tmp}
TESTS="$BUILD/tests/test_cuda_ops"
TRAIN_TESTS="$BUILD/tests/test_cuda_train"
BENCH="$BUILD/benchmarks/bench_cuda"
BUDGET=${GPU_SUITE_BUDGET_S:-450}
declare -a SUMMARY=()
status=0
mkdir -p "$LOGS"
for f in "$TESTS" "$BENCH"; do
  if [ ! -x "$f" ]; then
    echo "FAIL: $f is missing: build it first (see the usage at the top of $0)"
    exit 1
  fi
done

# cuDNN and cuBLAS come as pip packages (nvidia-*): their lib folders, found
# through Python rather than by searching the file system.
NV_LIBS=$(python3 - <<'PY' 2>/dev/null
import glob, os
try:
    import nvidia
    roots = list(nvidia.__path__)
except Exception:
    roots = []
print(":".join(sorted({d for r in roots for d in glob.glob(os.path.join(r, "*", "lib"))})))
PY
)
export LD_LIBRARY_PATH="${NV_LIBS:+$NV_LIBS:}${LD_LIBRARY_PATH:-}"

# step NAME LOGFILE TIMEOUT_S COMMAND... : runs it with its own log and a
# time limit, records pass/fail.
step() {
  local name=$1 log=$2 limit=$3
  shift 3
  echo "== $name (limit ${limit}s, ${SECONDS}s of ${BUDGET}s used)"
  local start=$SECONDS
  timeout --kill-after=10 "$limit" "$@" > "$LOGS/$log" 2>&1
  local rc=$?
  [ $rc -eq 124 ] && echo "(timed out after ${limit}s)" >> "$LOGS/$log"
  tail -n 5 "$LOGS/$log"
  SUMMARY+=("$(printf '%-34s %-6s %4ss  %s' "$name" "$([ $rc -eq 0 ] && echo ok || echo FAIL)" $((SECONDS - start)) "$log")")
  [ $rc -eq 0 ] || status=1
  return $rc
}

# Counts the CUDA tests that really ran (not skipped) in a gtest log.
ran_tests() { grep -c '^\[       OK \]' "$LOGS/$1" || true; }
# Fails the suite when a test run passed zero tests.
require_ran() {
  local n
  n=$(ran_tests "$1")
  echo "tests passed in $1: $n"
  if [ "$n" -eq 0 ]; then
    echo "FAIL: zero CUDA tests ran ($1)"
    status=1
  fi
}
# Seconds left of the budget, less a margin for the summary.
left() { echo $((BUDGET - SECONDS - 15)); }

echo "== $(date -u)"
nvidia-smi > "$LOGS/gpu_nvidia_smi.log" 2>&1 || echo "nvidia-smi failed"
head -n 15 "$LOGS/gpu_nvidia_smi.log"
echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
ldd "$TESTS" | grep -E "cudnn|cublas|not found" || true

# GRAFT_REQUIRE_CUDA_TESTS=1: a CUDA test that cannot run fails, not skips.
export GRAFT_REQUIRE_CUDA_TESTS=1
step "CUDA suite (cuDNN/cuBLAS)" gpu_tests.log 120 "$TESTS"
require_ran gpu_tests.log
n=$(ran_tests gpu_tests.log)
if [ -x "$TRAIN_TESTS" ]; then
  step "graft train --device cuda vs cpu" gpu_tests_train.log 60 "$TRAIN_TESTS"
  require_ran gpu_tests_train.log
else
  echo "== $TRAIN_TESTS not built (skipped)"
fi
step "CUDA suite (native kernels)" gpu_tests_native.log 120 \
  env GRAFT_CONV=native GRAFT_BN=native GRAFT_GEMM=native "$TESTS"
require_ran gpu_tests_native.log
step "CUDA conv (cuDNN benchmark mode)" gpu_tests_cudnn_benchmark.log 60 \
  env GRAFT_CUDNN_BENCHMARK=1 "$TESTS" --gtest_filter='*conv*:*Conv*:*Cudnn*:CudaModels.*'
require_ran gpu_tests_cudnn_benchmark.log

step "graft benchmarks (cuDNN/cuBLAS)" gpu_bench.log 90 "$BENCH" --benchmark_min_time=0.2
step "graft benchmarks (native)" gpu_bench_native.log 45 \
  env GRAFT_CONV=native GRAFT_BN=native GRAFT_GEMM=native \
  "$BENCH" --benchmark_min_time=0.2 --benchmark_filter='Conv|Matmul|BatchNorm'
step "PyTorch on the same GPU" gpu_bench_torch.log 90 python3 "$(dirname "$0")/bench_cuda_torch.py"

# Last and optional: compute-sanitizer may be missing, refuse the device
# (gVisor) or run out of the budget. Only exit code 99 (errors found) fails
# the suite. racecheck: the kernels with __shared__ memory (reductions,
# softmax/loss, batch norm, the native GEMM and conv).
sanitize() {
  local tool=$1 log=$2 filter=$3 limit
  limit=$(left)
  if [ "$limit" -lt 45 ]; then
    echo "== compute-sanitizer $tool: ${limit}s left of the budget (skipped)"
    return
  fi
  local before=$status
  step "compute-sanitizer $tool" "$log" "$limit" env GRAFT_CONV=native GRAFT_BN=native \
    GRAFT_GEMM=native compute-sanitizer --tool "$tool" --error-exitcode 99 "$TESTS" \
    --gtest_filter="$filter"
  local rc=$?
  if [ $rc -ne 0 ] && [ $rc -ne 99 ]; then
    echo "(compute-sanitizer $tool refused or timed out, rc $rc: not counted)"
    status=$before
  fi
}
if command -v compute-sanitizer > /dev/null; then
  sanitize memcheck gpu_memcheck.log 'AllOps/*'
  sanitize racecheck gpu_racecheck.log \
    'AllOps/*sum*:AllOps/*reduce*:AllOps/*softmax*:AllOps/*cross_entropy*:AllOps/*batch_norm*:AllOps/*matmul*:AllOps/*conv*:AllOps/*var*:AllOps/*arg*'
else
  echo "== compute-sanitizer not found (skipped)"
fi

echo
echo "== summary ($(date -u), ${SECONDS}s)"
printf '%s\n' "${SUMMARY[@]}"
echo "CUDA tests passed (plain run): $n"
echo "exit status $status"
exit $status
