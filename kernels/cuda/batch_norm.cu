// CUDA batch norm (spatial, over dim 1 of [N, C, *]): cuDNN by default, or our
// kernels with GRAFT_BN=native. Eval-mode backward (statistics are constants)
// and eps below cuDNN's minimum always use our kernels.
//
// Native: one block per channel reduces over N x spatial in double, two passes
// (mean, then squared deviations), like the CPU backend.
#include <cstdlib>
#include <cstring>

#include "core/env.h"
#include "core/kernels.h"
#include "kernels/cuda/loops.cuh"

namespace graft::cuda {

namespace {

bool native_bn() {
  static const bool v = env_flag("GRAFT_BN", "native", "cudnn");
  return v;
}

struct BnShape {
  int64_t N, C, S;  // S = product of the spatial dims
};
BnShape bn_shape(const Tensor& x) {
  BnShape s{x.sizes()[0], x.sizes()[1], 1};
  for (int64_t d = 2; d < x.dim(); ++d) s.S *= x.sizes()[d];
  return s;
}

__device__ __forceinline__ double block_sum(double v, double* smem) {
  for (int d = 16; d > 0; d /= 2) v += __shfl_down_sync(0xffffffffu, v, d);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  __syncthreads();
  if (lane == 0) smem[warp] = v;
  __syncthreads();
  double total = 0;
  for (int i = 0; i < static_cast<int>(blockDim.x) / 32; ++i) total += smem[i];
  return total;  // every thread gets the total
}

template <typename T>
__global__ void bn_train_kernel(const T* __restrict__ x, const T* __restrict__ w,
                                const T* __restrict__ b, T* __restrict__ rm, T* __restrict__ rv,
                                double momentum, double eps, T* __restrict__ y,
                                T* __restrict__ save_mean, T* __restrict__ save_invstd, BnShape s) {
  __shared__ double smem[kBlock / 32];
  const int64_t count = s.N * s.S;
  for (int64_t c = blockIdx.x; c < s.C; c += gridDim.x) {
    double sum = 0;
    for (int64_t i = threadIdx.x; i < count; i += blockDim.x)
      sum += static_cast<double>(x[((i / s.S) * s.C + c) * s.S + i % s.S]);
    const double mean = block_sum(sum, smem) / static_cast<double>(count);
    double sq = 0;
    for (int64_t i = threadIdx.x; i < count; i += blockDim.x) {
      const double d = static_cast<double>(x[((i / s.S) * s.C + c) * s.S + i % s.S]) - mean;
      sq += d * d;
    }
    sq = block_sum(sq, smem);
    const double invstd = 1.0 / ::sqrt(sq / static_cast<double>(count) + eps);
    const double scale = (w ? static_cast<double>(w[c]) : 1.0) * invstd;
    const double shift = b ? static_cast<double>(b[c]) : 0.0;
    for (int64_t i = threadIdx.x; i < count; i += blockDim.x) {
      const int64_t j = ((i / s.S) * s.C + c) * s.S + i % s.S;
      y[j] = static_cast<T>((static_cast<double>(x[j]) - mean) * scale + shift);
    }
    if (threadIdx.x == 0) {
      save_mean[c] = static_cast<T>(mean);
      save_invstd[c] = static_cast<T>(invstd);
      if (rm) rm[c] = static_cast<T>((1 - momentum) * static_cast<double>(rm[c]) + momentum * mean);
      if (rv)
        rv[c] = static_cast<T>((1 - momentum) * static_cast<double>(rv[c]) +
                               momentum * sq / static_cast<double>(count - 1));
    }
  }
}

template <typename T>
__global__ void bn_eval_kernel(const T* __restrict__ x, const T* __restrict__ w,
                               const T* __restrict__ b, const T* __restrict__ rm,
                               const T* __restrict__ rv, double eps, T* __restrict__ y, BnShape s) {
  const int64_t n = s.N * s.C * s.S;
  for (int64_t j = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; j < n;
       j += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const int64_t c = (j / s.S) % s.C;
    const double invstd = 1.0 / ::sqrt(static_cast<double>(rv[c]) + eps);
    const double scale = (w ? static_cast<double>(w[c]) : 1.0) * invstd;
    y[j] = static_cast<T>((static_cast<double>(x[j]) - static_cast<double>(rm[c])) * scale +
                          (b ? static_cast<double>(b[c]) : 0.0));
  }
}

template <typename T>
__global__ void bn_backward_kernel(const T* __restrict__ g, const T* __restrict__ x,
                                   const T* __restrict__ w, const T* __restrict__ mean,
                                   const T* __restrict__ invstd, bool training, T* __restrict__ gi,
                                   T* __restrict__ gw, T* __restrict__ gb, BnShape s) {
  __shared__ double smem[kBlock / 32];
  const int64_t count = s.N * s.S;
  for (int64_t c = blockIdx.x; c < s.C; c += gridDim.x) {
    const double m = static_cast<double>(mean[c]), is = static_cast<double>(invstd[c]);
    double sdy = 0, sdyx = 0;
    for (int64_t i = threadIdx.x; i < count; i += blockDim.x) {
      const int64_t j = ((i / s.S) * s.C + c) * s.S + i % s.S;
      const double dy = static_cast<double>(g[j]);
      sdy += dy;
      sdyx += dy * (static_cast<double>(x[j]) - m) * is;
    }
    sdy = block_sum(sdy, smem);
    sdyx = block_sum(sdyx, smem);
    if (threadIdx.x == 0) {
      if (gw) gw[c] = static_cast<T>(sdyx);
      if (gb) gb[c] = static_cast<T>(sdy);
    }
    if (!gi) continue;
    const double wc = w ? static_cast<double>(w[c]) : 1.0;
    const double inv_count = 1.0 / static_cast<double>(count);
    for (int64_t i = threadIdx.x; i < count; i += blockDim.x) {
      const int64_t j = ((i / s.S) * s.C + c) * s.S + i % s.S;
      const double dy = static_cast<double>(g[j]);
      double v;
      if (training) {
        const double xhat = (static_cast<double>(x[j]) - m) * is;
        v = wc * is * (dy - sdy * inv_count - xhat * sdyx * inv_count);
      } else {
        v = wc * is * dy;
      }
      gi[j] = static_cast<T>(v);
    }
  }
}

template <typename T>
T* ptr_or_null(const Tensor& t) {
  return t.defined() ? t.data_ptr<T>() : nullptr;
}

unsigned channel_grid(int64_t C) { return static_cast<unsigned>(std::min<int64_t>(C, 65535)); }

// ---- cuDNN ----
struct BnDescs {
  cudnnTensorDescriptor_t x = nullptr, param = nullptr;
  BnDescs(const Tensor& input) {
    const BnShape s = bn_shape(input);
    GRAFT_CHECK(s.N <= INT32_MAX && s.C <= INT32_MAX && s.S <= INT32_MAX,
                "batch_norm on CUDA: shape too large for cuDNN");
    GRAFT_CUDNN_CHECK(cudnnCreateTensorDescriptor(&x));
    GRAFT_CUDNN_CHECK(cudnnCreateTensorDescriptor(&param));
    GRAFT_CUDNN_CHECK(cudnnSetTensor4dDescriptor(
        x, CUDNN_TENSOR_NCHW,
        input.dtype() == DType::Float32 ? CUDNN_DATA_FLOAT : CUDNN_DATA_DOUBLE,
        static_cast<int>(s.N), static_cast<int>(s.C), static_cast<int>(s.S), 1));
    GRAFT_CUDNN_CHECK(cudnnDeriveBNTensorDescriptor(param, x, CUDNN_BATCHNORM_SPATIAL));
  }
  ~BnDescs() {
    cudnnDestroyTensorDescriptor(x);
    cudnnDestroyTensorDescriptor(param);
  }
  BnDescs(const BnDescs&) = delete;
  BnDescs& operator=(const BnDescs&) = delete;
};

bool cudnn_ok(const Tensor& x, double eps) {
  return !native_bn() && eps >= CUDNN_BN_MIN_EPSILON && x.numel() > 0;
}

Tensor or_filled(const Tensor& t, int64_t C, const Tensor& like, double v) {
  if (t.defined()) return t;
  Tensor f = empty({C}, opts(like.dtype(), like.device()));
  kernel::fill(like.device())(f, v);
  return f;
}

void alpha_beta(DType t, const void*& one, const void*& zero) {
  static const float f1 = 1, f0 = 0;
  static const double d1 = 1, d0 = 0;
  one = t == DType::Float32 ? static_cast<const void*>(&f1) : &d1;
  zero = t == DType::Float32 ? static_cast<const void*>(&f0) : &d0;
}

void bn_train_cuda(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& rm,
                   const Tensor& rv, double momentum, double eps, const Tensor& out,
                   const Tensor& save_mean, const Tensor& save_invstd) {
  const int device = x.device().index;
  DeviceGuard guard(device);
  const BnShape s = bn_shape(x);
  if (cudnn_ok(x, eps)) {
    BnDescs d(x);
    const Tensor scale = or_filled(w, s.C, x, 1.0), shift = or_filled(b, s.C, x, 0.0);
    const void *one, *zero;
    alpha_beta(x.dtype(), one, zero);
    GRAFT_CUDNN_CHECK(cudnnBatchNormalizationForwardTraining(
        cudnn_handle(device), CUDNN_BATCHNORM_SPATIAL, one, zero, d.x, x.raw_data(), d.x,
        out.raw_data(), d.param, scale.raw_data(), shift.raw_data(), momentum,
        rm.defined() ? rm.raw_data() : nullptr, rv.defined() ? rv.raw_data() : nullptr, eps,
        save_mean.raw_data(), save_invstd.raw_data()));
    return;
  }
  GRAFT_DISPATCH_FLOAT(x.dtype(), "batch_norm", [&] {
    launch<bn_train_kernel<scalar_t>>(
        channel_grid(s.C), kBlock, 0, current_stream(device), x.data_ptr<scalar_t>(),
        ptr_or_null<scalar_t>(w), ptr_or_null<scalar_t>(b), ptr_or_null<scalar_t>(rm),
        ptr_or_null<scalar_t>(rv), momentum, eps, out.data_ptr<scalar_t>(),
        save_mean.data_ptr<scalar_t>(), save_invstd.data_ptr<scalar_t>(), s);
    GRAFT_CUDA_CHECK_LAUNCH();
  });
}

void bn_eval_cuda(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& rm,
                  const Tensor& rv, double eps, const Tensor& out) {
  const int device = x.device().index;
  DeviceGuard guard(device);
  const BnShape s = bn_shape(x);
  if (cudnn_ok(x, eps)) {
    BnDescs d(x);
    const Tensor scale = or_filled(w, s.C, x, 1.0), shift = or_filled(b, s.C, x, 0.0);
    const void *one, *zero;
    alpha_beta(x.dtype(), one, zero);
    GRAFT_CUDNN_CHECK(cudnnBatchNormalizationForwardInference(
        cudnn_handle(device), CUDNN_BATCHNORM_SPATIAL, one, zero, d.x, x.raw_data(), d.x,
        out.raw_data(), d.param, scale.raw_data(), shift.raw_data(), rm.raw_data(), rv.raw_data(),
        eps));
    return;
  }
  GRAFT_DISPATCH_FLOAT(x.dtype(), "batch_norm", [&] {
    launch<bn_eval_kernel<scalar_t>>(grid_for(x.numel(), kBlock), kBlock, 0, current_stream(device),
                                     x.data_ptr<scalar_t>(), ptr_or_null<scalar_t>(w),
                                     ptr_or_null<scalar_t>(b), rm.data_ptr<scalar_t>(),
                                     rv.data_ptr<scalar_t>(), eps, out.data_ptr<scalar_t>(), s);
    GRAFT_CUDA_CHECK_LAUNCH();
  });
}

void bn_backward_cuda(const Tensor& g, const Tensor& x, const Tensor& w, const Tensor& mean,
                      const Tensor& invstd, bool training, double eps, const Tensor& gi,
                      const Tensor& gw, const Tensor& gb) {
  const int device = x.device().index;
  DeviceGuard guard(device);
  const BnShape s = bn_shape(x);
  if (x.numel() == 0) {
    if (gw.defined()) kernel::fill(gw.device())(gw, 0.0);
    if (gb.defined()) kernel::fill(gb.device())(gb, 0.0);
    return;
  }
  // cuDNN's backward takes the saved statistics of its own forward
  // (save_mean / save_invstd) and, as cuDNN requires, the forward's epsilon.
  if (training && cudnn_ok(x, eps)) {
    BnDescs d(x);
    const Tensor scale = or_filled(w, s.C, x, 1.0);
    const TensorOptions o = opts(x.dtype(), x.device());
    const Tensor dx = gi.defined() ? gi : empty(x.sizes(), o);
    const Tensor dw = gw.defined() ? gw : empty({s.C}, o);
    const Tensor db = gb.defined() ? gb : empty({s.C}, o);
    const void *one, *zero;
    alpha_beta(x.dtype(), one, zero);
    GRAFT_CUDNN_CHECK(cudnnBatchNormalizationBackward(
        cudnn_handle(device), CUDNN_BATCHNORM_SPATIAL, one, zero, one, zero, d.x, x.raw_data(), d.x,
        g.raw_data(), d.x, dx.raw_data(), d.param, scale.raw_data(), dw.raw_data(), db.raw_data(),
        eps, mean.raw_data(), invstd.raw_data()));
    return;
  }
  GRAFT_DISPATCH_FLOAT(x.dtype(), "batch_norm_backward", [&] {
    launch<bn_backward_kernel<scalar_t>>(
        channel_grid(s.C), kBlock, 0, current_stream(device), g.data_ptr<scalar_t>(),
        x.data_ptr<scalar_t>(), ptr_or_null<scalar_t>(w), mean.data_ptr<scalar_t>(),
        invstd.data_ptr<scalar_t>(), training, ptr_or_null<scalar_t>(gi), ptr_or_null<scalar_t>(gw),
        ptr_or_null<scalar_t>(gb), s);
    GRAFT_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace

GRAFT_REGISTER_CUDA_KERNEL(batch_norm_forward_train, bn_train_cuda);
GRAFT_REGISTER_CUDA_KERNEL(batch_norm_forward_eval, bn_eval_cuda);
GRAFT_REGISTER_CUDA_KERNEL(batch_norm_backward, bn_backward_cuda);

}  // namespace graft::cuda
