// The tiled GEMM core of the hand-written kernels: the native matmul
// (matmul.cu) and the implicit-GEMM convolutions (conv.cu) differ only in how
// they read A and B and where they write C.
//
// gemm_tile computes one block's 64 x 64 tile of C = A B at rows m0.., columns
// n0..: 16 x 16 threads, each holding a 4 x 4 sub-block (rows ty + 16 i, cols
// tx + 16 j, so shared-memory reads are conflict-free), with K advancing in
// steps of 16 through shared memory. The caller's functors read a(m, k) and
// b(k, n) and store(m, n, value); they are called only for in-range indices
// (out-of-range elements load as zero).
#pragma once

#include <cstdint>

namespace graft::cuda {

constexpr int kTile = 64, kTileK = 16, kTileThreads = 256;

template <typename T, typename LoadA, typename LoadB, typename Store>
__device__ __forceinline__ void gemm_tile(int64_t m0, int64_t n0, int64_t M, int64_t N, int64_t K,
                                          const LoadA& a, const LoadB& b, const Store& store) {
  __shared__ T As[kTileK][kTile + 1];
  __shared__ T Bs[kTileK][kTile + 1];
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  T acc[4][4] = {};
  for (int64_t k0 = 0; k0 < K; k0 += kTileK) {
#pragma unroll
    for (int l = 0; l < kTile * kTileK / kTileThreads; ++l) {
      const int idx = tid + l * kTileThreads;
      const int r = idx / kTileK, kk = idx % kTileK;  // A tile: 64 rows x 16 k
      const int64_t gm = m0 + r, gk = k0 + kk;
      As[kk][r] = (gm < M && gk < K) ? a(gm, gk) : T(0);
      const int kb = idx / kTile, c = idx % kTile;  // B tile: 16 k x 64 cols
      const int64_t gkb = k0 + kb, gn = n0 + c;
      Bs[kb][c] = (gkb < K && gn < N) ? b(gkb, gn) : T(0);
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kTileK; ++kk) {
      T av[4], bv[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) av[i] = As[kk][ty + 16 * i];
#pragma unroll
      for (int j = 0; j < 4; ++j) bv[j] = Bs[kk][tx + 16 * j];
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] += av[i] * bv[j];
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int64_t gm = m0 + ty + 16 * i;
    if (gm >= M) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int64_t gn = n0 + tx + 16 * j;
      if (gn < N) store(gm, gn, acc[i][j]);
    }
  }
}

}  // namespace graft::cuda
