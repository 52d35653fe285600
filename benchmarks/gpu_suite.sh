#!/usr/bin/env bash
# One command for a session with a GPU (see /work/shared/GPU.md), about 8
# minutes on an H100/H200. In this order:
#   1. the card (nvidia-smi) and the libraries the test binary resolves;
#   2. the plain CUDA suite (cuDNN / cuBLAS), failing when zero CUDA tests ran;
#   3. the native kernel selections (GRAFT_CONV/GRAFT_BN/GRAFT_GEMM=native) and
#      cuDNN's benchmark mode;
#   4. the GPU benchmarks, then PyTorch's numbers on the same card;
#   5. compute-sanitizer memcheck, last and optional (refused under gVisor).
# A short table goes last; full logs go to $OUT (or /tmp) as gpu_*.log.
#
# Usage (repository root, with a build made for the GPU, e.g.
#   cmake -S . -B build -G Ninja -DGRAFT_CUDA=ON -DGRAFT_CUDA_ARCHITECTURES=90 \
#     -DCMAKE_BUILD_TYPE=Release && cmake --build build --target test_cuda_ops bench_cuda):
#   benchmarks/gpu_suite.sh [build-dir]          # default: build
set -uo pipefail
BUILD=${1:-build}
LOGS=${OUT:-/tmp}
TESTS="$BUILD/tests/test_cuda_ops"
BENCH="$BUILD/benchmarks/bench_cuda"
declare -a SUMMARY=()
status=0

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

# step NAME LOGFILE COMMAND... : runs it with its own log, records pass/fail.
step() {
  local name=$1 log=$2
  shift 2
  echo "== $name"
  local start=$SECONDS
  "$@" > "$LOGS/$log" 2>&1
  local rc=$?
  tail -n 5 "$LOGS/$log"
  SUMMARY+=("$(printf '%-34s %-6s %4ss  %s' "$name" "$([ $rc -eq 0 ] && echo ok || echo FAIL)" $((SECONDS - start)) "$log")")
  [ $rc -eq 0 ] || status=1
  return $rc
}

# Counts the CUDA tests that really ran (not skipped) in a gtest log.
ran_tests() { grep -c '^\[       OK \]' "$LOGS/$1" || true; }

echo "== $(date -u)"
nvidia-smi > "$LOGS/gpu_nvidia_smi.log" 2>&1 || echo "nvidia-smi failed"
head -n 15 "$LOGS/gpu_nvidia_smi.log"
echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
ldd "$TESTS" | grep -E "cudnn|cublas|not found" || true

# GRAFT_REQUIRE_CUDA_TESTS=1: a CUDA test that cannot run fails, not skips.
export GRAFT_REQUIRE_CUDA_TESTS=1
step "CUDA suite (cuDNN/cuBLAS)" gpu_tests.log "$TESTS"
n=$(ran_tests gpu_tests.log)
echo "CUDA tests passed: $n"
if [ "$n" -eq 0 ]; then
  echo "FAIL: zero CUDA tests ran"
  status=1
fi
step "CUDA suite (native kernels)" gpu_tests_native.log \
  env GRAFT_CONV=native GRAFT_BN=native GRAFT_GEMM=native "$TESTS"
step "CUDA conv (cuDNN benchmark mode)" gpu_tests_cudnn_benchmark.log \
  env GRAFT_CUDNN_BENCHMARK=1 "$TESTS" --gtest_filter='*conv*:*Conv*:*Cudnn*:CudaModels.*'

step "graft benchmarks (cuDNN/cuBLAS)" gpu_bench.log "$BENCH" --benchmark_min_time=0.2
step "graft benchmarks (native)" gpu_bench_native.log \
  env GRAFT_CONV=native GRAFT_BN=native GRAFT_GEMM=native \
  "$BENCH" --benchmark_min_time=0.2 --benchmark_filter='Conv|Matmul|BatchNorm'
step "PyTorch on the same GPU" gpu_bench_torch.log python3 "$(dirname "$0")/bench_cuda_torch.py"

# Last and optional: compute-sanitizer may be missing or refuse the device.
# Only exit code 99 (memcheck found errors) fails the suite.
if command -v compute-sanitizer > /dev/null; then
  before=$status
  step "compute-sanitizer memcheck" gpu_memcheck.log timeout 240 \
    compute-sanitizer --tool memcheck --error-exitcode 99 "$TESTS" --gtest_filter='AllOps/*'
  rc=$?
  if [ $rc -ne 0 ] && [ $rc -ne 99 ]; then
    echo "(compute-sanitizer refused or timed out, rc $rc: not counted)"
    status=$before
  fi
else
  echo "== compute-sanitizer not found (skipped)"
fi

echo
echo "== summary ($(date -u))"
printf '%s\n' "${SUMMARY[@]}"
echo "CUDA tests passed (plain run): $n"
echo "exit status $status"
exit $status
