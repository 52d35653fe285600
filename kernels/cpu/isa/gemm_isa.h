// The entry points of an ISA-specific copy of the CPU GEMM (gemm_avx512.cpp).
// That object is compiled for its ISA, linked relocatably and stripped of
// every global symbol but these (CMakeLists.txt: GRAFT_ISA_OBJECT), so the
// Eigen code inside it never stands in for the baseline's copies, nor the
// reverse: both instantiate the same templates under the same names.
#pragma once

#include <cstddef>
#include <cstdint>

extern "C" {

void graft_gemm_f32_avx512(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
                           const float* A, int64_t lda, const float* B, int64_t ldb, float* C,
                           int64_t ldc, bool accumulate);
void graft_gemm_f64_avx512(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
                           const double* A, int64_t lda, const double* B, int64_t ldb, double* C,
                           int64_t ldc, bool accumulate);
// Eigen::setNbThreads and Eigen::setCpuCacheSizes of this copy.
void graft_gemm_configure_avx512(int threads, std::ptrdiff_t l1, std::ptrdiff_t l2,
                                 std::ptrdiff_t l3);
}
