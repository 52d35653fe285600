// CPU pooling: max_pool2d (with int64 argmax indices for backward) and
// adaptive_avg_pool2d. Both run over the N*C planes in parallel.
#include <cmath>
#include <limits>

#include "core/kernels.h"
#include "core/parallel.h"

namespace graft::cpu {

namespace {

template <typename T>
void max_pool_forward(const Tensor& input, const Pool2dParams& p, const Tensor& out,
                      const Tensor& indices) {
  const int64_t planes = input.size(0) * input.size(1);
  const int64_t H = input.size(2), W = input.size(3), OH = out.size(2), OW = out.size(3);
  const T* in = input.data_ptr<T>();
  T* o = out.data_ptr<T>();
  int64_t* idx = indices.data_ptr<int64_t>();
  parallel_for(0, planes, 1, [&](int64_t p0, int64_t p1) {
    for (int64_t pl = p0; pl < p1; ++pl) {
      const T* src = in + pl * H * W;
      T* dst = o + pl * OH * OW;
      int64_t* di = idx + pl * OH * OW;
      for (int64_t oh = 0; oh < OH; ++oh) {
        int64_t hs = oh * p.stride_h - p.pad_h;
        const int64_t he = std::min(hs + (p.kernel_h - 1) * p.dilation_h + 1, H);
        while (hs < 0) hs += p.dilation_h;
        for (int64_t ow = 0; ow < OW; ++ow) {
          int64_t ws = ow * p.stride_w - p.pad_w;
          const int64_t we = std::min(ws + (p.kernel_w - 1) * p.dilation_w + 1, W);
          while (ws < 0) ws += p.dilation_w;
          // As torch: start from -inf at the first window position; NaN wins.
          T best = -std::numeric_limits<T>::infinity();
          int64_t best_i = hs * W + ws;
          for (int64_t h = hs; h < he; h += p.dilation_h) {
            for (int64_t w = ws; w < we; w += p.dilation_w) {
              const T v = src[h * W + w];
              if (v > best || std::isnan(v)) {
                best = v;
                best_i = h * W + w;
                if (std::isnan(v)) goto done;
              }
            }
          }
        done:
          dst[oh * OW + ow] = best;
          di[oh * OW + ow] = best_i;
        }
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
