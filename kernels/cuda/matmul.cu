// Batched matrix multiply on CUDA: cuBLAS strided-batched GEMM (default) or
// our tiled shared-memory GEMM (GRAFT_GEMM=native). float32 and float64.
//
// cuBLAS is column-major; graft is row-major. A row-major M x N matrix is the
// column-major N x M matrix of its transpose, so C = A B is computed as
// C^T = B^T A^T with the operands swapped. Each operand is passed without a
// copy when one of its two strides is 1 (transposed views become op T).
#include <algorithm>
#include <climits>

#include "core/kernels.h"
#include "kernels/cuda/loops.cuh"
#include "kernels/cuda/tiled_gemm.cuh"

namespace graft::cuda {

namespace {

struct MatLayout {
  bool ok = false;
  cublasOperation_t op = CUBLAS_OP_N;  // applied to the column-major view of the memory
  int64_t ld = 1;
};

// Layout of a logical row-major R x C matrix with strides (s_row, s_col) as a
// cuBLAS operand whose column-major view must be the TRANSPOSE (C x R).
MatLayout layout_of(int64_t rows, int64_t cols, int64_t s_row, int64_t s_col) {
  MatLayout l;
  if (s_col == 1 && (rows == 1 || s_row >= cols)) {
    l = {true, CUBLAS_OP_N, rows == 1 ? std::max<int64_t>(cols, 1) : s_row};
  } else if (s_row == 1 && (cols == 1 || s_col >= rows)) {
    l = {true, CUBLAS_OP_T, cols == 1 ? std::max<int64_t>(rows, 1) : s_col};
  }
  return l;
}

void check_int(int64_t v, const char* what) {
  GRAFT_CHECK(v <= INT_MAX, "bmm on CUDA: ", what, " = ", v, " exceeds the cuBLAS limit");
}

void bmm_cublas(const Tensor& a_in, const Tensor& b_in, const Tensor& out, bool accumulate) {
  const int64_t B = a_in.sizes()[0], M = a_in.sizes()[1], K = a_in.sizes()[2], N = b_in.sizes()[2];
  Tensor a = a_in, b = b_in;
  MatLayout la = layout_of(M, K, a.strides()[1], a.strides()[2]);
  if (!la.ok) {
    a = a.contiguous();
    la = layout_of(M, K, a.strides()[1], a.strides()[2]);
    // Size-1 dims of a contiguous tensor may carry any stride; its elements
    // still sit at i*K + j, which is the row-major layout with ld = K.
    if (!la.ok) la = {true, CUBLAS_OP_N, std::max<int64_t>(K, 1)};
  }
  MatLayout lb = layout_of(K, N, b.strides()[1], b.strides()[2]);
  if (!lb.ok) {
    b = b.contiguous();
    lb = layout_of(K, N, b.strides()[1], b.strides()[2]);
    if (!lb.ok) lb = {true, CUBLAS_OP_N, std::max<int64_t>(N, 1)};
  }
  for (auto [v, w] : {std::pair<int64_t, const char*>{B, "batch"},
                      {M, "M"},
                      {N, "N"},
                      {K, "K"},
                      {la.ld, "lda"},
                      {lb.ld, "ldb"}})
    check_int(v, w);
  const int device = out.device().index;
  DeviceGuard guard(device);
  cublasHandle_t h = cublas_handle(device);
  const bool tf32 = tf32_enabled() && out.dtype() == DType::Float32;
  GRAFT_CUBLAS_CHECK(cublasSetMathMode(h, tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
  const int m = static_cast<int>(N), n = static_cast<int>(M), k = static_cast<int>(K);
  const long long sa = a.strides()[0], sb = b.strides()[0], sc = M * N;
  if (out.dtype() == DType::Float32) {
    const float alpha = 1.f, beta = accumulate ? 1.f : 0.f;
    GRAFT_CUBLAS_CHECK(cublasSgemmStridedBatched(
        h, lb.op, la.op, m, n, k, &alpha, b.data_ptr<float>(), static_cast<int>(lb.ld), sb,
        a.data_ptr<float>(), static_cast<int>(la.ld), sa, &beta, out.data_ptr<float>(), m, sc,
        static_cast<int>(B)));
  } else {
    const double alpha = 1.0, beta = accumulate ? 1.0 : 0.0;
    GRAFT_CUBLAS_CHECK(cublasDgemmStridedBatched(
        h, lb.op, la.op, m, n, k, &alpha, b.data_ptr<double>(), static_cast<int>(lb.ld), sb,
        a.data_ptr<double>(), static_cast<int>(la.ld), sa, &beta, out.data_ptr<double>(), m, sc,
        static_cast<int>(B)));
  }
}

// ---- native tiled GEMM (tiled_gemm.cuh) ----
// Operands take arbitrary strides; batch bi of C is contiguous M x N.
template <typename T>
__global__ void __launch_bounds__(kTileThreads)
    gemm_tiled_kernel(int64_t batch, int64_t M, int64_t N, int64_t K, const T* __restrict__ A,
                      int64_t a_b, int64_t a_r, int64_t a_c, const T* __restrict__ B, int64_t b_b,
                      int64_t b_r, int64_t b_c, T* __restrict__ C, bool accumulate) {
  const int64_t m0 = static_cast<int64_t>(blockIdx.y) * kTile,
                n0 = static_cast<int64_t>(blockIdx.x) * kTile;
  for (int64_t bi = blockIdx.z; bi < batch; bi += gridDim.z) {
    const T* a = A + bi * a_b;
    const T* b = B + bi * b_b;
    T* c = C + bi * M * N;
    gemm_tile<T>(
        m0, n0, M, N, K, [&](int64_t m, int64_t k) { return a[m * a_r + k * a_c]; },
        [&](int64_t k, int64_t n) { return b[k * b_r + n * b_c]; },
        [&](int64_t m, int64_t n, T v) { c[m * N + n] = accumulate ? c[m * N + n] + v : v; });
  }
}

void bmm_native(const Tensor& a, const Tensor& b, const Tensor& out, bool accumulate) {
  const int64_t B = a.sizes()[0], M = a.sizes()[1], K = a.sizes()[2], N = b.sizes()[2];
  const int64_t gx = (N + kTile - 1) / kTile, gy = (M + kTile - 1) / kTile;
  GRAFT_CHECK(gx <= INT_MAX && gy <= 65535, "bmm (native GEMM): matrix ", M, " x ", N,
              " too large for the grid");
  const dim3 grid(static_cast<unsigned>(gx), static_cast<unsigned>(gy),
                  static_cast<unsigned>(std::min<int64_t>(B, 65535)));
  const int device = out.device().index;
  DeviceGuard guard(device);
  GRAFT_DISPATCH_FLOAT(out.dtype(), "bmm", [&] {
    launch<gemm_tiled_kernel<scalar_t>>(
        grid, kTileThreads, 0, current_stream(device), B, M, N, K, a.data_ptr<scalar_t>(),
        a.strides()[0], a.strides()[1], a.strides()[2], b.data_ptr<scalar_t>(), b.strides()[0],
        b.strides()[1], b.strides()[2], out.data_ptr<scalar_t>(), accumulate);
    GRAFT_CUDA_CHECK_LAUNCH();
  });
}

void bmm_cuda(const Tensor& a, const Tensor& b, const Tensor& out, bool accumulate) {
  GRAFT_CHECK(a.dim() == 3 && b.dim() == 3 && out.dim() == 3 && out.is_contiguous(),
              "bmm: expected 3-D operands and a contiguous output");
  GRAFT_CHECK(out.dtype() == DType::Float32 || out.dtype() == DType::Float64,
              "bmm on CUDA: unsupported dtype ", dtype_name(out.dtype()), " (float32 or float64)");
  GRAFT_CHECK(a.dtype() == out.dtype() && b.dtype() == out.dtype(), "bmm: dtype mismatch");
  if (out.numel() == 0) return;
  if (a.sizes()[2] == 0) {  // empty inner dimension: the product is zero
    if (!accumulate) kernel::fill(out.device())(out, 0.0);
    return;
  }
  // Detached: the contiguous copies bmm_cublas may make record no autograd nodes.
  if (use_native_gemm()) {
    bmm_native(a, b, out, accumulate);
  } else {
    bmm_cublas(a.detach(), b.detach(), out, accumulate);
  }
}

}  // namespace

GRAFT_REGISTER_CUDA_KERNEL(bmm, bmm_cuda);

}  // namespace graft::cuda
