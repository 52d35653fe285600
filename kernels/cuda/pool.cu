// CUDA pooling, written by hand: max pooling with int64 argmax indices and
// adaptive average pooling, forward and backward. The CPU twin is
// kernels/cpu/pool.cpp. All nn kernels receive contiguous tensors (core/kernels.h).
#include <cmath>

#include "core/kernels.h"
#include "kernels/cuda/loops.cuh"

namespace graft::cuda {

namespace {

// ---- max pooling ----
template <typename T>
__global__ void max_pool_fwd_kernel(const T* __restrict__ x, T* __restrict__ y,
                                    int64_t* __restrict__ idx, int64_t planes, int64_t H, int64_t W,
                                    int64_t OH, int64_t OW, Pool2dParams p) {
  GRAFT_GRID_STRIDE(j, planes * OH * OW) {
    const int64_t ow = j % OW, oh = (j / OW) % OH, plane = j / (OW * OH);
    const T* xp = x + plane * H * W;
    // As the CPU backend and torch: start from -inf at the first in-bounds
    // window position; a larger value takes over, and so does every NaN (the
    // last NaN's index is kept).
    int64_t hs = oh * p.stride_h - p.pad_h;
    const int64_t he = i64min(hs + (p.kernel_h - 1) * p.dilation_h + 1, H);
    while (hs < 0) hs += p.dilation_h;
    int64_t ws = ow * p.stride_w - p.pad_w;
    const int64_t we = i64min(ws + (p.kernel_w - 1) * p.dilation_w + 1, W);
    while (ws < 0) ws += p.dilation_w;
    T best = static_cast<T>(-INFINITY);
    int64_t best_i = hs * W + ws;
    for (int64_t h = hs; h < he; h += p.dilation_h) {
      for (int64_t w = ws; w < we; w += p.dilation_w) {
        const T v = xp[h * W + w];
        if (v > best || ::isnan(v)) {
          best = v;
          best_i = h * W + w;
        }
      }
    }
    y[j] = best;
    if (idx) idx[j] = best_i;
  }
}

// Scatter through the argmax indices. Windows overlap when stride < kernel,
// so several outputs may add into one input: atomicAdd (order-dependent in
// the last bits, like torch's CUDA max_pool backward).
template <typename T>
__global__ void scatter_plane_kernel(const T* __restrict__ g, const int64_t* __restrict__ idx,
                                     T* __restrict__ gi, int64_t planes, int64_t HW, int64_t OHW,
                                     int* flag) {
  GRAFT_GRID_STRIDE(j, planes * OHW) {
    const int64_t plane = j / OHW, k = idx[j];
    if (k < 0 || k >= HW) {
      raise_device_error(flag, kIndexOutOfRange);
      continue;
    }
    atomicAdd(gi + plane * HW + k, g[j]);
  }
}

void max_pool_forward_cuda(const Tensor& x, const Pool2dParams& p, const Tensor& out,
                           const Tensor& indices) {
  const int64_t N = x.sizes()[0], C = x.sizes()[1], H = x.sizes()[2], W = x.sizes()[3];
  const int64_t OH = out.sizes()[2], OW = out.sizes()[3];
  const int device = x.device().index;
  DeviceGuard guard(device);
  GRAFT_DISPATCH_FLOAT(x.dtype(), "max_pool2d", [&] {
    launch<max_pool_fwd_kernel<scalar_t>>(
        grid_for(out.numel(), kBlock), kBlock, 0, current_stream(device), x.data_ptr<scalar_t>(),
        out.data_ptr<scalar_t>(), indices.defined() ? indices.data_ptr<int64_t>() : nullptr, N * C,
        H, W, OH, OW, p);
    GRAFT_CUDA_CHECK_LAUNCH();
  });
}

void max_pool_backward_cuda(const Tensor& grad_out, const Tensor& indices,
                            const Tensor& grad_input) {
  kernel::fill(grad_input.device())(grad_input, 0.0);
  const int64_t planes = grad_input.sizes()[0] * grad_input.sizes()[1];
  const int64_t HW = grad_input.sizes()[2] * grad_input.sizes()[3];
  const int64_t OHW = grad_out.sizes()[2] * grad_out.sizes()[3];
  if (grad_out.numel() == 0) return;
  const int device = grad_input.device().index;
  DeviceGuard guard(device);
  GRAFT_DISPATCH_FLOAT(grad_input.dtype(), "max_pool2d_backward", [&] {
    launch<scatter_plane_kernel<scalar_t>>(
        grid_for(grad_out.numel(), kBlock), kBlock, 0, current_stream(device),
        grad_out.data_ptr<scalar_t>(), indices.data_ptr<int64_t>(), grad_input.data_ptr<scalar_t>(),
        planes, HW, OHW, device_error_flag(device));
    GRAFT_CUDA_CHECK_LAUNCH();
  });
}

// ---- adaptive average pooling (torch bins: [floor(o*in/out), ceil((o+1)*in/out))) ----
__device__ __forceinline__ int64_t bin_start(int64_t o, int64_t in, int64_t out) {
  return (o * in) / out;
}
__device__ __forceinline__ int64_t bin_end(int64_t o, int64_t in, int64_t out) {
  return ((o + 1) * in + out - 1) / out;
}

template <typename T>
__global__ void adaptive_avg_fwd_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t planes,
                                        int64_t H, int64_t W, int64_t OH, int64_t OW) {
  GRAFT_GRID_STRIDE(j, planes * OH * OW) {
    const int64_t ow = j % OW, oh = (j / OW) % OH, plane = j / (OW * OH);
    const int64_t h0 = bin_start(oh, H, OH), h1 = bin_end(oh, H, OH);
    const int64_t w0 = bin_start(ow, W, OW), w1 = bin_end(ow, W, OW);
    const T* xp = x + plane * H * W;
    double s = 0;
    for (int64_t h = h0; h < h1; ++h)
      for (int64_t w = w0; w < w1; ++w) s += static_cast<double>(xp[h * W + w]);
    y[j] = static_cast<T>(s / static_cast<double>((h1 - h0) * (w1 - w0)));
  }
}

// Each input element sums grad/area over the output bins that contain it.
template <typename T>
__global__ void adaptive_avg_bwd_kernel(const T* __restrict__ g, T* __restrict__ gi, int64_t planes,
                                        int64_t H, int64_t W, int64_t OH, int64_t OW) {
  GRAFT_GRID_STRIDE(j, planes * H * W) {
    const int64_t w = j % W, h = (j / W) % H, plane = j / (W * H);
    const T* gp = g + plane * OH * OW;
    double s = 0;
    // Bins containing h: those with start <= h < end. Bins are monotone, so
    // scan from the first bin whose end exceeds h until the start passes h.
    for (int64_t oh = (h * OH) / H; oh < OH && bin_start(oh, H, OH) <= h; ++oh) {
      if (bin_end(oh, H, OH) <= h) continue;
      const int64_t ah = bin_end(oh, H, OH) - bin_start(oh, H, OH);
      for (int64_t ow = (w * OW) / W; ow < OW && bin_start(ow, W, OW) <= w; ++ow) {
        if (bin_end(ow, W, OW) <= w) continue;
        const int64_t aw = bin_end(ow, W, OW) - bin_start(ow, W, OW);
        s += static_cast<double>(gp[oh * OW + ow]) / static_cast<double>(ah * aw);
      }
    }
    gi[j] = static_cast<T>(s);
  }
}

void adaptive_avg_forward_cuda(const Tensor& x, const Tensor& out) {
  if (out.numel() == 0) return;
  const int64_t planes = x.sizes()[0] * x.sizes()[1];
  const int device = x.device().index;
  DeviceGuard guard(device);
  GRAFT_DISPATCH_FLOAT(x.dtype(), "adaptive_avg_pool2d", [&] {
    launch<adaptive_avg_fwd_kernel<scalar_t>>(grid_for(out.numel(), kBlock), kBlock, 0,
                                              current_stream(device), x.data_ptr<scalar_t>(),
                                              out.data_ptr<scalar_t>(), planes, x.sizes()[2],
                                              x.sizes()[3], out.sizes()[2], out.sizes()[3]);
    GRAFT_CUDA_CHECK_LAUNCH();
  });
}

void adaptive_avg_backward_cuda(const Tensor& grad_out, const Tensor& grad_input) {
  if (grad_input.numel() == 0) return;
  const int64_t planes = grad_input.sizes()[0] * grad_input.sizes()[1];
  const int device = grad_input.device().index;
  DeviceGuard guard(device);
  GRAFT_DISPATCH_FLOAT(grad_input.dtype(), "adaptive_avg_pool2d_backward", [&] {
    launch<adaptive_avg_bwd_kernel<scalar_t>>(
        grid_for(grad_input.numel(), kBlock), kBlock, 0, current_stream(device),
        grad_out.data_ptr<scalar_t>(), grad_input.data_ptr<scalar_t>(), planes,
        grad_input.sizes()[2], grad_input.sizes()[3], grad_out.sizes()[2], grad_out.sizes()[3]);
    GRAFT_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace

GRAFT_REGISTER_CUDA_KERNEL(max_pool2d_forward, max_pool_forward_cuda);
GRAFT_REGISTER_CUDA_KERNEL(max_pool2d_backward, max_pool_backward_cuda);
GRAFT_REGISTER_CUDA_KERNEL(adaptive_avg_pool2d_forward, adaptive_avg_forward_cuda);
GRAFT_REGISTER_CUDA_KERNEL(adaptive_avg_pool2d_backward, adaptive_avg_backward_cuda);

}  // namespace graft::cuda
