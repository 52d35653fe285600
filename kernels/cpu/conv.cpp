// CPU 2-D convolution: im2col + GEMM (Eigen), with a direct path for 1x1,
// stride-1, unpadded convolutions whose input already is the column matrix.
//
// Kernel taps that read only padding for every output position (all but the
// centre of a 3x3 kernel over a 1x1 image, as in ResNet's layer4 at 32x32
// inputs) are cropped away before the GEMM: the convolution runs with the live
// sub-kernel and the padding shifted to match, and their weight gradient is
// exactly zero. Only the products with padding zeros are dropped. (Going
// further, splitting the output into regions whose pixels share one window of
// live taps so that border pixels skip their padding too, was measured at
// 32x32 inputs and dropped: the 4x4 layers ran 1.4-1.7x slower and the 2x2
// ones no faster, as each region's GEMM is a few columns wide.)
//
// Per group and chunk of nb images, with K = C/groups*kh*kw and P = OH*OW,
// the columns of the nb images sit side by side (col[K, nb*P]) so one GEMM
// covers the whole chunk:
//   forward          out[Og,nb*P]  = W[Og,K] @ col[K,nb*P]           (+ bias)
//   backward input   gcol[K,nb*P]  = W[Og,K]^T @ gout[Og,nb*P], then col2im
//   backward weight  gW[Og,K]     += gout[Og,nb*P] @ col[K,nb*P]^T
// Why chunks: deep layers have tiny outputs (P = 1..64 at 32x32 inputs), and
// one GEMM per image would stream the whole weight matrix from memory once
// per image with a degenerate N = P. Chunks are sized to ~kChunkColumns
// columns, so large images (P >= kChunkColumns) still run one image per GEMM
// writing straight into the output, and small ones share the weight traffic.
// Chunks of several images pack gout / unpack out through an [Og, nb*P]
// buffer (cheap next to the GEMM).
//
// Threading: when the batch has at least as many images as threads, images
// are split across threads and each GEMM runs single-threaded (Eigen does not
// nest inside a parallel region); otherwise images run one after another and
// Eigen threads each GEMM. Column buffers are per-thread and grow-only.
//
// 3x3 stride-1 convolutions may run Winograd F(2x2,3x3) or F(4x4,3x3)
// instead, forward and both gradients (conv_winograd.h; the choice is
// GRAFT_CONV_CPU, see core/parallel.h and winograd_tile below).
#include <algorithm>
#include <atomic>
#include <cstring>
#include <mutex>
#include <string>

#include "core/env.h"
#include "core/error.h"
#include "core/kernels.h"
#include "core/parallel.h"
#include "kernels/cpu/conv_images.h"
#include "kernels/cpu/conv_winograd.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/workspace.h"

namespace graft {

namespace {

CpuConvAlgo conv_algo_from_env() {
  constexpr CpuConvAlgo kAlgos[] = {CpuConvAlgo::Auto, CpuConvAlgo::Gemm, CpuConvAlgo::Winograd,
                                    CpuConvAlgo::Winograd4};
  return kAlgos[env_choice("GRAFT_CONV_CPU",
                           {cpu_conv_algo_name(kAlgos[0]), cpu_conv_algo_name(kAlgos[1]),
                            cpu_conv_algo_name(kAlgos[2]), cpu_conv_algo_name(kAlgos[3])},
                           0)];
}

std::atomic<int> g_conv_algo{-1};  // -1 until the first convolution or set_cpu_conv_algo()

}  // namespace

const char* cpu_conv_algo_name(CpuConvAlgo algo) {
  switch (algo) {
    case CpuConvAlgo::Gemm:
      return "gemm";
    case CpuConvAlgo::Winograd:
      return "winograd";
    case CpuConvAlgo::Winograd4:
      return "winograd4";
    default:
      return "auto";
  }
}

CpuConvAlgo cpu_conv_algo() {
  int v = g_conv_algo.load(std::memory_order_relaxed);
  if (v < 0) {
    v = static_cast<int>(conv_algo_from_env());
    g_conv_algo.store(v, std::memory_order_relaxed);
  }
  return static_cast<CpuConvAlgo>(v);
}

void set_cpu_conv_algo(CpuConvAlgo algo) {
  g_conv_algo.store(static_cast<int>(algo), std::memory_order_relaxed);
}

}  // namespace graft

namespace graft::cpu {

namespace {

struct ConvGeometry {
  int64_t N, C, H, W;  // input
  int64_t O, OH, OW;   // output
  int64_t kh, kw;
  int64_t groups, Cg, Og;  // channels per group
  int64_t K, P;            // GEMM inner size and output pixels per image
  bool direct;             // 1x1, stride 1, no padding: the input is the column matrix

  ConvGeometry(const Shape& in, const Shape& w, const Shape& out, const F::Conv2dParams& p)
      : N(in[0]),
        C(in[1]),
        H(in[2]),
        W(in[3]),
        O(out[1]),
        OH(out[2]),
        OW(out[3]),
        kh(w[2]),
        kw(w[3]),
        groups(p.groups),
        Cg(in[1] / p.groups),
        Og(out[1] / p.groups),
        K(Cg * kh * kw),
        P(out[2] * out[3]),
        direct(is_direct(kh, kw, p)) {}

  static bool is_direct(int64_t kh, int64_t kw, const F::Conv2dParams& p) {
    return kh == 1 && kw == 1 && p.stride_h == 1 && p.stride_w == 1 && p.pad_h == 0 && p.pad_w == 0;
  }
};

// The Winograd tile a convolution's forward and input gradient run with: 0
// (im2col + GEMM), 2 (F(2x2,3x3)) or 4 (F(4x4,3x3)); its weight gradient
// runs F(2x2,3x3) whenever this is not 0. It needs a 3x3 stride-1 kernel,
// groups 1, no dilation and padding 0-2 (the input gradient runs with padding
// 2 - pad). Auto takes F(2x2,3x3) where it was measured to pay
// (benchmarks/RESULTS.md, round 9): outputs of at least kWinogradMinSide
// pixels a side (ResNet18 at 224x224: layers 1-3 ran 1.2-1.4x faster; the
// 7x7 layer4, whose 2x2 tiles waste a quarter of their work, and every layer
// at 32x32 lost) and batches that keep every thread on its own images (the
// transforms are not split across threads within an image).
// Auto takes F(4x4,3x3) where every side is at least kWinograd4MinSide:
// ResNet18's 56x56 and 28x28 layers ran 1.25-1.4x faster than with
// F(2x2,3x3), its 14x14 layer 0.75x (4x4 tiles overhang 14 by 2 of 16)
// (benchmarks/RESULTS.md, round 13). Its float32 error, on the points 0, 1,
// -1, 1/2, -2, inf, is ~4x im2col's (NnOps.Conv2dWinogradFloat32ErrorNearGemms).
constexpr int64_t kWinogradMinSide = 14;
constexpr int64_t kWinograd4MinSide = 28;

int winograd_tile(const ConvGeometry& g, const F::Conv2dParams& p) {
  const bool fits = g.kh == 3 && g.kw == 3 && g.groups == 1 && p.stride_h == 1 && p.stride_w == 1 &&
                    p.dilation_h == 1 && p.dilation_w == 1 && p.pad_h >= 0 && p.pad_h <= 2 &&
                    p.pad_w >= 0 && p.pad_w <= 2;
  if (!fits) return 0;
  switch (cpu_conv_algo()) {
    case CpuConvAlgo::Gemm:
      return 0;
    case CpuConvAlgo::Winograd:
      return 2;
    case CpuConvAlgo::Winograd4:
      return 4;
    case CpuConvAlgo::Auto:
      break;
  }
  const int64_t side = std::min({g.OH, g.OW, g.H, g.W});
  if (g.N < get_num_threads()) return 0;
  return side >= kWinograd4MinSide ? 4 : side >= kWinogradMinSide ? 2 : 0;
}

template <typename T>
void winograd_forward(const ConvGeometry& g, const F::Conv2dParams& p, int tile, const T* in,
                      const T* w, const T* b, T* out) {
  winograd_conv3x3(WinogradShape{g.N, g.C, g.H, g.W, g.O, g.OH, g.OW, p.pad_h, p.pad_w, tile}, in,
                   w, false, b, out);
}

// The input gradient as the forward convolution of grad_out (see conv_winograd.h).
template <typename T>
void winograd_backward_input(const ConvGeometry& g, const F::Conv2dParams& p, int tile, const T* go,
                             const T* w, T* gi) {
  winograd_conv3x3(
      WinogradShape{g.N, g.O, g.OH, g.OW, g.C, g.H, g.W, 2 - p.pad_h, 2 - p.pad_w, tile}, go, w,
      true, nullptr, gi);
}

template <typename T>
void winograd_backward_weight(const ConvGeometry& g, const F::Conv2dParams& p, const T* in,
                              const T* go, T* gw) {
  winograd_conv3x3_weight_grad(WinogradShape{g.N, g.C, g.H, g.W, g.O, g.OH, g.OW, p.pad_h, p.pad_w},
                               in, go, gw);
}

// The live taps [lo, hi) of a kernel along one axis: tap i is live when some
// output position o reads input index o*stride - pad + i*dilation inside
// [0, in). Returns false when they are not one non-empty contiguous range.
bool live_tap_range(int64_t in, int64_t out, int64_t k, int64_t stride, int64_t pad,
                    int64_t dilation, int64_t& lo, int64_t& hi) {
  lo = hi = -1;
  for (int64_t i = 0; i < k; ++i) {
    const int64_t first = i * dilation - pad;  // input index read by output 0
    const int64_t o = first >= 0 ? 0 : (-first + stride - 1) / stride;  // first o reading >= 0
    if (o >= out || first + o * stride >= in) continue;                 // only padding
    if (lo >= 0 && hi != i) return false;                               // a dead tap between
    if (lo < 0) lo = i;
    hi = i + 1;
  }
  return lo >= 0;
}

// A convolution restricted to its live taps: the kernel window
// [h0, h0+kh) x [w0, w0+kw) with the padding moved by the cropped front taps,
// so output o still reads the same input elements. `cropped` is false when
// every tap is live (or the live taps are not a rectangle): run as given.
struct LiveTaps {
  bool cropped = false;
  int64_t h0 = 0, w0 = 0, kh = 0, kw = 0;
  F::Conv2dParams params;
};

LiveTaps find_live_taps(const ConvGeometry& g, const F::Conv2dParams& p) {
  LiveTaps t;
  t.params = p;
  int64_t h0, h1, w0, w1;
  if (!live_tap_range(g.H, g.OH, g.kh, p.stride_h, p.pad_h, p.dilation_h, h0, h1) ||
      !live_tap_range(g.W, g.OW, g.kw, p.stride_w, p.pad_w, p.dilation_w, w0, w1) ||
      (h1 - h0 == g.kh && w1 - w0 == g.kw))
    return t;
  t.cropped = true;
  t.h0 = h0;
  t.w0 = w0;
  t.kh = h1 - h0;
  t.kw = w1 - w0;
  t.params.pad_h -= h0 * p.dilation_h;  // may go negative: im2col's index arithmetic is signed
  t.params.pad_w -= w0 * p.dilation_w;
  return t;
}

ConvGeometry crop_geometry(ConvGeometry g, const LiveTaps& t) {
  if (!t.cropped) return g;
  g.kh = t.kh;
  g.kw = t.kw;
  g.K = g.Cg * t.kh * t.kw;
  g.direct = ConvGeometry::is_direct(t.kh, t.kw, t.params);
  return g;
}

// Copies the live window of w ([O*Cg, kh, kw] in `full`'s geometry) into
// live ([O*Cg, t.kh, t.kw]); uncrop_kernel writes it back, zeros elsewhere.
template <typename T>
void crop_kernel(const T* w, const ConvGeometry& full, const LiveTaps& t, T* live) {
  for (int64_t r = 0; r < full.O * full.Cg; ++r)
    for (int64_t i = 0; i < t.kh; ++i)
      std::memcpy(live + (r * t.kh + i) * t.kw, w + (r * full.kh + t.h0 + i) * full.kw + t.w0,
                  sizeof(T) * t.kw);
}

template <typename T>
void uncrop_kernel(const T* live, const ConvGeometry& full, const LiveTaps& t, T* w) {
  std::fill(w, w + full.O * full.K, T(0));
  for (int64_t r = 0; r < full.O * full.Cg; ++r)
    for (int64_t i = 0; i < t.kh; ++i)
      std::memcpy(w + (r * full.kh + t.h0 + i) * full.kw + t.w0, live + (r * t.kh + i) * t.kw,
                  sizeof(T) * t.kw);
}

// The weights a kernel multiplies by: `w` itself, or its live window copied
// into the calling thread's Kernel workspace.
template <typename T>
const T* live_weights(const T* w, const ConvGeometry& full, const LiveTaps& t) {
  if (!t.cropped) return w;
  T* live = thread_workspace<T>(WorkspaceSlot::Kernel,
                                static_cast<size_t>(full.O * full.Cg * t.kh * t.kw));
  crop_kernel(w, full, t, live);
  return live;
}

// Unfolds the Cg channels at `in` ([Cg,H,W]) into col[K,P] whose rows are
// `ld` elements apart (ld >= P: several images share one column matrix).
template <typename T>
void im2col(const T* in, const ConvGeometry& g, const F::Conv2dParams& p, T* col, int64_t ld) {
  for (int64_t c = 0; c < g.Cg; ++c) {
    const T* plane = in + c * g.H * g.W;
    for (int64_t i = 0; i < g.kh; ++i) {
      for (int64_t j = 0; j < g.kw; ++j) {
        T* row = col + ((c * g.kh + i) * g.kw + j) * ld;
        const int64_t dw = j * p.dilation_w - p.pad_w;
        // Output columns whose input column ow*stride + dw lies inside [0, W).
        const int64_t ow_lo = dw >= 0 ? 0 : (-dw + p.stride_w - 1) / p.stride_w;
        const int64_t ow_hi = std::clamp<int64_t>(
            g.W - dw > 0 ? (g.W - dw + p.stride_w - 1) / p.stride_w : 0, ow_lo, g.OW);
        for (int64_t oh = 0; oh < g.OH; ++oh) {
          T* dst = row + oh * g.OW;
          const int64_t ih = oh * p.stride_h - p.pad_h + i * p.dilation_h;
          if (ih < 0 || ih >= g.H) {
            std::fill(dst, dst + g.OW, T(0));
            continue;
          }
          const T* src = plane + ih * g.W + dw;
          std::fill(dst, dst + ow_lo, T(0));
          if (p.stride_w == 1) {
            std::memcpy(dst + ow_lo, src + ow_lo, sizeof(T) * (ow_hi - ow_lo));
          } else {
            for (int64_t ow = ow_lo; ow < ow_hi; ++ow) dst[ow] = src[ow * p.stride_w];
          }
          std::fill(dst + ow_hi, dst + g.OW, T(0));
        }
      }
    }
  }
}

// Folds the rows of channels [c0, c1) of col[K,P] (rows `ld` apart; `col`
// points at channel c0's first row) back, adding into `in` ([Cg,H,W], already
// initialised).
template <typename T>
void col2im(const T* col, const ConvGeometry& g, const F::Conv2dParams& p, T* in, int64_t c0,
            int64_t c1, int64_t ld) {
  for (int64_t c = c0; c < c1; ++c) {
    T* plane = in + c * g.H * g.W;
    for (int64_t i = 0; i < g.kh; ++i) {
      for (int64_t j = 0; j < g.kw; ++j) {
        const T* row = col + (((c - c0) * g.kh + i) * g.kw + j) * ld;
        const int64_t dw = j * p.dilation_w - p.pad_w;
        const int64_t ow_lo = dw >= 0 ? 0 : (-dw + p.stride_w - 1) / p.stride_w;
        const int64_t ow_hi = std::clamp<int64_t>(
            g.W - dw > 0 ? (g.W - dw + p.stride_w - 1) / p.stride_w : 0, ow_lo, g.OW);
        for (int64_t oh = 0; oh < g.OH; ++oh) {
          const int64_t ih = oh * p.stride_h - p.pad_h + i * p.dilation_h;
          if (ih < 0 || ih >= g.H) continue;
          const T* src = row + oh * g.OW;
          T* dst = plane + ih * g.W + dw;
          if (p.stride_w == 1) {
            for (int64_t ow = ow_lo; ow < ow_hi; ++ow) dst[ow] += src[ow];
          } else {
            for (int64_t ow = ow_lo; ow < ow_hi; ++ow) dst[ow * p.stride_w] += src[ow];
          }
        }
      }
    }
  }
}

// Columns per GEMM that a chunk of images aims for: enough to amortise the
// weight traffic and keep Eigen's kernels in their efficient regime, small
// enough that col[K, nb*P] (K <= 4608 in ResNets) stays a few MiB.
constexpr int64_t kChunkColumns = 512;

int64_t chunk_images(const ConvGeometry& g) {
  return std::clamp<int64_t>((kChunkColumns + g.P - 1) / g.P, 1, g.N);
}

// Packs rows [rows, P] of each of nb images (image i at images + i*stride)
// side by side into packed[rows, nb*P].
template <typename T>
void pack_images(const T* images, int64_t nb, int64_t stride, int64_t rows, int64_t P, T* packed) {
  for (int64_t i = 0; i < nb; ++i)
    for (int64_t r = 0; r < rows; ++r)
      std::memcpy(packed + r * nb * P + i * P, images + i * stride + r * P, sizeof(T) * P);
}

// The inverse of pack_images.
template <typename T>
void unpack_images(const T* packed, int64_t nb, int64_t stride, int64_t rows, int64_t P,
                   T* images) {
  for (int64_t i = 0; i < nb; ++i)
    for (int64_t r = 0; r < rows; ++r)
      std::memcpy(images + i * stride + r * P, packed + r * nb * P + i * P, sizeof(T) * P);
}

// Builds the column matrix [K, nb*P] of images [n, n+nb) of group gr.
template <typename T>
void build_columns(const T* in, const ConvGeometry& g, const F::Conv2dParams& p, int64_t n,
                   int64_t nb, int64_t gr, T* col) {
  const int64_t ld = nb * g.P;
  for (int64_t i = 0; i < nb; ++i) {
    const T* in_g = in + ((n + i) * g.C + gr * g.Cg) * g.H * g.W;
    if (g.direct) {
      for (int64_t c = 0; c < g.Cg; ++c)
        std::memcpy(col + c * ld + i * g.P, in_g + c * g.P, sizeof(T) * g.P);
    } else {
      im2col(in_g, g, p, col + i * g.P, ld);
    }
  }
}

template <typename T>
void conv2d_forward_impl(const Tensor& input, const Tensor& weight, const Tensor& bias,
                         const F::Conv2dParams& params, const Tensor& out) {
  const ConvGeometry full(input.sizes(), weight.sizes(), out.sizes(), params);
  if (const int tile = winograd_tile(full, params)) {
    winograd_forward(full, params, tile, input.data_ptr<T>(), weight.data_ptr<T>(),
                     bias.defined() ? bias.data_ptr<T>() : nullptr, out.data_ptr<T>());
    return;
  }
  const LiveTaps taps = find_live_taps(full, params);
  const ConvGeometry g = crop_geometry(full, taps);
  const F::Conv2dParams& p = taps.params;
  const T* in = input.data_ptr<T>();
  const T* w = live_weights(weight.data_ptr<T>(), full, taps);
  const T* b = bias.defined() ? bias.data_ptr<T>() : nullptr;
  T* o = out.data_ptr<T>();
  const int64_t chunk = chunk_images(g);
  for_images(g.N, [&](int64_t n0, int64_t n1) {
    const int64_t nb_max = std::min(chunk, n1 - n0);
    const bool single = nb_max == 1;
    T* col = single && g.direct ? nullptr
                                : thread_workspace<T>(WorkspaceSlot::Columns,
                                                      static_cast<size_t>(g.K * nb_max * g.P));
    T* packed = single ? nullptr
                       : thread_workspace<T>(WorkspaceSlot::Gather,
                                             static_cast<size_t>(g.Og * nb_max * g.P));
    for (int64_t n = n0; n < n1; n += nb_max) {
      const int64_t nb = std::min(nb_max, n1 - n);
      const int64_t cols_n = nb * g.P;
      for (int64_t gr = 0; gr < g.groups; ++gr) {
        T* out_g = o + (n * g.O + gr * g.Og) * g.P;
        // One image writes straight into the output; a chunk goes through `packed`.
        T* dst = single ? out_g : packed;
        if (b) {
          for (int64_t oc = 0; oc < g.Og; ++oc)
            std::fill(dst + oc * cols_n, dst + (oc + 1) * cols_n, b[gr * g.Og + oc]);
        }
        const T* cols = nullptr;
        if (single && g.direct) {
          cols = in + (n * g.C + gr * g.Cg) * g.H * g.W;
        } else {
          build_columns(in, g, p, n, nb, gr, col);
          cols = col;
        }
        gemm(false, false, g.Og, cols_n, g.K, w + gr * g.Og * g.K, g.K, cols, cols_n, dst, cols_n,
             b != nullptr);
        if (!single) unpack_images(packed, nb, g.O * g.P, g.Og, g.P, out_g);
      }
    }
  });
}

template <typename T>
void conv2d_backward_input_impl(const Tensor& grad_out, const Tensor& weight,
                                const F::Conv2dParams& params, const Tensor& grad_input) {
  const ConvGeometry full(grad_input.sizes(), weight.sizes(), grad_out.sizes(), params);
  if (const int tile = winograd_tile(full, params)) {
    winograd_backward_input(full, params, tile, grad_out.data_ptr<T>(), weight.data_ptr<T>(),
                            grad_input.data_ptr<T>());
    return;
  }
  const LiveTaps taps = find_live_taps(full, params);
  const ConvGeometry g = crop_geometry(full, taps);
  const F::Conv2dParams& p = taps.params;
  const T* go = grad_out.data_ptr<T>();
  const T* w = live_weights(weight.data_ptr<T>(), full, taps);
  T* gi = grad_input.data_ptr<T>();
  const int64_t chunk = chunk_images(g);
  for_images(g.N, [&](int64_t n0, int64_t n1) {
    const int64_t nb_max = std::min(chunk, n1 - n0);
    const bool single = nb_max == 1;
    // The column gradient is produced a few channels at a time so each block
    // is folded back by col2im while it is still in cache (~1 MiB blocks).
    const int64_t rows_per_channel = g.kh * g.kw * nb_max * g.P;
    const int64_t block = std::clamp<int64_t>(
        (int64_t{1024} << 10) / static_cast<int64_t>(sizeof(T) * rows_per_channel), 1, g.Cg);
    T* col =
        thread_workspace<T>(WorkspaceSlot::Columns, static_cast<size_t>(block * rows_per_channel));
    T* packed = single ? nullptr
                       : thread_workspace<T>(WorkspaceSlot::Gather,
                                             static_cast<size_t>(g.Og * nb_max * g.P));
    for (int64_t n = n0; n < n1; n += nb_max) {
      const int64_t nb = std::min(nb_max, n1 - n);
      const int64_t cols_n = nb * g.P;
      for (int64_t gr = 0; gr < g.groups; ++gr) {
        T* gi_g = gi + (n * g.C + gr * g.Cg) * g.H * g.W;
        const T* go_g = go + (n * g.O + gr * g.Og) * g.P;
        const T* w_g = w + gr * g.Og * g.K;
        if (!single) {
          pack_images(go_g, nb, g.O * g.P, g.Og, g.P, packed);
          go_g = packed;
        }
        if (g.direct && single) {
          gemm(true, false, g.K, g.P, g.Og, w_g, g.K, go_g, g.P, gi_g, g.P, false);
          continue;
        }
        if (!g.direct) {
          for (int64_t i = 0; i < nb; ++i) {
            T* img = gi_g + i * g.C * g.H * g.W;
            std::fill(img, img + g.Cg * g.H * g.W, T(0));
          }
        }
        for (int64_t c0 = 0; c0 < g.Cg; c0 += block) {
          const int64_t c1 = std::min(c0 + block, g.Cg);
          const int64_t r0 = c0 * g.kh * g.kw, rows = (c1 - c0) * g.kh * g.kw;
          // gcol[r0:r0+rows, :] = W[:, r0:r0+rows]^T @ gout
          gemm(true, false, rows, cols_n, g.Og, w_g + r0, g.K, go_g, cols_n, col, cols_n, false);
          for (int64_t i = 0; i < nb; ++i) {
            T* img = gi_g + i * g.C * g.H * g.W;
            if (g.direct) {
              // 1x1 stride 1: the column rows are the input planes.
              for (int64_t c = c0; c < c1; ++c)
                std::memcpy(img + c * g.P, col + (c - c0) * cols_n + i * g.P, sizeof(T) * g.P);
            } else {
              col2im(col + i * g.P, g, p, img, c0, c1, cols_n);
            }
          }
        }
      }
    }
  });
}

template <typename T>
void conv2d_backward_weight_impl(const Tensor& grad_out, const Tensor& input,
                                 const F::Conv2dParams& params, const Tensor& grad_weight) {
  const ConvGeometry full(input.sizes(), grad_weight.sizes(), grad_out.sizes(), params);
  if (winograd_tile(full, params) != 0) {
    winograd_backward_weight(full, params, input.data_ptr<T>(), grad_out.data_ptr<T>(),
                             grad_weight.data_ptr<T>());
    return;
  }
  const LiveTaps taps = find_live_taps(full, params);
  const ConvGeometry g = crop_geometry(full, taps);
  const F::Conv2dParams& p = taps.params;
  const T* go = grad_out.data_ptr<T>();
  const T* in = input.data_ptr<T>();
  // A cropped kernel's gradient is accumulated for the live taps, then
  // written back with zeros for the dead ones.
  T* gw = taps.cropped ? thread_workspace<T>(WorkspaceSlot::Kernel, static_cast<size_t>(g.O * g.K))
                       : grad_weight.data_ptr<T>();
  const int64_t wsize = g.O * g.K;
  std::fill(gw, gw + wsize, T(0));
  std::mutex merge;
  const int64_t chunk = chunk_images(g);
  for_images(g.N, [&](int64_t n0, int64_t n1) {
    // The whole batch in one chunk accumulates straight into grad_weight;
    // split batches sum per-thread partials and merge them under a lock.
    const bool whole = n0 == 0 && n1 == g.N;
    T* acc = whole ? gw : thread_workspace<T>(WorkspaceSlot::Partial, static_cast<size_t>(wsize));
    if (!whole) std::fill(acc, acc + wsize, T(0));
    const int64_t nb_max = std::min(chunk, n1 - n0);
    const bool single = nb_max == 1;
    T* col = single && g.direct ? nullptr
                                : thread_workspace<T>(WorkspaceSlot::Columns,
                                                      static_cast<size_t>(g.K * nb_max * g.P));
    T* packed = single ? nullptr
                       : thread_workspace<T>(WorkspaceSlot::Gather,
                                             static_cast<size_t>(g.Og * nb_max * g.P));
    for (int64_t n = n0; n < n1; n += nb_max) {
      const int64_t nb = std::min(nb_max, n1 - n);
      const int64_t cols_n = nb * g.P;
      for (int64_t gr = 0; gr < g.groups; ++gr) {
        const T* go_g = go + (n * g.O + gr * g.Og) * g.P;
        if (!single) {
          pack_images(go_g, nb, g.O * g.P, g.Og, g.P, packed);
          go_g = packed;
        }
        const T* cols = nullptr;
        if (single && g.direct) {
          cols = in + (n * g.C + gr * g.Cg) * g.H * g.W;
        } else {
          build_columns(in, g, p, n, nb, gr, col);
          cols = col;
        }
        gemm(false, true, g.Og, g.K, cols_n, go_g, cols_n, cols, cols_n, acc + gr * g.Og * g.K, g.K,
             true);
      }
    }
    if (!whole) {
      std::lock_guard<std::mutex> lock(merge);
      for (int64_t i = 0; i < wsize; ++i) gw[i] += acc[i];
    }
  });
  if (taps.cropped) uncrop_kernel(gw, full, taps, grad_weight.data_ptr<T>());
}

void conv2d_forward_cpu(const Tensor& input, const Tensor& weight, const Tensor& bias,
                        const F::Conv2dParams& p, const Tensor& out) {
  GRAFT_DISPATCH_FLOAT(input.dtype(), "conv2d",
                       [&] { conv2d_forward_impl<scalar_t>(input, weight, bias, p, out); });
}

void conv2d_backward_input_cpu(const Tensor& grad_out, const Tensor& weight,
                               const F::Conv2dParams& p, const Tensor& grad_input) {
  GRAFT_DISPATCH_FLOAT(grad_out.dtype(), "conv2d_backward_input", [&] {
    conv2d_backward_input_impl<scalar_t>(grad_out, weight, p, grad_input);
  });
}

void conv2d_backward_weight_cpu(const Tensor& grad_out, const Tensor& input,
                                const F::Conv2dParams& p, const Tensor& grad_weight) {
  GRAFT_DISPATCH_FLOAT(grad_out.dtype(), "conv2d_backward_weight", [&] {
    conv2d_backward_weight_impl<scalar_t>(grad_out, input, p, grad_weight);
  });
}

}  // namespace

GRAFT_REGISTER_KERNEL(conv2d_forward, CPU, conv2d_forward_cpu);
GRAFT_REGISTER_KERNEL(conv2d_backward_input, CPU, conv2d_backward_input_cpu);
GRAFT_REGISTER_KERNEL(conv2d_backward_weight, CPU, conv2d_backward_weight_cpu);

}  // namespace graft::cpu
