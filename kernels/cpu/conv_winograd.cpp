// Winograd F(mxm, 3x3) convolution, m = 2 or 4; see conv_winograd.h for the
// math. a = m + 2 is the side of the transform domain.
//
// Work is done in blocks of whole tile rows ("units": one image's tile row
// th, tW tiles wide), several units side by side, possibly from several
// images, so that deep layers with few tiles per image still give the GEMMs
// a few hundred columns. Per block:
//   V[a*a][C][cols] <- input transform   (vertical pass over a padded rows
//                                         as whole vectors, then the
//                                         horizontal pass per tile, stride m)
//   M[a*a][O][cols] <- a*a GEMMs
//   out             <- output transform  (the same two passes, reversed)
// The weight gradient (F(2x2,3x3) only) runs the input transform and the
// transposed output transform (of grad_out) per block and accumulates 16
// GEMMs Y[k] @ V[k]^T.
// Threading is conv.cpp's (conv_images.h).
#include "kernels/cpu/conv_winograd.h"

#include <algorithm>
#include <cstring>
#include <mutex>

#include "core/parallel.h"
#include "kernels/cpu/conv_images.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/workspace.h"

namespace graft::cpu {

namespace {

// U[k][o][c] for the filter g = w[o][c] (or w[c][o] flipped): G g G^T with
// F(2x2,3x3)'s G (4x3), points 0, 1, -1, inf, or F(4x4,3x3)'s (6x3), points
// 0, 1, -1, 1/2, -2, inf (see the F(4x4) passes below).
template <int m, typename T>
void filter_column(const T g[3], T u[m + 2]) {
  if constexpr (m == 2) {
    u[0] = g[0];
    u[1] = T(0.5) * (g[0] + g[1] + g[2]);
    u[2] = T(0.5) * (g[0] - g[1] + g[2]);
    u[3] = g[2];
  } else {
    u[0] = T(0.5) * g[0];
    u[1] = T(1.0 / 6) * (g[0] + g[1] + g[2]);
    u[2] = T(1.0 / 6) * (g[1] - g[0] - g[2]);
    u[3] = T(-16.0 / 15) * g[0] + T(-8.0 / 15) * g[1] + T(-4.0 / 15) * g[2];
    u[4] = T(1.0 / 30) * g[0] + T(-1.0 / 15) * g[1] + T(2.0 / 15) * g[2];
    u[5] = T(0.5) * g[2];
  }
}

template <int m, typename T>
void transform_filters(const WinogradShape& s, const T* w, bool flip_transpose, T* U) {
  constexpr int a = m + 2;
  const int64_t OC = s.O * s.C;
  for (int64_t o = 0; o < s.O; ++o) {
    for (int64_t c = 0; c < s.C; ++c) {
      T gt[3][3];  // the filter g transposed: gt[j] is its column j
      for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j)
          gt[j][i] = flip_transpose ? w[(c * s.O + o) * 9 + (2 - i) * 3 + (2 - j)]
                                    : w[(o * s.C + c) * 9 + i * 3 + j];
      T gc[3][a];  // G g, by column: gc[j][i] = (G g)[i][j]
      for (int j = 0; j < 3; ++j) filter_column<m>(gt[j], gc[j]);
      T* u = U + o * s.C + c;
      for (int i = 0; i < a; ++i) {  // (G g) G^T
        const T row[3] = {gc[0][i], gc[1][i], gc[2][i]};
        T ui[a];
        filter_column<m>(row, ui);
        for (int j = 0; j < a; ++j) u[(i * a + j) * OC] = ui[j];
      }
    }
  }
}

// The passes of the transforms run over whole multiples of kLanes elements,
// so that they vectorise without scalar tails (rows of 4-28 tiles would be
// mostly tail). The extra lanes compute junk that is never stored in the
// output: scratch rows are long enough, and V and M rows are `ld` >= cols +
// kLanes apart, a unit's junk landing on the next unit's columns (written
// after it) or on the row's padding. Each pass is its own function so that
// the compiler sees unaliased pointers.
constexpr int64_t kLanes = 8;

int64_t round_up(int64_t n) { return (n + kLanes - 1) / kLanes * kLanes; }

// F(2x2,3x3) passes. B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1],
// A^T = [1 1 1 0; 0 1 -1 -1].
template <typename T>
void input_rows(const T* __restrict d0, const T* __restrict d1, const T* __restrict d2,
                const T* __restrict d3, T* __restrict v0, T* __restrict v1, T* __restrict v2,
                T* __restrict v3, int64_t n) {
  for (int64_t x = 0; x < n; ++x) {  // B^T d, four input rows at once
    v0[x] = d0[x] - d2[x];
    v1[x] = d1[x] + d2[x];
    v2[x] = d2[x] - d1[x];
    v3[x] = d1[x] - d3[x];
  }
}

template <typename T>
void input_cols(const T* __restrict r, T* __restrict v0, T* __restrict v1, T* __restrict v2,
                T* __restrict v3, int64_t n) {
  for (int64_t x = 0; x < n; ++x) {  // (.) B: tile x reads columns 2x..2x+3 of row r
    v0[x] = r[2 * x] - r[2 * x + 2];
    v1[x] = r[2 * x + 1] + r[2 * x + 2];
    v2[x] = r[2 * x + 2] - r[2 * x + 1];
    v3[x] = r[2 * x + 1] - r[2 * x + 3];
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
                 const T* __restrict a3, T b, T* __restrict y, int64_t n) {
  for (int64_t x = 0; x < n; ++x) {  // (.) A (+ bias): output columns 2x and 2x+1
    y[2 * x] = a0[x] + a1[x] + a2[x] + b;
    y[2 * x + 1] = a1[x] - a2[x] - a3[x] + b;
  }
}

// F(4x4,3x3) passes, on the points 0, 1, -1, 1/2, -2 and inf rather than the
// usual 0, 1, -1, 2, -2, inf: the point 1/2 keeps A's powers of the points at
// most 8 and G's entries near 1, which cuts float32 error 2.5x (Barabasz et
// al., 2019; tests/winograd_points.py derives the matrices and measures it).
// B^T = [2 -3 -4 3 2 0; 0 -2 1 5 2 0; 0 2 -5 1 2 0; 0 -2 -1 2 1 0;
//        0 1 -2 -1 2 0; 0 2 -3 -4 3 2],
// A^T = [1 1 1 1 1 0; 0 1 -1 1/2 -2 0; 0 1 1 1/4 4 0; 0 1 -1 1/8 -8 1].
// b_transpose4 is one column of B^T d, a_transpose4 one column of A^T m.
template <typename T>
struct Points6 {
  T v[6];
};

template <typename T>
inline Points6<T> b_transpose4(T d0, T d1, T d2, T d3, T d4, T d5) {
  return {{T(2) * (d0 + d4) + T(3) * (d3 - d1) - T(4) * d2, T(2) * (d4 - d1) + d2 + T(5) * d3,
           T(2) * (d1 + d4) - T(5) * d2 + d3, T(2) * (d3 - d1) + d4 - d2,
           T(2) * (d4 - d2) + d1 - d3, T(2) * (d1 + d5) + T(3) * (d4 - d2) - T(4) * d3}};
}

template <typename T>
struct Rows4 {
  T r[4];
};

template <typename T>
inline Rows4<T> a_transpose4(T m0, T m1, T m2, T m3, T m4, T m5) {
  const T s12 = m1 + m2, d12 = m1 - m2;
  return {{m0 + s12 + m3 + m4, d12 + T(0.5) * m3 - T(2) * m4, s12 + T(0.25) * m3 + T(4) * m4,
           d12 + T(0.125) * m3 - T(8) * m4 + m5}};
}

template <typename T>
void input_rows4(const T* __restrict d0, const T* __restrict d1, const T* __restrict d2,
                 const T* __restrict d3, const T* __restrict d4, const T* __restrict d5,
                 T* __restrict v0, T* __restrict v1, T* __restrict v2, T* __restrict v3,
                 T* __restrict v4, T* __restrict v5, int64_t n) {
  for (int64_t x = 0; x < n; ++x) {  // B^T d, six input rows at once
    const Points6<T> p = b_transpose4(d0[x], d1[x], d2[x], d3[x], d4[x], d5[x]);
    v0[x] = p.v[0], v1[x] = p.v[1], v2[x] = p.v[2], v3[x] = p.v[3], v4[x] = p.v[4], v5[x] = p.v[5];
  }
}

template <typename T>
void input_cols4(const T* __restrict r, T* __restrict v0, T* __restrict v1, T* __restrict v2,
                 T* __restrict v3, T* __restrict v4, T* __restrict v5, int64_t n) {
  for (int64_t x = 0; x < n; ++x) {  // (.) B: tile x reads columns 4x..4x+5 of row r
    const T* d = r + 4 * x;
    const Points6<T> p = b_transpose4(d[0], d[1], d[2], d[3], d[4], d[5]);
    v0[x] = p.v[0], v1[x] = p.v[1], v2[x] = p.v[2], v3[x] = p.v[3], v4[x] = p.v[4], v5[x] = p.v[5];
  }
}

template <typename T>
void output_rows4(const T* __restrict m0, const T* __restrict m1, const T* __restrict m2,
                  const T* __restrict m3, const T* __restrict m4, const T* __restrict m5,
                  T* __restrict r0, T* __restrict r1, T* __restrict r2, T* __restrict r3,
                  int64_t n) {
  for (int64_t x = 0; x < n; ++x) {  // A^T m
    const Rows4<T> o = a_transpose4(m0[x], m1[x], m2[x], m3[x], m4[x], m5[x]);
    r0[x] = o.r[0], r1[x] = o.r[1], r2[x] = o.r[2], r3[x] = o.r[3];
  }
}

template <typename T>
void output_cols4(const T* __restrict a0, const T* __restrict a1, const T* __restrict a2,
                  const T* __restrict a3, const T* __restrict a4, const T* __restrict a5, T b,
                  T* __restrict y, int64_t n) {
  for (int64_t x = 0; x < n; ++x) {  // (.) A (+ bias): output columns 4x..4x+3
    const Rows4<T> o = a_transpose4(a0[x], a1[x], a2[x], a3[x], a4[x], a5[x]);
    for (int i = 0; i < 4; ++i) y[4 * x + i] = o.r[i] + b;
  }
}

// The four passes for tile size m, on arrays of row pointers.
template <int m, typename T>
void rows_in(const T* const* d, T* const* v, int64_t n) {
  if constexpr (m == 2)
    input_rows(d[0], d[1], d[2], d[3], v[0], v[1], v[2], v[3], n);
  else
    input_rows4(d[0], d[1], d[2], d[3], d[4], d[5], v[0], v[1], v[2], v[3], v[4], v[5], n);
}

// Row r's tiles into the a points v, kstride apart.
template <int m, typename T>
void cols_in(const T* r, T* v, int64_t kstride, int64_t n) {
  if constexpr (m == 2)
    input_cols(r, v, v + kstride, v + 2 * kstride, v + 3 * kstride, n);
  else
    input_cols4(r, v, v + kstride, v + 2 * kstride, v + 3 * kstride, v + 4 * kstride,
                v + 5 * kstride, n);
}

// The a points' rows mk, rstride apart, into the m rows r.
template <int m, typename T>
void rows_out(const T* mk, int64_t rstride, T* const* r, int64_t n) {
  if constexpr (m == 2)
    output_rows(mk, mk + rstride, mk + 2 * rstride, mk + 3 * rstride, r[0], r[1], n);
  else
    output_rows4(mk, mk + rstride, mk + 2 * rstride, mk + 3 * rstride, mk + 4 * rstride,
                 mk + 5 * rstride, r[0], r[1], r[2], r[3], n);
}

template <int m, typename T>
void cols_out(const T* const* r, T b, T* y, int64_t n) {
  if constexpr (m == 2)
    output_cols(r[0], r[1], r[2], r[3], b, y, n);
  else
    output_cols4(r[0], r[1], r[2], r[3], r[4], r[5], b, y, n);
}

template <typename T>
void grad_rows(const T* __restrict a, const T* __restrict b, T* __restrict t0, T* __restrict t1,
               T* __restrict t2, T* __restrict t3, int64_t n) {
  for (int64_t x = 0; x < n; ++x) {  // A (a; b): rows of the transposed output transform
    t0[x] = a[x];
    t1[x] = a[x] + b[x];
    t2[x] = a[x] - b[x];
    t3[x] = -b[x];
  }
}

template <typename T>
void grad_cols(const T* __restrict r, T* __restrict t0, T* __restrict t1, T* __restrict t2,
               T* __restrict t3, int64_t n) {
  for (int64_t x = 0; x < n; ++x) {  // (.) A^T: tile x reads columns 2x, 2x+1
    t0[x] = r[2 * x];
    t1[x] = r[2 * x] + r[2 * x + 1];
    t2[x] = r[2 * x] - r[2 * x + 1];
    t3[x] = -r[2 * x + 1];
  }
}

// Copies the `width` elements at src into buf[pad, pad + width), clipped to
// buf[0, wide), with zeros elsewhere in buf[0, wide); returns buf.
template <typename T>
const T* padded_row(const T* src, int64_t width, int64_t pad, int64_t wide, T* buf) {
  const int64_t lo = std::min(pad, wide), hi = std::clamp(width + pad, lo, wide);
  std::fill(buf, buf + lo, T(0));
  std::memcpy(buf + lo, src + (lo - pad), sizeof(T) * (hi - lo));
  std::fill(buf + hi, buf + wide, T(0));
  return buf;
}

template <int m>
struct Tiles {
  static constexpr int a = m + 2;                     // transform side
  static constexpr int64_t points = a * a;            // GEMMs per block
  static constexpr int64_t scratch_rows = m * a + 1;  // the most a transform uses
  int64_t tH, tW;                                     // tiles per image along each axis
  int64_t nv;                                         // tile-wise pass length: tW rounded up
  int64_t wide;  // row-wise pass length: m * nv + 2 (the columns tiles read) rounded up
  explicit Tiles(const WinogradShape& s)
      : tH((s.OH + m - 1) / m),
        tW((s.OW + m - 1) / m),
        nv(round_up(tW)),
        wide(round_up(m * nv + 2)) {}
};

// Input transform of the units [u0, u0+nu) (unit u = image u / tH, tile row
// u % tH) into V[a*a][C][ld]: the a input rows a tile row reads, padded,
// then B^T over the rows as whole vectors, then B per tile (stride m).
// `scratch` holds 2a + 1 rows of t.wide.
template <int m, typename T>
void transform_input(const WinogradShape& s, const Tiles<m>& t, const T* in, int64_t u0, int64_t nu,
                     T* V, int64_t ld, T* scratch) {
  constexpr int a = Tiles<m>::a;
  const int64_t kstride = s.C * ld;
  T* __restrict zero = scratch;
  T* d[a];
  T* v[a];
  for (int r = 0; r < a; ++r) {
    d[r] = scratch + (1 + r) * t.wide;
    v[r] = scratch + (1 + a + r) * t.wide;
  }
  std::fill(zero, zero + t.wide, T(0));
  for (int64_t c = 0; c < s.C; ++c) {
    for (int64_t u = 0; u < nu; ++u) {
      const int64_t n = (u0 + u) / t.tH, th = (u0 + u) % t.tH;
      const T* plane = in + (n * s.C + c) * s.H * s.W;
      const T* rows[a];
      for (int r = 0; r < a; ++r) {
        const int64_t ih = m * th - s.pad_h + r;
        rows[r] =
            ih < 0 || ih >= s.H ? zero : padded_row(plane + ih * s.W, s.W, s.pad_w, t.wide, d[r]);
      }
      rows_in<m>(rows, v, t.wide);
      T* dst = V + c * ld + u * t.tW;
      for (int i = 0; i < a; ++i) cols_in<m>(v[i], dst + i * a * kstride, kstride, t.nv);
    }
  }
}

// Output transform of M[a*a][O][ld] into the outputs of units [u0, u0+nu):
// A^T over the points' rows as whole vectors, then A per tile into a row of
// m * nv outputs, of which OW are copied. `scratch` holds m*a + 1 rows of
// t.wide.
template <int m, typename T>
void transform_output(const WinogradShape& s, const Tiles<m>& t, const T* M, int64_t ld,
                      const T* bias, int64_t u0, int64_t nu, T* out, T* scratch) {
  constexpr int a = Tiles<m>::a;
  const int64_t kstride = s.O * ld;
  T* r[a][m];  // r[j][i]: row i of A^T m over column j of the points
  for (int j = 0; j < a; ++j)
    for (int i = 0; i < m; ++i) r[j][i] = scratch + (i * a + j) * t.wide;
  T* y = scratch + m * a * t.wide;
  for (int64_t o = 0; o < s.O; ++o) {
    const T b = bias ? bias[o] : T(0);
    for (int64_t u = 0; u < nu; ++u) {
      const int64_t n = (u0 + u) / t.tH, th = (u0 + u) % t.tH;
      const T* mo = M + o * ld + u * t.tW;
      for (int j = 0; j < a; ++j) rows_out<m>(mo + j * kstride, a * kstride, r[j], t.nv);
      T* plane = out + (n * s.O + o) * s.OH * s.OW;
      for (int i = 0; i < m && m * th + i < s.OH; ++i) {
        const T* ri[a];
        for (int j = 0; j < a; ++j) ri[j] = r[j][i];
        cols_out<m>(ri, b, y, t.nv);
        std::memcpy(plane + (m * th + i) * s.OW, y, sizeof(T) * s.OW);
      }
    }
  }
}

// Output-gradient transform (F(2x2,3x3)) of the units [u0, u0+nu) into
// Y[16][O][ld]: (A gy A^T)[k] for each 2x2 tile gy of grad_out (zero past
// OH x OW), the transposed output transform. `scratch` holds 7 rows of t.wide.
template <typename T>
void transform_grad_output(const WinogradShape& s, const Tiles<2>& t, const T* gout, int64_t u0,
                           int64_t nu, T* Y, int64_t ld, T* scratch) {
  const int64_t kstride = s.O * ld;
  T* __restrict zero = scratch;
  T* d[2] = {scratch + t.wide, scratch + 2 * t.wide};
  T* r[4];
  for (int i = 0; i < 4; ++i) r[i] = scratch + (3 + i) * t.wide;
  std::fill(zero, zero + t.wide, T(0));
  for (int64_t o = 0; o < s.O; ++o) {
    for (int64_t u = 0; u < nu; ++u) {
      const int64_t n = (u0 + u) / t.tH, th = (u0 + u) % t.tH;
      const T* plane = gout + (n * s.O + o) * s.OH * s.OW;
      const T* rows[2];
      for (int i = 0; i < 2; ++i) {
        const int64_t oh = 2 * th + i;
        rows[i] = oh >= s.OH ? zero : padded_row(plane + oh * s.OW, s.OW, int64_t{0}, t.wide, d[i]);
      }
      grad_rows(rows[0], rows[1], r[0], r[1], r[2], r[3], t.wide);
      T* dst = Y + o * ld + u * t.tW;
      for (int i = 0; i < 4; ++i) {
        T* g = dst + i * 4 * kstride;
        grad_cols(r[i], g, g + kstride, g + 2 * kstride, g + 3 * kstride, t.nv);
      }
    }
  }
}

// gw[o][c] += G^T gU[.][o][c] G, the 3x3 filter gradient from its F(2x2,3x3)
// transform.
template <typename T>
void add_filter_grads(const WinogradShape& s, const T* gU, T* gw) {
  const int64_t OC = s.O * s.C;
  for (int64_t oc = 0; oc < OC; ++oc) {
    T x[4][4];
    for (int k = 0; k < 16; ++k) x[k / 4][k % 4] = gU[k * OC + oc];
    T r[3][4];  // G^T x
    for (int j = 0; j < 4; ++j) {
      r[0][j] = x[0][j] + T(0.5) * (x[1][j] + x[2][j]);
      r[1][j] = T(0.5) * (x[1][j] - x[2][j]);
      r[2][j] = T(0.5) * (x[1][j] + x[2][j]) + x[3][j];
    }
    T* g = gw + oc * 9;
    for (int i = 0; i < 3; ++i) {  // (G^T x) G
      g[i * 3 + 0] += r[i][0] + T(0.5) * (r[i][1] + r[i][2]);
      g[i * 3 + 1] += T(0.5) * (r[i][1] - r[i][2]);
      g[i * 3 + 2] += T(0.5) * (r[i][1] + r[i][2]) + r[i][3];
    }
  }
}

// Columns per block: V and M together ~kBlockBytes (they stay in the L3
// cache between the transforms and the GEMMs), within [kMinCols, kMaxCols].
constexpr int64_t kBlockBytes = int64_t{8} << 20;
constexpr int64_t kMinCols = 128, kMaxCols = 1024;

// Calls fn(u0, nu, V, M, ld, scratch) over the units of images [n0, n1) in
// blocks of whole units, ~kBlockBytes of V[a*a][C][ld] and M[a*a][O][ld] (or
// Y) per block, with the thread's buffers.
template <typename T, int m, typename Fn>
void for_blocks(const WinogradShape& s, const Tiles<m>& t, int64_t n0, int64_t n1, Fn&& fn) {
  constexpr int64_t points = Tiles<m>::points;
  const int64_t col_bytes = points * (s.C + s.O) * static_cast<int64_t>(sizeof(T));
  const int64_t target_cols = std::clamp<int64_t>(kBlockBytes / col_bytes, kMinCols, kMaxCols);
  const int64_t unit_block = std::max<int64_t>(1, target_cols / t.tW);
  const int64_t u_begin = n0 * t.tH, u_end = n1 * t.tH;
  const int64_t nu_max = std::min(unit_block, u_end - u_begin);
  const int64_t cols_max = nu_max * t.tW;
  const int64_t ld = cols_max + kLanes;
  T* V = thread_workspace<T>(WorkspaceSlot::Columns, static_cast<size_t>(points * s.C * ld));
  T* M = thread_workspace<T>(WorkspaceSlot::Gather, static_cast<size_t>(points * s.O * ld));
  T* scratch = thread_workspace<T>(WorkspaceSlot::Partial,
                                   static_cast<size_t>(Tiles<m>::scratch_rows * t.wide));
  // Nothing writes M's padding, which the last unit's junk lanes may read:
  // keep it finite.
  for (int64_t r = 0; r < points * s.O; ++r)
    std::fill(M + r * ld + cols_max, M + (r + 1) * ld, T(0));
  for (int64_t u0 = u_begin; u0 < u_end; u0 += nu_max)
    fn(u0, std::min(nu_max, u_end - u0), V, M, ld, scratch);
}

template <int m, typename T>
void winograd_impl(const WinogradShape& s, const T* in, const T* w, bool flip_transpose,
                   const T* bias, T* out) {
  constexpr int64_t points = Tiles<m>::points;
  const Tiles<m> t(s);
  T* U = thread_workspace<T>(WorkspaceSlot::Kernel, static_cast<size_t>(points * s.O * s.C));
  transform_filters<m>(s, w, flip_transpose, U);
  for_images(s.N, [&](int64_t n0, int64_t n1) {
    for_blocks<T>(s, t, n0, n1, [&](int64_t u0, int64_t nu, T* V, T* M, int64_t ld, T* scratch) {
      const int64_t cols = nu * t.tW;
      transform_input(s, t, in, u0, nu, V, ld, scratch);
      for (int64_t k = 0; k < points; ++k)
        gemm(false, false, s.O, cols, s.C, U + k * s.O * s.C, s.C, V + k * s.C * ld, ld,
             M + k * s.O * ld, ld, false);
      transform_output(s, t, M, ld, bias, u0, nu, out, scratch);
    });
  });
}

template <typename T>
void winograd_dispatch(const WinogradShape& s, const T* in, const T* w, bool flip_transpose,
                       const T* bias, T* out) {
  if (s.tile == 4)
    winograd_impl<4>(s, in, w, flip_transpose, bias, out);
  else
    winograd_impl<2>(s, in, w, flip_transpose, bias, out);
}

// gU[k] = sum over tiles of Y[k] @ V[k]^T (per thread), then
// gw = G^T gU G, the per-thread parts summed under a lock.
template <typename T>
void winograd_weight_grad_impl(const WinogradShape& s, const T* in, const T* gout, T* gw) {
  constexpr int64_t points = Tiles<2>::points;
  const Tiles<2> t(s);
  std::fill(gw, gw + s.O * s.C * 9, T(0));
  std::mutex merge;
  for_images(s.N, [&](int64_t n0, int64_t n1) {
    T* gU = thread_workspace<T>(WorkspaceSlot::Kernel, static_cast<size_t>(points * s.O * s.C));
    std::fill(gU, gU + points * s.O * s.C, T(0));
    for_blocks<T>(s, t, n0, n1, [&](int64_t u0, int64_t nu, T* V, T* Y, int64_t ld, T* scratch) {
      const int64_t cols = nu * t.tW;
      transform_input(s, t, in, u0, nu, V, ld, scratch);
      transform_grad_output(s, t, gout, u0, nu, Y, ld, scratch);
      for (int64_t k = 0; k < points; ++k)
        gemm(false, true, s.O, s.C, cols, Y + k * s.O * ld, ld, V + k * s.C * ld, ld,
             gU + k * s.O * s.C, s.C, true);
    });
    std::lock_guard<std::mutex> lock(merge);
    add_filter_grads(s, gU, gw);
  });
}

}  // namespace

void winograd_conv3x3(const WinogradShape& s, const float* in, const float* w, bool flip_transpose,
                      const float* bias, float* out) {
  winograd_dispatch(s, in, w, flip_transpose, bias, out);
}

void winograd_conv3x3(const WinogradShape& s, const double* in, const double* w,
                      bool flip_transpose, const double* bias, double* out) {
  winograd_dispatch(s, in, w, flip_transpose, bias, out);
}

void winograd_conv3x3_weight_grad(const WinogradShape& s, const float* in, const float* gout,
                                  float* gw) {
  winograd_weight_grad_impl(s, in, gout, gw);
}

void winograd_conv3x3_weight_grad(const WinogradShape& s, const double* in, const double* gout,
                                  double* gw) {
  winograd_weight_grad_impl(s, in, gout, gw);
}

}  // namespace graft::cpu
