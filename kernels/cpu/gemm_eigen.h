// Row-major GEMM on raw pointers through Eigen maps: the one GEMM body of the
// CPU kernels. It is compiled twice: in gemm.cpp for the build's -march, and in
// isa/gemm_avx512.cpp for AVX-512; gemm.h chooses between them at run time.
// Eigen parallelises large products itself (OpenMP) unless the caller is
// already inside a parallel region.
#pragma once

#include <Eigen/Core>
#include <cstdint>

namespace graft::cpu {

template <typename T>
using RowMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <typename T>
using ConstRowMap = Eigen::Map<const RowMatrix<T>, 0, Eigen::OuterStride<>>;
template <typename T>
using RowMap = Eigen::Map<RowMatrix<T>, 0, Eigen::OuterStride<>>;

// C[M,N] = op(A) @ op(B) (+ C when `accumulate`). op(A) is A[M,K] (lda) or,
// when trans_a, the transpose of A stored as [K,M]; likewise for B ([K,N] or [N,K]).
template <typename T>
void gemm_eigen(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const T* A,
                int64_t lda, const T* B, int64_t ldb, T* C, int64_t ldc, bool accumulate) {
  RowMap<T> c(C, M, N, Eigen::OuterStride<>(ldc));
  ConstRowMap<T> a(A, trans_a ? K : M, trans_a ? M : K, Eigen::OuterStride<>(lda));
  ConstRowMap<T> b(B, trans_b ? N : K, trans_b ? K : N, Eigen::OuterStride<>(ldb));
  if (K == 0) {
    if (!accumulate) c.setZero();
    return;
  }
  // Four spelled-out cases: Eigen picks its GEMM kernel from the static expression type.
  if (!trans_a && !trans_b) {
    if (accumulate)
      c.noalias() += a * b;
    else
      c.noalias() = a * b;
  } else if (trans_a && !trans_b) {
    if (accumulate)
      c.noalias() += a.transpose() * b;
    else
      c.noalias() = a.transpose() * b;
  } else if (!trans_a && trans_b) {
    if (accumulate)
      c.noalias() += a * b.transpose();
    else
      c.noalias() = a * b.transpose();
  } else {
    if (accumulate) {
      c.noalias() += a.transpose() * b.transpose();
    } else {
      c.noalias() = a.transpose() * b.transpose();
    }
  }
}

}  // namespace graft::cpu
