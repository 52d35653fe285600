// CPU pooling: max_pool2d (with int64 argmax indices when backward needs
// them) and adaptive_avg_pool2d. Both run over the N*C planes in parallel.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "core/kernels.h"
#include "core/parallel.h"

namespace graft::cpu {

namespace {

// As torch 1.13's CPU kernel: a window's maximum starts from -inf at its
// first position; a larger value takes over (the first of equal ones stays),
// and so does every NaN (the last NaN's index is kept).
template <typename T>
inline bool takes_over(T v, T best) {
  return (v > best) | (v != v);
}

// One output of a window that the image border clips (or of any window).
template <typename T>
void window_max(const T* src, int64_t W, const Pool2dParams& p, int64_t hs, int64_t he, int64_t ws,
                int64_t we, T* out, int64_t* out_i) {
  T best = -std::numeric_limits<T>::infinity();
  int64_t best_i = hs * W + ws;
  for (int64_t h = hs; h < he; h += p.dilation_h) {
    for (int64_t w = ws; w < we; w += p.dilation_w) {
      const T v = src[h * W + w];
      const bool take = takes_over(v, best);
      best = take ? v : best;
      best_i = take ? h * W + w : best_i;
    }
  }
  *out = best;
  if (out_i) *out_i = best_i;
}

// The outputs [lo, hi) of one output row whose windows lie inside the row,
// all at once: the window position is the outer loop and the outputs the
// inner one, so the compare-and-select runs across outputs in vector lanes
// (one scalar window at a time was a data-dependent branch per element,
// mispredicted so often that the stem's pool took longer than its
// convolution). Each output still sees its window in the same order. kStride
// is stride_w when it is 1 or 2 (constant strides vectorize), else 0.
template <typename T, int kStride>
void interior_max(const T* src, int64_t W, const Pool2dParams& p, int64_t hs, int64_t he,
                  int64_t lo, int64_t hi, T* best, int32_t* best_i, T* out, int64_t* out_i) {
  const int64_t sw = kStride ? kStride : p.stride_w;
  const int64_t n = hi - lo;
  const int64_t first = hs * W + lo * sw - p.pad_w;
  for (int64_t i = 0; i < n; ++i) {
    best[i] = -std::numeric_limits<T>::infinity();
    best_i[i] = static_cast<int32_t>(first + i * sw);
  }
  for (int64_t h = hs; h < he; h += p.dilation_h) {
    for (int64_t kw = 0; kw < p.kernel_w; ++kw) {
      const int64_t off = h * W + lo * sw - p.pad_w + kw * p.dilation_w;
      const T* row = src + off;
      const int32_t off32 = static_cast<int32_t>(off);
      for (int64_t i = 0; i < n; ++i) {
        const T v = row[i * sw];
        const bool take = takes_over(v, best[i]);
        best[i] = take ? v : best[i];
        best_i[i] = take ? off32 + static_cast<int32_t>(i * sw) : best_i[i];
      }
    }
  }
  std::copy(best, best + n, out);
  if (out_i) std::copy(best_i, best_i + n, out_i);
}

template <typename T>
void max_pool_forward(const Tensor& input, const Pool2dParams& p, const Tensor& out,
                      const Tensor& indices) {
  const int64_t planes = input.size(0) * input.size(1);
  const int64_t H = input.size(2), W = input.size(3), OH = out.size(2), OW = out.size(3);
  const T* in = input.data_ptr<T>();
  T* o = out.data_ptr<T>();
  int64_t* idx = indices.defined() ? indices.data_ptr<int64_t>() : nullptr;  // values only
  // Output columns whose windows the left and right borders do not clip.
  const int64_t span_w = (p.kernel_w - 1) * p.dilation_w;
  const int64_t lo = std::min(OW, (p.pad_w + p.stride_w - 1) / p.stride_w);
  const int64_t last_start = W - 1 - span_w + p.pad_w;  // of the rightmost unclipped window
  const int64_t hi = last_start < 0 ? lo : std::max(lo, std::min(OW, last_start / p.stride_w + 1));
  // interior_max keeps plane offsets in int32.
  const bool vector_rows = hi > lo && H * W <= std::numeric_limits<int32_t>::max();
  const auto interior = p.stride_w == 1   ? &interior_max<T, 1>
                        : p.stride_w == 2 ? &interior_max<T, 2>
                                          : &interior_max<T, 0>;
  parallel_for(0, planes, 1, [&](int64_t p0, int64_t p1) {
    std::vector<T> best(static_cast<size_t>(vector_rows ? hi - lo : 0));
    std::vector<int32_t> best_i(best.size());
    for (int64_t pl = p0; pl < p1; ++pl) {
      const T* src = in + pl * H * W;
      for (int64_t oh = 0; oh < OH; ++oh) {
        int64_t hs = oh * p.stride_h - p.pad_h;
        const int64_t he = std::min(hs + (p.kernel_h - 1) * p.dilation_h + 1, H);
        while (hs < 0) hs += p.dilation_h;
        T* row_out = o + (pl * OH + oh) * OW;
        int64_t* row_i = idx ? idx + (pl * OH + oh) * OW : nullptr;
        auto index_at = [&](int64_t ow) { return row_i ? row_i + ow : nullptr; };
        // Windows [ow0, ow1) one at a time (the clipped ones at both borders).
        auto edge = [&](int64_t ow0, int64_t ow1) {
          for (int64_t ow = ow0; ow < ow1; ++ow) {
            int64_t ws = ow * p.stride_w - p.pad_w;
            const int64_t we = std::min(ws + span_w + 1, W);
            while (ws < 0) ws += p.dilation_w;
            window_max(src, W, p, hs, he, ws, we, row_out + ow, index_at(ow));
          }
        };
        if (!vector_rows) {
          edge(0, OW);
          continue;
        }
        edge(0, lo);
        interior(src, W, p, hs, he, lo, hi, best.data(), best_i.data(), row_out + lo, index_at(lo));
        edge(hi, OW);
      }
    }
  });
}

template <typename T>
void max_pool_backward(const Tensor& grad_out, const Tensor& indices, const Tensor& grad_input) {
  const int64_t planes = grad_input.size(0) * grad_input.size(1);
  const int64_t HW = grad_input.size(2) * grad_input.size(3);
  const int64_t OHW = grad_out.size(2) * grad_out.size(3);
  const T* g = grad_out.data_ptr<T>();
  const int64_t* idx = indices.data_ptr<int64_t>();
  T* gi = grad_input.data_ptr<T>();
  parallel_for(0, planes, 1, [&](int64_t p0, int64_t p1) {
    for (int64_t pl = p0; pl < p1; ++pl) {
      T* dst = gi + pl * HW;
      std::fill(dst, dst + HW, T(0));
      const T* src = g + pl * OHW;
      const int64_t* is = idx + pl * OHW;
      for (int64_t i = 0; i < OHW; ++i) dst[is[i]] += src[i];
    }
  });
}

// torch's adaptive bins: [floor(o*in/out), ceil((o+1)*in/out)).
inline int64_t bin_start(int64_t o, int64_t in, int64_t out) { return (o * in) / out; }
inline int64_t bin_end(int64_t o, int64_t in, int64_t out) {
  return ((o + 1) * in + out - 1) / out;
}

template <typename T>
void adaptive_avg_forward(const Tensor& input, const Tensor& out) {
  const int64_t planes = input.size(0) * input.size(1);
  const int64_t H = input.size(2), W = input.size(3), OH = out.size(2), OW = out.size(3);
  const T* in = input.data_ptr<T>();
  T* o = out.data_ptr<T>();
  parallel_for(0, planes, 1, [&](int64_t p0, int64_t p1) {
    for (int64_t pl = p0; pl < p1; ++pl) {
      const T* src = in + pl * H * W;
      for (int64_t oh = 0; oh < OH; ++oh) {
        const int64_t hs = bin_start(oh, H, OH), he = bin_end(oh, H, OH);
        for (int64_t ow = 0; ow < OW; ++ow) {
          const int64_t ws = bin_start(ow, W, OW), we = bin_end(ow, W, OW);
          T sum = 0;
          for (int64_t h = hs; h < he; ++h)
            for (int64_t w = ws; w < we; ++w) sum += src[h * W + w];
          o[(pl * OH + oh) * OW + ow] = sum / static_cast<T>((he - hs) * (we - ws));
        }
      }
    }
  });
}

template <typename T>
void adaptive_avg_backward(const Tensor& grad_out, const Tensor& grad_input) {
  const int64_t planes = grad_input.size(0) * grad_input.size(1);
  const int64_t H = grad_input.size(2), W = grad_input.size(3);
  const int64_t OH = grad_out.size(2), OW = grad_out.size(3);
  const T* g = grad_out.data_ptr<T>();
  T* gi = grad_input.data_ptr<T>();
  parallel_for(0, planes, 1, [&](int64_t p0, int64_t p1) {
    for (int64_t pl = p0; pl < p1; ++pl) {
      T* dst = gi + pl * H * W;
      std::fill(dst, dst + H * W, T(0));
      for (int64_t oh = 0; oh < OH; ++oh) {
        const int64_t hs = bin_start(oh, H, OH), he = bin_end(oh, H, OH);
        for (int64_t ow = 0; ow < OW; ++ow) {
          const int64_t ws = bin_start(ow, W, OW), we = bin_end(ow, W, OW);
          const T share = g[(pl * OH + oh) * OW + ow] / static_cast<T>((he - hs) * (we - ws));
          for (int64_t h = hs; h < he; ++h)
            for (int64_t w = ws; w < we; ++w) dst[h * W + w] += share;
        }
      }
    }
  });
}

void max_pool_forward_cpu(const Tensor& input, const Pool2dParams& p, const Tensor& out,
                          const Tensor& indices) {
  GRAFT_DISPATCH_FLOAT(input.dtype(), "max_pool2d",
                       [&] { max_pool_forward<scalar_t>(input, p, out, indices); });
}
void max_pool_backward_cpu(const Tensor& grad_out, const Tensor& indices,
                           const Tensor& grad_input) {
  GRAFT_DISPATCH_FLOAT(grad_out.dtype(), "max_pool2d_backward",
                       [&] { max_pool_backward<scalar_t>(grad_out, indices, grad_input); });
}
void adaptive_avg_forward_cpu(const Tensor& input, const Tensor& out) {
  GRAFT_DISPATCH_FLOAT(input.dtype(), "adaptive_avg_pool2d",
                       [&] { adaptive_avg_forward<scalar_t>(input, out); });
}
void adaptive_avg_backward_cpu(const Tensor& grad_out, const Tensor& grad_input) {
  GRAFT_DISPATCH_FLOAT(grad_out.dtype(), "adaptive_avg_pool2d_backward",
                       [&] { adaptive_avg_backward<scalar_t>(grad_out, grad_input); });
}

}  // namespace

GRAFT_REGISTER_KERNEL(max_pool2d_forward, CPU, max_pool_forward_cpu);
GRAFT_REGISTER_KERNEL(max_pool2d_backward, CPU, max_pool_backward_cpu);
GRAFT_REGISTER_KERNEL(adaptive_avg_pool2d_forward, CPU, adaptive_avg_forward_cpu);
GRAFT_REGISTER_KERNEL(adaptive_avg_pool2d_backward, CPU, adaptive_avg_backward_cpu);

}  // namespace graft::cpu
