// gemm_eigen.h compiled for AVX-512 (x86-64-v4). Only the functions of
// gemm_isa.h stay global in the object the library links (see there).
#include <Eigen/Core>

#include "kernels/cpu/gemm_eigen.h"
#include "kernels/cpu/isa/gemm_isa.h"

#define GRAFT_ISA_EXPORT __attribute__((visibility("default")))

extern "C" {

GRAFT_ISA_EXPORT void graft_gemm_f32_avx512(bool trans_a, bool trans_b, int64_t M, int64_t N,
                                            int64_t K, const float* A, int64_t lda, const float* B,
                                            int64_t ldb, float* C, int64_t ldc, bool accumulate) {
  graft::cpu::gemm_eigen<float>(trans_a, trans_b, M, N, K, A, lda, B, ldb, C, ldc, accumulate);
}

GRAFT_ISA_EXPORT void graft_gemm_f64_avx512(bool trans_a, bool trans_b, int64_t M, int64_t N,
                                            int64_t K, const double* A, int64_t lda,
                                            const double* B, int64_t ldb, double* C, int64_t ldc,
                                            bool accumulate) {
  graft::cpu::gemm_eigen<double>(trans_a, trans_b, M, N, K, A, lda, B, ldb, C, ldc, accumulate);
}

GRAFT_ISA_EXPORT void graft_gemm_configure_avx512(int threads, std::ptrdiff_t l1, std::ptrdiff_t l2,
                                                  std::ptrdiff_t l3) {
  Eigen::setNbThreads(threads);
  Eigen::setCpuCacheSizes(l1, l2, l3);
}
}
