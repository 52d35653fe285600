// The CPU kernels' GEMM: C[M,N] = op(A) @ op(B) (+ C when `accumulate`) on
// row-major raw pointers. op(A) is A[M,K] (lda) or, when trans_a, the
// transpose of A stored as [K,M]; likewise for B ([K,N] or [N,K]).
//
// float and double run Eigen's GEMM built for the CPU the process runs on:
// the build's -march (GRAFT_MARCH) or, on x86-64 CPUs with AVX-512, a second
// copy compiled for AVX-512 (kernels/cpu/isa/), chosen from CPUID at the first
// call. GRAFT_CPU_ISA=baseline|avx512 and set_cpu_gemm_isa() (core/parallel.h)
// override the choice. Integer GEMMs (bmm on int tensors) use the baseline.
#pragma once

#include <cstdint>
#include <type_traits>

#include "kernels/cpu/gemm_eigen.h"

namespace graft::cpu {

void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda,
          const float* B, int64_t ldb, float* C, int64_t ldc, bool accumulate);
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const double* A, int64_t lda,
          const double* B, int64_t ldb, double* C, int64_t ldc, bool accumulate);

template <typename T>
requires std::is_integral_v<T>
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const T* A, int64_t lda,
          const T* B, int64_t ldb, T* C, int64_t ldc, bool accumulate) {
  gemm_eigen<T>(trans_a, trans_b, M, N, K, A, lda, B, ldb, C, ldc, accumulate);
}

// Eigen's settings, applied to every compiled copy of its GEMM (each copy
// keeps them in its own statics). core/parallel.cpp calls these.
void set_gemm_threads(int n);
void set_gemm_cache_sizes(std::ptrdiff_t l1, std::ptrdiff_t l2, std::ptrdiff_t l3);

}  // namespace graft::cpu
