// Reference cuBLAS for the emulated device: column-major strided-batched GEMM
// with cuBLAS's argument checks, queued on the handle's stream.
#include <algorithm>
#include <cstdio>
#include <thread>

#include "cublas_v2.h"

struct cublasContext {
  cudaStream_t stream = nullptr;
  int device = 0;
  cublasMath_t math = CUBLAS_DEFAULT_MATH;
  std::thread::id owner = std::this_thread::get_id();
};

cublasStatus_t cublasCreate(cublasHandle_t* handle) {
  if (!handle) return CUBLAS_STATUS_INVALID_VALUE;
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess) return CUBLAS_STATUS_NOT_INITIALIZED;
  *handle = new cublasContext;
  (*handle)->device = device;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasDestroy(cublasHandle_t handle) {
  delete handle;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetStream(cublasHandle_t handle, cudaStream_t stream) {
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (graft::cuda::emu::stream_device(stream) != handle->device) return CUBLAS_STATUS_INVALID_VALUE;
  handle->stream = stream;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode) {
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  handle->math = mode;
  return CUBLAS_STATUS_SUCCESS;
}

namespace {

// Column-major: op(A) is m x k, op(B) is k x n, C is m x n with leading dim ldc.
template <typename T>
cublasStatus_t gemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                    int k, const T* alpha, const T* A, int lda, long long sA, const T* B, int ldb,
                    long long sB, const T* beta, T* C, int ldc, long long sC, int batch) {
  if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (h->owner != std::this_thread::get_id()) {
    std::fprintf(stderr,
                 "graft emulated cuBLAS: a handle is used by another host thread than "
                 "the one that created it\n");
    return CUBLAS_STATUS_NOT_INITIALIZED;
  }
  const bool an = ta == CUBLAS_OP_N, bn = tb == CUBLAS_OP_N;
  if ((ta != CUBLAS_OP_N && ta != CUBLAS_OP_T) || (tb != CUBLAS_OP_N && tb != CUBLAS_OP_T) ||
      m < 0 || n < 0 || k < 0 || batch < 0 || lda < std::max(1, an ? m : k) ||
      ldb < std::max(1, bn ? k : n) || ldc < std::max(1, m) || !alpha || !beta)
    return CUBLAS_STATUS_INVALID_VALUE;
  if (m == 0 || n == 0 || batch == 0) return CUBLAS_STATUS_SUCCESS;
  // Every element the call touches must lie in device memory of the handle's device.
  auto extent = [&](long long stride, long long ld, long long cols) {
    return (static_cast<long long>(batch) - 1) * stride + (cols - 1) * ld;
  };
  const long long a_rows = an ? m : k, a_cols = an ? k : m;
  const long long b_rows = bn ? k : n, b_cols = bn ? n : k;
  auto inside = [&](const T* p, long long stride, long long ld, long long rows, long long cols) {
    if (rows == 0 || cols == 0) return true;
    return stride >= 0 && graft::cuda::emu::is_device_range(
                              p, sizeof(T) * (extent(stride, ld, cols) + rows), h->device);
  };
  if (!inside(C, sC, ldc, m, n) ||
      (k > 0 && (!inside(A, sA, lda, a_rows, a_cols) || !inside(B, sB, ldb, b_rows, b_cols))))
    return CUBLAS_STATUS_EXECUTION_FAILED;
  const T al = *alpha, be = *beta;  // host pointer mode: read at call time
  const cudaError_t err = graft::cuda::emu::enqueue(h->stream, [=] {
    for (int bi = 0; bi < batch; ++bi) {
      const T* a = A + bi * sA;
      const T* b = B + bi * sB;
      T* c = C + bi * sC;
      for (int j = 0; j < n; ++j)
        for (int i = 0; i < m; ++i) {
          double acc = 0;
          for (int l = 0; l < k; ++l) {
            const T av = an ? a[i + static_cast<long long>(l) * lda]
                            : a[l + static_cast<long long>(i) * lda];
            const T bv = bn ? b[l + static_cast<long long>(j) * ldb]
                            : b[j + static_cast<long long>(l) * ldb];
            acc += static_cast<double>(av) * static_cast<double>(bv);
          }
          T& out = c[i + static_cast<long long>(j) * ldc];
          // beta == 0: C is not read (it may hold NaN), as in cuBLAS.
          out = static_cast<T>(al * static_cast<T>(acc) + (be == T(0) ? T(0) : be * out));
        }
    }
  });
  return err == cudaSuccess ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_EXECUTION_FAILED;
}

}  // namespace

cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t h, cublasOperation_t ta,
                                         cublasOperation_t tb, int m, int n, int k,
                                         const float* alpha, const float* A, int lda, long long sA,
                                         const float* B, int ldb, long long sB, const float* beta,
                                         float* C, int ldc, long long sC, int batch) {
  return gemm(h, ta, tb, m, n, k, alpha, A, lda, sA, B, ldb, sB, beta, C, ldc, sC, batch);
}
cublasStatus_t cublasDgemmStridedBatched(cublasHandle_t h, cublasOperation_t ta,
                                         cublasOperation_t tb, int m, int n, int k,
                                         const double* alpha, const double* A, int lda,
                                         long long sA, const double* B, int ldb, long long sB,
                                         const double* beta, double* C, int ldc, long long sC,
                                         int batch) {
  return gemm(h, ta, tb, m, n, k, alpha, A, lda, sA, B, ldb, sB, beta, C, ldc, sC, batch);
}
