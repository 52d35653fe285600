#!/usr/bin/env bash
# One command for a session that has a GPU (see /work/shared/GPU.md): records
# the card, runs the CUDA tests under compute-sanitizer memcheck once and plain
# (with cuDNN/cuBLAS and again with the native kernels), then the GPU benchmarks
# and the PyTorch comparison, all on the same machine in the same command.
#
# Usage (from the repository root, with the build folder carried over):
#   benchmarks/gpu_suite.sh [build-dir]        # default: build
# Output goes to stdout and to $OUT/gpu_suite.log when $OUT is set.
set -uo pipefail
BUILD=${1:-build}
LOG=${OUT:-/tmp}/gpu_suite.log
exec > >(tee "$LOG") 2>&1

echo "== date: $(date -u)"
echo "== nvidia-smi"
nvidia-smi || echo "nvidia-smi failed"

# cuDNN / cuBLAS shared libraries ship inside PyTorch's nvidia-* Python packages.
NV_ROOT=$(python3 -c "import nvidia, os; print(os.path.dirname(nvidia.__path__[0]))" 2>/dev/null || true)
if [ -n "$NV_ROOT" ]; then
  for d in "$NV_ROOT"/nvidia/*/lib; do LD_LIBRARY_PATH="$d:${LD_LIBRARY_PATH:-}"; done
fi
for lib in libcudnn.so.9 libcublas.so.13 libcublasLt.so.13; do
  found=$(find / -name "$lib" -not -path '*/proc/*' 2>/dev/null | head -1)
  [ -n "$found" ] && LD_LIBRARY_PATH="$(dirname "$found"):${LD_LIBRARY_PATH:-}"
done
export LD_LIBRARY_PATH
echo "== LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
ldd "$BUILD/tests/test_cuda_ops" | grep -E "cudnn|cublas|not found" || true

status=0
echo "== CUDA tests under compute-sanitizer memcheck"
if command -v compute-sanitizer >/dev/null; then
  compute-sanitizer --tool memcheck --error-exitcode 99 "$BUILD/tests/test_cuda_ops" || status=1
else
  echo "compute-sanitizer not found"
fi
echo "== CUDA tests (cuDNN / cuBLAS)"
"$BUILD/tests/test_cuda_ops" || status=1
echo "== CUDA tests (native conv / batch norm / GEMM)"
GRAFT_CONV=native GRAFT_BN=native GRAFT_GEMM=native "$BUILD/tests/test_cuda_ops" || status=1
echo "== CUDA tests (cuDNN benchmark mode)"
GRAFT_CUDNN_BENCHMARK=1 "$BUILD/tests/test_cuda_ops" --gtest_filter='*conv*' || status=1

echo "== graft GPU benchmarks (cuDNN / cuBLAS)"
"$BUILD/benchmarks/bench_cuda" --benchmark_min_time=0.2 || status=1
echo "== graft GPU benchmarks (native kernels)"
GRAFT_CONV=native GRAFT_BN=native GRAFT_GEMM=native \
  "$BUILD/benchmarks/bench_cuda" --benchmark_min_time=0.2 --benchmark_filter='Conv|Matmul|BatchNorm' || status=1
echo "== PyTorch on the same GPU"
python3 "$(dirname "$0")/bench_cuda_torch.py" || status=1

echo "== exit status $status"
exit $status
