// Winograd F(2x2, 3x3) convolution; see conv_winograd.h for the math.
//
// Work is done in blocks of whole tile rows ("units": one image's tile row
// th, tW tiles wide), several units side by side, possibly from several
// images, so that deep layers with few tiles per image still give the GEMMs
// a few hundred columns. Per block:
//   V[16][C][cols] <- input transform   (vertical pass over 4 padded rows as
//                                        whole vectors, then the horizontal
//                                        pass per tile, stride 2)
//   M[16][O][cols] <- 16 GEMMs
//   out            <- output transform  (the same two passes, reversed)
// Threading follows conv.cpp: images split across threads (single-threaded
// GEMMs) when the batch has at least as many images as threads, otherwise
// one block after another with Eigen threading each GEMM.
#include "kernels/cpu/conv_winograd.h"

#include <algorithm>
#include <cstring>

#include "core/parallel.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/workspace.h"

namespace graft::cpu {

namespace {

constexpr int64_t kPoints = 16;  // 4x4 transform domain

// U[k][o][c] for the filter g = w[o][c] (or w[c][o] flipped).
template <typename T>
void transform_filters(const WinogradShape& s, const T* w, bool flip_transpose, T* U) {
  const int64_t OC = s.O * s.C;
  for (int64_t o = 0; o < s.O; ++o) {
    for (int64_t c = 0; c < s.C; ++c) {
      T g[3][3];
      for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j)
          g[i][j] = flip_transpose ? w[(c * s.O + o) * 9 + (2 - i) * 3 + (2 - j)]
                                   : w[(o * s.C + c) * 9 + i * 3 + j];
      T tmp[4][3];  // G g
      for (int j = 0; j < 3; ++j) {
        tmp[0][j] = g[0][j];
        tmp[1][j] = T(0.5) * (g[0][j] + g[1][j] + g[2][j]);
        tmp[2][j] = T(0.5) * (g[0][j] - g[1][j] + g[2][j]);
        tmp[3][j] = g[2][j];
      }
      T* u = U + o * s.C + c;
      for (int i = 0; i < 4; ++i) {  // (G g) G^T
        u[(i * 4 + 0) * OC] = tmp[i][0];
        u[(i * 4 + 1) * OC] = T(0.5) * (tmp[i][0] + tmp[i][1] + tmp[i][2]);
        u[(i * 4 + 2) * OC] = T(0.5) * (tmp[i][0] - tmp[i][1] + tmp[i][2]);
        u[(i * 4 + 3) * OC] = tmp[i][2];
      }
    }
  }
}

// The row and column passes of the transforms, on whole vectors of n
// elements (one element per tile); separate functions so that the compiler
// sees unaliased pointers and vectorises them.
template <typename T>
void input_rows(const T* __restrict d0, const T* __restrict d1, const T* __restrict d2,
                const T* __restrict d3, T* __restrict v0, T* __restrict v1, T* __restrict v2,
                T* __restrict v3, int64_t n) {
  for (int64_t x = 0; x < n; ++x) {  // B^T d
    v0[x] = d0[x] - d2[x];
    v1[x] = d1[x] + d2[x];
    v2[x] = d2[x] - d1[x];
    v3[x] = d1[x] - d3[x];
  }
}

template <typename T>
void input_cols(const T* __restrict e, const T* __restrict o, T* __restrict v0, T* __restrict v1,
                T* __restrict v2, T* __restrict v3, int64_t n) {
  for (int64_t x = 0; x < n; ++x) {  // (.) B: columns 2x..2x+3 are e[x], o[x], e[x+1], o[x+1]
    v0[x] = e[x] - e[x + 1];
    v1[x] = o[x] + e[x + 1];
    v2[x] = e[x + 1] - o[x];
    v3[x] = o[x] - o[x + 1];
  }
}

template <typename T>
void output_rows(const T* __restrict m0, const T* __restrict m1, const T* __restrict m2,
                 const T* __restrict m3, T* __restrict r0, T* __restrict r1, int64_t n) {
  for (int64_t x = 0; x < n; ++x) {  // A^T m
    r0[x] = m0[x] + m1[x] + m2[x];
    r1[x] = m1[x] - m2[x] - m3[x];
  }
}

template <typename T>
void output_cols(const T* __restrict a0, const T* __restrict a1, const T* __restrict a2,
                 const T* __restrict a3, T b, T* __restrict e, T* __restrict o, int64_t n) {
  for (int64_t x = 0; x < n; ++x) {  // (.) A (+ bias): output columns 2x and 2x+1
    e[x] = a0[x] + a1[x] + a2[x] + b;
    o[x] = a1[x] - a2[x] - a3[x] + b;
  }
}

struct Tiles {
  int64_t tH, tW;  // tiles per image along each axis
  int64_t Wp;      // padded input row length the tiles of a row read: 2*tW + 2
};

// Input transform of the units [u0, u0+nu) (unit u = image u / tH, tile row
// u % tH) into V[16][C][nu*tW]. Each padded input row is split into its even
// and odd columns first, so that every later pass reads and writes
// contiguous vectors: tile tw reads padded columns 2tw..2tw+3, i.e. even[tw],
// odd[tw], even[tw+1], odd[tw+1]. `scratch` holds 17 rows of Wp elements.
template <typename T>
void transform_input(const WinogradShape& s, const Tiles& t, const T* in, int64_t u0, int64_t nu,
                     T* V, T* scratch) {
  const int64_t cols = nu * t.tW;
  const int64_t kstride = s.C * cols;
  const int64_t half = t.tW + 1;  // even (and odd) columns of a padded row
  T* __restrict row = scratch;
  T* even[4];
  T* odd[4];
  for (int r = 0; r < 4; ++r) {
    even[r] = scratch + (1 + 2 * r) * t.Wp;
    odd[r] = scratch + (2 + 2 * r) * t.Wp;
  }
  T* ve[4];
  T* vo[4];
  for (int i = 0; i < 4; ++i) {
    ve[i] = scratch + (9 + 2 * i) * t.Wp;
    vo[i] = scratch + (10 + 2 * i) * t.Wp;
  }
  // Input columns [x_lo, x_hi) of a padded row hold in[.., iw = x - pad_w].
  const int64_t x_lo = std::clamp<int64_t>(s.pad_w, 0, t.Wp);
  const int64_t x_hi = std::clamp<int64_t>(s.W + s.pad_w, x_lo, t.Wp);
  for (int64_t c = 0; c < s.C; ++c) {
    for (int64_t u = 0; u < nu; ++u) {
      const int64_t n = (u0 + u) / t.tH, th = (u0 + u) % t.tH;
      const T* plane = in + (n * s.C + c) * s.H * s.W;
      for (int r = 0; r < 4; ++r) {
        const int64_t ih = 2 * th - s.pad_h + r;
        T* __restrict e = even[r];
        T* __restrict o = odd[r];
        if (ih < 0 || ih >= s.H) {
          std::fill(e, e + half, T(0));
          std::fill(o, o + half, T(0));
          continue;
        }
        std::fill(row, row + x_lo, T(0));
        std::memcpy(row + x_lo, plane + ih * s.W + (x_lo - s.pad_w), sizeof(T) * (x_hi - x_lo));
        std::fill(row + x_hi, row + t.Wp, T(0));
        for (int64_t x = 0; x < half; ++x) {
          e[x] = row[2 * x];
          o[x] = row[2 * x + 1];
        }
      }
      input_rows(even[0], even[1], even[2], even[3], ve[0], ve[1], ve[2], ve[3], half);
      input_rows(odd[0], odd[1], odd[2], odd[3], vo[0], vo[1], vo[2], vo[3], half);
      T* dst = V + c * cols + u * t.tW;
      for (int i = 0; i < 4; ++i) {
        T* v = dst + i * 4 * kstride;
        input_cols(ve[i], vo[i], v, v + kstride, v + 2 * kstride, v + 3 * kstride, t.tW);
      }
    }
  }
}

// Output transform of M[16][O][nu*tW] into the outputs of units [u0, u0+nu).
// Each output row is produced as its even and odd columns, then interleaved.
// `scratch` holds 12 rows of tW elements.
template <typename T>
void transform_output(const WinogradShape& s, const Tiles& t, const T* M, const T* bias, int64_t u0,
                      int64_t nu, T* out, T* scratch) {
  const int64_t cols = nu * t.tW;
  const int64_t kstride = s.O * cols;
  T* r[2][4];
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 4; ++j) r[i][j] = scratch + (i * 4 + j) * t.tW;
  T* ye[2] = {scratch + 8 * t.tW, scratch + 9 * t.tW};
  T* yo[2] = {scratch + 10 * t.tW, scratch + 11 * t.tW};
  for (int64_t o = 0; o < s.O; ++o) {
    const T b = bias ? bias[o] : T(0);
    for (int64_t u = 0; u < nu; ++u) {
      const int64_t n = (u0 + u) / t.tH, th = (u0 + u) % t.tH;
      const T* m = M + o * cols + u * t.tW;
      for (int j = 0; j < 4; ++j)
        output_rows(m + j * kstride, m + (4 + j) * kstride, m + (8 + j) * kstride,
                    m + (12 + j) * kstride, r[0][j], r[1][j], t.tW);
      T* plane = out + (n * s.O + o) * s.OH * s.OW;
      for (int i = 0; i < 2 && 2 * th + i < s.OH; ++i) {
        output_cols(r[i][0], r[i][1], r[i][2], r[i][3], b, ye[i], yo[i], t.tW);
        const T* e = ye[i];
        const T* od = yo[i];
        T* dst = plane + (2 * th + i) * s.OW;
        const int64_t pairs = s.OW / 2;
        for (int64_t tw = 0; tw < pairs; ++tw) {
          dst[2 * tw] = e[tw];
          dst[2 * tw + 1] = od[tw];
        }
        if (s.OW % 2) dst[s.OW - 1] = e[pairs];
      }
    }
  }
}

// Columns per block: V and M together ~kBlockBytes (they stay in the L3
// cache between the transforms and the GEMMs), within [kMinCols, kMaxCols].
constexpr int64_t kBlockBytes = int64_t{8} << 20;
constexpr int64_t kMinCols = 128, kMaxCols = 1024;

template <typename T>
void winograd_impl(const WinogradShape& s, const T* in, const T* w, bool flip_transpose,
                   const T* bias, T* out) {
  const Tiles t{(s.OH + 1) / 2, (s.OW + 1) / 2, 2 * ((s.OW + 1) / 2) + 2};
  T* U = thread_workspace<T>(WorkspaceSlot::Kernel, static_cast<size_t>(kPoints * s.O * s.C));
  transform_filters(s, w, flip_transpose, U);
  const int64_t col_bytes = kPoints * (s.C + s.O) * static_cast<int64_t>(sizeof(T));
  const int64_t target_cols = std::clamp<int64_t>(kBlockBytes / col_bytes, kMinCols, kMaxCols);
  const int64_t unit_block = std::max<int64_t>(1, target_cols / t.tW);

  auto run_images = [&](int64_t n0, int64_t n1) {
    const int64_t u_begin = n0 * t.tH, u_end = n1 * t.tH;
    const int64_t nu_max = std::min(unit_block, u_end - u_begin);
    const int64_t cols_max = nu_max * t.tW;
    T* V =
        thread_workspace<T>(WorkspaceSlot::Columns, static_cast<size_t>(kPoints * s.C * cols_max));
    T* M =
        thread_workspace<T>(WorkspaceSlot::Gather, static_cast<size_t>(kPoints * s.O * cols_max));
    T* rows = thread_workspace<T>(WorkspaceSlot::Partial, static_cast<size_t>(17 * t.Wp));
    for (int64_t u0 = u_begin; u0 < u_end; u0 += nu_max) {
      const int64_t nu = std::min(nu_max, u_end - u0);
      const int64_t cols = nu * t.tW;
      transform_input(s, t, in, u0, nu, V, rows);
      for (int64_t k = 0; k < kPoints; ++k)
        gemm(false, false, s.O, cols, s.C, U + k * s.O * s.C, s.C, V + k * s.C * cols, cols,
             M + k * s.O * cols, cols, false);
      transform_output(s, t, M, bias, u0, nu, out, rows);
    }
  };
  if (s.N >= get_num_threads() && get_num_threads() > 1) {
    parallel_for(0, s.N, 1, run_images);
  } else {
    run_images(0, s.N);
  }
}

}  // namespace

void winograd_conv3x3(const WinogradShape& s, const float* in, const float* w, bool flip_transpose,
                      const float* bias, float* out) {
  winograd_impl(s, in, w, flip_transpose, bias, out);
}

void winograd_conv3x3(const WinogradShape& s, const double* in, const double* w,
                      bool flip_transpose, const double* bias, double* out) {
  winograd_impl(s, in, w, flip_transpose, bias, out);
}

}  // namespace graft::cpu
