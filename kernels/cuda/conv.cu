// CUDA 2-D convolution: cuDNN (default) or our implicit-GEMM kernels
// (GRAFT_CONV=native). cuDNN algorithms come from the v7 heuristics, or, with
// GRAFT_CUDNN_BENCHMARK=1, from timing every algorithm once per shape
// (cudnnFind*Ex over the heuristic's candidates, with the workspace the
// largest of them needs, capped by GRAFT_CUDNN_WORKSPACE_MB, default 1024);
// choices are cached per (shape, params, dtype, direction). TF32 is off unless
// GRAFT_TF32=1 (cuDNN's default math would allow it for float32).
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <tuple>
#include <vector>

#include "core/env.h"
#include "core/kernels.h"
#include "kernels/cuda/loops.cuh"
#include "kernels/cuda/tiled_gemm.cuh"

namespace graft::cuda {

namespace {

bool native_conv() {
  static const bool v = env_flag("GRAFT_CONV", "native", "cudnn");
  return v;
}
bool cudnn_benchmark() {
  static const bool v = env_flag("GRAFT_CUDNN_BENCHMARK", "1", "0");
  return v;
}
size_t workspace_limit() {
  static const size_t v = [] {
    const int64_t mb = env_int("GRAFT_CUDNN_WORKSPACE_MB", 1024);
    GRAFT_CHECK(mb >= 0, "GRAFT_CUDNN_WORKSPACE_MB must be non-negative, got ", mb);
    return static_cast<size_t>(mb) << 20;
  }();
  return v;
}

// ---------------------------------------------------------------------------
// cuDNN
cudnnDataType_t cudnn_type(DType t) {
  GRAFT_CHECK(t == DType::Float32 || t == DType::Float64, "conv2d on CUDA: unsupported dtype ",
              dtype_name(t));
  return t == DType::Float32 ? CUDNN_DATA_FLOAT : CUDNN_DATA_DOUBLE;
}

int to_int(int64_t v, const char* what) {
  GRAFT_CHECK(v >= 0 && v <= INT32_MAX, "conv2d on CUDA: ", what, " = ", v, " too large for cuDNN");
  return static_cast<int>(v);
}

// RAII descriptors for one convolution call.
struct ConvDescs {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  ConvDescs(const Tensor& input, const Tensor& weight, const Tensor& out,
            const F::Conv2dParams& p) {
    const cudnnDataType_t dt = cudnn_type(input.dtype());
    GRAFT_CUDNN_CHECK(cudnnCreateTensorDescriptor(&x));
    GRAFT_CUDNN_CHECK(cudnnCreateTensorDescriptor(&y));
    GRAFT_CUDNN_CHECK(cudnnCreateFilterDescriptor(&w));
    GRAFT_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&conv));
    const auto& xs = input.sizes();
    const auto& ws = weight.sizes();
    const auto& ys = out.sizes();
    GRAFT_CUDNN_CHECK(cudnnSetTensor4dDescriptor(x, CUDNN_TENSOR_NCHW, dt, to_int(xs[0], "N"),
                                                 to_int(xs[1], "C"), to_int(xs[2], "H"),
                                                 to_int(xs[3], "W")));
    GRAFT_CUDNN_CHECK(cudnnSetTensor4dDescriptor(y, CUDNN_TENSOR_NCHW, dt, to_int(ys[0], "N"),
                                                 to_int(ys[1], "O"), to_int(ys[2], "OH"),
                                                 to_int(ys[3], "OW")));
    GRAFT_CUDNN_CHECK(cudnnSetFilter4dDescriptor(w, dt, CUDNN_TENSOR_NCHW, to_int(ws[0], "O"),
                                                 to_int(ws[1], "C/groups"), to_int(ws[2], "kh"),
                                                 to_int(ws[3], "kw")));
    GRAFT_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(
        conv, to_int(p.pad_h, "pad"), to_int(p.pad_w, "pad"), to_int(p.stride_h, "stride"),
        to_int(p.stride_w, "stride"), to_int(p.dilation_h, "dilation"),
        to_int(p.dilation_w, "dilation"), CUDNN_CROSS_CORRELATION, dt));
    GRAFT_CUDNN_CHECK(cudnnSetConvolutionGroupCount(conv, to_int(p.groups, "groups")));
    // FMA math forbids TF32 (cuDNN's default math would use it for float32).
    const bool tf32 = tf32_enabled() && input.dtype() == DType::Float32;
    GRAFT_CUDNN_CHECK(
        cudnnSetConvolutionMathType(conv, tf32 ? CUDNN_TENSOR_OP_MATH : CUDNN_FMA_MATH));
  }
  ~ConvDescs() {
    cudnnDestroyTensorDescriptor(x);
    cudnnDestroyTensorDescriptor(y);
    cudnnDestroyFilterDescriptor(w);
    cudnnDestroyConvolutionDescriptor(conv);
  }
  ConvDescs(const ConvDescs&) = delete;
  ConvDescs& operator=(const ConvDescs&) = delete;
};

enum class Dir { Forward, BackwardData, BackwardFilter };

using AlgoKey =
    std::tuple<int, int, std::vector<int64_t>, std::vector<int64_t>, std::vector<int64_t>, bool>;
struct AlgoChoice {
  int algo;
  size_t workspace;
};

AlgoKey make_key(Dir dir, const Tensor& x, const Tensor& w, const F::Conv2dParams& p) {
  std::vector<int64_t> params{
      p.stride_h,      p.stride_w,   p.pad_h,  p.pad_w,
      p.dilation_h,    p.dilation_w, p.groups, static_cast<int64_t>(x.dtype()),
      x.device().index};
  return {static_cast<int>(dir), cudnn_benchmark() ? 1 : 0, x.sizes(), w.sizes(), params,
          tf32_enabled()};
}

std::mutex g_algo_mutex;
std::map<AlgoKey, AlgoChoice> g_algo_cache;

// Benchmark mode's workspace: the largest any heuristic candidate within the
// limit needs (not the limit itself: a 1 GiB block would stay in the caching
// allocator, reusable by nothing).
template <typename Perf>
size_t find_workspace(const Perf* perf, int n) {
  size_t most = 0;
  for (int i = 0; i < n; ++i)
    if (perf[i].status == CUDNN_STATUS_SUCCESS && perf[i].memory <= workspace_limit())
      most = std::max(most, perf[i].memory);
  return most;
}

// Picks the first candidate cuDNN reports as supported whose workspace fits.
template <typename Perf>
AlgoChoice pick(const Perf* perf, int n, const char* what) {
  for (int i = 0; i < n; ++i) {
    if (perf[i].status == CUDNN_STATUS_SUCCESS && perf[i].memory <= workspace_limit())
      return {static_cast<int>(perf[i].algo), perf[i].memory};
  }
  GRAFT_FAIL("conv2d on CUDA: cuDNN found no usable ", what, " algorithm within the ",
             workspace_limit() >> 20, " MiB workspace limit (GRAFT_CUDNN_WORKSPACE_MB)");
}

AlgoChoice choose(Dir dir, const ConvDescs& d, const Tensor& x, const Tensor& w, const Tensor& y,
                  const F::Conv2dParams& p, cudnnHandle_t h) {
  const AlgoKey key = make_key(dir, x, w, p);
  {
    std::lock_guard<std::mutex> lock(g_algo_mutex);
    auto it = g_algo_cache.find(key);
    if (it != g_algo_cache.end()) return it->second;
  }
  AlgoChoice c{};
  constexpr int kMax = 16;
  int n = 0;
  if (dir == Dir::Forward) {
    cudnnConvolutionFwdAlgoPerf_t perf[kMax];
    GRAFT_CUDNN_CHECK(
        cudnnGetConvolutionForwardAlgorithm_v7(h, d.x, d.w, d.conv, d.y, kMax, &n, perf));
    if (cudnn_benchmark()) {
      Workspace ws(find_workspace(perf, n), x.device().index);
      Tensor scratch = empty(y.sizes(), opts(y.dtype(), y.device()));  // Find writes y
      GRAFT_CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithmEx(
          h, d.x, x.raw_data(), d.w, w.raw_data(), d.conv, d.y, scratch.raw_data(), kMax, &n, perf,
          ws.data(), ws.size()));
    }
    c = pick(perf, n, "forward");
  } else if (dir == Dir::BackwardData) {
    cudnnConvolutionBwdDataAlgoPerf_t perf[kMax];
    GRAFT_CUDNN_CHECK(
        cudnnGetConvolutionBackwardDataAlgorithm_v7(h, d.w, d.y, d.conv, d.x, kMax, &n, perf));
    if (cudnn_benchmark()) {
      Workspace ws(find_workspace(perf, n), x.device().index);
      Tensor scratch = empty(x.sizes(), opts(x.dtype(), x.device()));
      GRAFT_CUDNN_CHECK(cudnnFindConvolutionBackwardDataAlgorithmEx(
          h, d.w, w.raw_data(), d.y, y.raw_data(), d.conv, d.x, scratch.raw_data(), kMax, &n, perf,
          ws.data(), ws.size()));
    }
    c = pick(perf, n, "backward-data");
  } else {
    cudnnConvolutionBwdFilterAlgoPerf_t perf[kMax];
    GRAFT_CUDNN_CHECK(
        cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, d.x, d.y, d.conv, d.w, kMax, &n, perf));
    if (cudnn_benchmark()) {
      Workspace ws(find_workspace(perf, n), x.device().index);
      Tensor scratch = empty(w.sizes(), opts(w.dtype(), w.device()));
      GRAFT_CUDNN_CHECK(cudnnFindConvolutionBackwardFilterAlgorithmEx(
          h, d.x, x.raw_data(), d.y, y.raw_data(), d.conv, d.w, scratch.raw_data(), kMax, &n, perf,
          ws.data(), ws.size()));
    }
    c = pick(perf, n, "backward-filter");
  }
  std::lock_guard<std::mutex> lock(g_algo_mutex);
  g_algo_cache[key] = c;
  return c;
}

template <typename T>
void scalars(const void*& one, const void*& zero) {
  static const T o = 1, z = 0;
  one = &o;
  zero = &z;
}

void cudnn_forward(const Tensor& x, const Tensor& w, const Tensor& b, const F::Conv2dParams& p,
                   const Tensor& out) {
  const int device = x.device().index;
  DeviceGuard guard(device);
  cudnnHandle_t h = cudnn_handle(device);
  ConvDescs d(x, w, out, p);
  const AlgoChoice c = choose(Dir::Forward, d, x, w, out, p, h);
  Workspace ws(c.workspace, device);
  const void *one, *zero;
  if (x.dtype() == DType::Float32)
    scalars<float>(one, zero);
  else
    scalars<double>(one, zero);
  GRAFT_CUDNN_CHECK(cudnnConvolutionForward(h, one, d.x, x.raw_data(), d.w, w.raw_data(), d.conv,
                                            static_cast<cudnnConvolutionFwdAlgo_t>(c.algo),
                                            ws.data(), ws.size(), zero, d.y, out.raw_data()));
  if (b.defined()) {
    cudnnTensorDescriptor_t bd;
    GRAFT_CUDNN_CHECK(cudnnCreateTensorDescriptor(&bd));
    const cudnnStatus_t st = cudnnSetTensor4dDescriptor(
        bd, CUDNN_TENSOR_NCHW, cudnn_type(b.dtype()), 1, to_int(b.numel(), "O"), 1, 1);
    const cudnnStatus_t st2 = st == CUDNN_STATUS_SUCCESS ? cudnnAddTensor(h, one, bd, b.raw_data(),
                                                                          one, d.y, out.raw_data())
                                                         : st;
    cudnnDestroyTensorDescriptor(bd);
    GRAFT_CUDNN_CHECK(st2);
  }
}

void cudnn_backward_input(const Tensor& g, const Tensor& w, const F::Conv2dParams& p,
                          const Tensor& gi) {
  const int device = g.device().index;
  DeviceGuard guard(device);
  cudnnHandle_t h = cudnn_handle(device);
  ConvDescs d(gi, w, g, p);
  const AlgoChoice c = choose(Dir::BackwardData, d, gi, w, g, p, h);
  Workspace ws(c.workspace, device);
  const void *one, *zero;
  if (g.dtype() == DType::Float32)
    scalars<float>(one, zero);
  else
    scalars<double>(one, zero);
  GRAFT_CUDNN_CHECK(cudnnConvolutionBackwardData(h, one, d.w, w.raw_data(), d.y, g.raw_data(),
                                                 d.conv,
                                                 static_cast<cudnnConvolutionBwdDataAlgo_t>(c.algo),
                                                 ws.data(), ws.size(), zero, d.x, gi.raw_data()));
}

void cudnn_backward_weight(const Tensor& g, const Tensor& x, const F::Conv2dParams& p,
                           const Tensor& gw) {
  const int device = g.device().index;
  DeviceGuard guard(device);
  cudnnHandle_t h = cudnn_handle(device);
  ConvDescs d(x, gw, g, p);
  const AlgoChoice c = choose(Dir::BackwardFilter, d, x, gw, g, p, h);
  Workspace ws(c.workspace, device);
  const void *one, *zero;
  if (g.dtype() == DType::Float32)
    scalars<float>(one, zero);
  else
    scalars<double>(one, zero);
  GRAFT_CUDNN_CHECK(
      cudnnConvolutionBackwardFilter(h, one, d.x, x.raw_data(), d.y, g.raw_data(), d.conv,
                                     static_cast<cudnnConvolutionBwdFilterAlgo_t>(c.algo),
                                     ws.data(), ws.size(), zero, d.w, gw.raw_data()));
}

// ---------------------------------------------------------------------------
// Native implicit GEMM. Each direction is C[M, Ncols] = A[M, K] * B[K, Ncols]
// per group, where B (and for backward-weight A) is gathered on the fly from
// the NCHW tensors instead of materialising im2col: the native bmm's tiles
// (tiled_gemm.cuh) with these loads and stores.
struct ConvShape {
  int64_t N, C, H, W, O, OH, OW, KH, KW, G;
  int64_t sh, sw, ph, pw, dh, dw;
};

// Forward:  M = O/G, cols = N*OH*OW, K = C/G*KH*KW.
//   A(o, k) = w[g*Og + o, k]; B(k, col) = x[n, g*Cg + c, oh*sh-ph+kh*dh, ow*sw-pw+kw*dw]
// BackwardData: M = C/G, cols = N*H*W, K = O/G*KH*KW.
//   A(c, k=(o,kh,kw)) = w[g*Og+o, c, kh, kw]; B(k, col=(n,h,w)) = dy[n, g*Og+o, oh, ow]
//   with oh = (h+ph-kh*dh)/sh when divisible and in range, else 0.
// BackwardFilter: M = O/G, cols = C/G*KH*KW, K = N*OH*OW.
//   A(o, k=(n,oh,ow)) = dy[n, g*Og+o, oh, ow]; B(k, col=(c,kh,kw)) = x[n, g*Cg+c, ih, iw]
template <int DIR, typename T>
__device__ __forceinline__ T load_a(const ConvShape& s, const T* a, int64_t g, int64_t m,
                                    int64_t k) {
  const int64_t Og = s.O / s.G, Cg = s.C / s.G, KK = s.KH * s.KW;
  if (DIR == 0) return a[((g * Og + m) * Cg) * KK + k];
  if (DIR == 1) {
    const int64_t o = k / KK, r = k % KK;
    return a[((g * Og + o) * Cg + m) * KK + r];
  }
  const int64_t n = k / (s.OH * s.OW), r = k % (s.OH * s.OW);
  return a[((n * s.O + g * Og + m) * s.OH * s.OW) + r];
}

template <int DIR, typename T>
__device__ __forceinline__ T load_b(const ConvShape& s, const T* b, int64_t g, int64_t k,
                                    int64_t col) {
  const int64_t Og = s.O / s.G, Cg = s.C / s.G, KK = s.KH * s.KW;
  if (DIR == 0) {
    const int64_t c = k / KK, kh = (k % KK) / s.KW, kw = k % s.KW;
    const int64_t n = col / (s.OH * s.OW), oh = (col / s.OW) % s.OH, ow = col % s.OW;
    const int64_t ih = oh * s.sh - s.ph + kh * s.dh, iw = ow * s.sw - s.pw + kw * s.dw;
    if (ih < 0 || ih >= s.H || iw < 0 || iw >= s.W) return T(0);
    return b[((n * s.C + g * Cg + c) * s.H + ih) * s.W + iw];
  }
  if (DIR == 1) {
    const int64_t o = k / KK, kh = (k % KK) / s.KW, kw = k % s.KW;
    const int64_t n = col / (s.H * s.W), h = (col / s.W) % s.H, w = col % s.W;
    const int64_t th = h + s.ph - kh * s.dh, tw = w + s.pw - kw * s.dw;
    if (th < 0 || tw < 0 || th % s.sh || tw % s.sw) return T(0);
    const int64_t oh = th / s.sh, ow = tw / s.sw;
    if (oh >= s.OH || ow >= s.OW) return T(0);
    return b[((n * s.O + g * Og + o) * s.OH + oh) * s.OW + ow];
  }
  const int64_t c = col / KK, kh = (col % KK) / s.KW, kw = col % s.KW;
  const int64_t n = k / (s.OH * s.OW), oh = (k / s.OW) % s.OH, ow = k % s.OW;
  const int64_t ih = oh * s.sh - s.ph + kh * s.dh, iw = ow * s.sw - s.pw + kw * s.dw;
  if (ih < 0 || ih >= s.H || iw < 0 || iw >= s.W) return T(0);
  return b[((n * s.C + g * Cg + c) * s.H + ih) * s.W + iw];
}

template <int DIR, typename T>
__device__ __forceinline__ void store_c(const ConvShape& s, T* c, int64_t g, int64_t m, int64_t col,
                                        T v) {
  const int64_t Og = s.O / s.G, Cg = s.C / s.G, KK = s.KH * s.KW;
  if (DIR == 0) {
    const int64_t n = col / (s.OH * s.OW), r = col % (s.OH * s.OW);
    c[(n * s.O + g * Og + m) * s.OH * s.OW + r] = v;
  } else if (DIR == 1) {
    const int64_t n = col / (s.H * s.W), r = col % (s.H * s.W);
    c[(n * s.C + g * Cg + m) * s.H * s.W + r] = v;
  } else {
    c[(g * Og + m) * Cg * KK + col] = v;
  }
}

template <int DIR, typename T>
__global__ void __launch_bounds__(kTileThreads)
    conv_igemm_kernel(ConvShape s, int64_t M, int64_t NC, int64_t K, const T* __restrict__ A,
                      const T* __restrict__ B, T* __restrict__ C) {
  const int64_t m0 = static_cast<int64_t>(blockIdx.y) * kTile;
  const int64_t g = blockIdx.z;
  for (int64_t n0 = static_cast<int64_t>(blockIdx.x) * kTile; n0 < NC;
       n0 += static_cast<int64_t>(gridDim.x) * kTile) {
    gemm_tile<T>(
        m0, n0, M, NC, K, [&](int64_t m, int64_t k) { return load_a<DIR>(s, A, g, m, k); },
        [&](int64_t k, int64_t col) { return load_b<DIR>(s, B, g, k, col); },
        [&](int64_t m, int64_t col, T v) { store_c<DIR>(s, C, g, m, col, v); });
  }
}

ConvShape shape_of(const Tensor& x, const Tensor& w, const Tensor& y, const F::Conv2dParams& p) {
  return {x.sizes()[0], x.sizes()[1], x.sizes()[2], x.sizes()[3], w.sizes()[0], y.sizes()[2],
          y.sizes()[3], w.sizes()[2], w.sizes()[3], p.groups,     p.stride_h,   p.stride_w,
          p.pad_h,      p.pad_w,      p.dilation_h, p.dilation_w};
}

template <int DIR>
void native_conv(const ConvShape& s, const Tensor& a, const Tensor& b, const Tensor& c) {
  int64_t M, NC, K;
  if (DIR == 0) {
    M = s.O / s.G;
    NC = s.N * s.OH * s.OW;
    K = s.C / s.G * s.KH * s.KW;
  } else if (DIR == 1) {
    M = s.C / s.G;
    NC = s.N * s.H * s.W;
    K = s.O / s.G * s.KH * s.KW;
  } else {
    M = s.O / s.G;
    NC = s.C / s.G * s.KH * s.KW;
    K = s.N * s.OH * s.OW;
  }
  if (M == 0 || NC == 0) return;
  if (K == 0) {
    kernel::fill(c.device())(c, 0.0);
    return;
  }
  GRAFT_CHECK((M + kTile - 1) / kTile <= 65535 && s.G <= 65535,
              "conv2d (native): too many output channels or groups for the grid");
  const dim3 grid(static_cast<unsigned>(std::min<int64_t>((NC + kTile - 1) / kTile, 65535)),
                  static_cast<unsigned>((M + kTile - 1) / kTile), static_cast<unsigned>(s.G));
  const int device = c.device().index;
  DeviceGuard guard(device);
  GRAFT_DISPATCH_FLOAT(c.dtype(), "conv2d", [&] {
    launch<conv_igemm_kernel<DIR, scalar_t>>(grid, kTileThreads, 0, current_stream(device), s, M,
                                             NC, K, a.data_ptr<scalar_t>(), b.data_ptr<scalar_t>(),
                                             c.data_ptr<scalar_t>());
    GRAFT_CUDA_CHECK_LAUNCH();
  });
}

void conv_forward_cuda(const Tensor& x, const Tensor& w, const Tensor& b, const F::Conv2dParams& p,
                       const Tensor& out) {
  if (out.numel() == 0) return;
  if (!native_conv()) {
    cudnn_forward(x, w, b, p, out);
    return;
  }
  native_conv<0>(shape_of(x, w, out, p), w, x, out);
  if (b.defined()) {
    const Tensor bb = b.detach().view({1, b.numel(), 1, 1}).expand(out.sizes());
    kernel::binary(out.device())(BinaryOp::Add, out, bb, out);
  }
}

void conv_backward_input_cuda(const Tensor& g, const Tensor& w, const F::Conv2dParams& p,
                              const Tensor& gi) {
  if (gi.numel() == 0) return;
  if (g.numel() == 0) {
    kernel::fill(gi.device())(gi, 0.0);
    return;
  }
  if (!native_conv()) {
    cudnn_backward_input(g, w, p, gi);
    return;
  }
  native_conv<1>(shape_of(gi, w, g, p), w, g, gi);
}

void conv_backward_weight_cuda(const Tensor& g, const Tensor& x, const F::Conv2dParams& p,
                               const Tensor& gw) {
  if (gw.numel() == 0) return;
  if (g.numel() == 0) {  // empty batch: cuDNN rejects N = 0 descriptors
    kernel::fill(gw.device())(gw, 0.0);
    return;
  }
  if (!native_conv()) {
    cudnn_backward_weight(g, x, p, gw);
    return;
  }
  native_conv<2>(shape_of(x, gw, g, p), g, x, gw);
}

}  // namespace

GRAFT_REGISTER_CUDA_KERNEL(conv2d_forward, conv_forward_cuda);
GRAFT_REGISTER_CUDA_KERNEL(conv2d_backward_input, conv_backward_input_cuda);
GRAFT_REGISTER_CUDA_KERNEL(conv2d_backward_weight, conv_backward_weight_cuda);

}  // namespace graft::cuda
