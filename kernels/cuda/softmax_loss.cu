// CUDA (log_)softmax forward/backward and the classification losses: nll and
// the fused cross-entropy forward/backward (log_softmax + nll + label
// smoothing), written by hand. The CPU twin is kernels/cpu/softmax_loss.cpp.
// All nn kernels receive contiguous tensors (core/kernels.h).
#include <algorithm>
#include <cfloat>
#include <cmath>

#include "core/kernels.h"
#include "kernels/cuda/loops.cuh"

namespace graft::cuda {

namespace {

// ---- softmax over a middle dim ([outer, len, inner], inner > 1): a block
// per tile of `cols` neighbouring lines (same outer index, consecutive inner
// indices, so a warp reads consecutive addresses). The block is cols x rows
// threads (cols * rows = kBlock); the rows threads of a column split the
// line's len elements and combine through shared memory. cols is inner
// rounded up to a power of two, at most 32. Sums in double, as the CPU.
struct MidTiles {
  unsigned cols, rows;
  int64_t tiles_per_outer, tiles;
  MidTiles(int64_t outer, int64_t inner) {
    cols = 1;
    while (cols < 32 && cols < inner) cols *= 2;
    rows = static_cast<unsigned>(kBlock) / cols;
    tiles_per_outer = (inner + cols - 1) / cols;
    tiles = outer * tiles_per_outer;
  }
  dim3 block() const { return dim3(cols, rows); }
  unsigned grid() const { return static_cast<unsigned>(std::min<int64_t>(tiles, 65535)); }
};

// Combines v over the rows of each column (blockDim.y threads); every thread
// gets its column's result. `red` holds kBlock doubles; it is free again when
// this returns.
template <bool kMax>
__device__ __forceinline__ double column_reduce(double v, double* red) {
  const unsigned c = threadIdx.x, cols = blockDim.x;
  red[threadIdx.y * cols + c] = v;
  __syncthreads();
  for (unsigned d = blockDim.y / 2; d > 0; d /= 2) {
    if (threadIdx.y < d) {
      const double o = red[(threadIdx.y + d) * cols + c], a = red[threadIdx.y * cols + c];
      red[threadIdx.y * cols + c] = kMax ? fmax(a, o) : a + o;
    }
    __syncthreads();
  }
  v = red[c];
  __syncthreads();  // red is overwritten by the next reduction
  return v;
}

template <typename T>
__global__ void softmax_fwd_mid_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t len,
                                       int64_t inner, int64_t tiles_per_outer, int64_t tiles,
                                       bool log) {
  __shared__ double red[kBlock];
  for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
    const int64_t o = tile / tiles_per_outer;
    const int64_t in = tile % tiles_per_outer * blockDim.x + threadIdx.x;
    const bool live = in < inner;  // every thread takes part in the reductions
    const T* xr = x + o * len * inner + (live ? in : 0);
    T* yr = y + o * len * inner + (live ? in : 0);
    double m = -INFINITY;
    if (live)
      for (int64_t k = threadIdx.y; k < len; k += blockDim.y)
        m = fmax(m, static_cast<double>(xr[k * inner]));
    m = column_reduce<true>(m, red);
    double s = 0;
    if (live)
      for (int64_t k = threadIdx.y; k < len; k += blockDim.y)
        s += ::exp(static_cast<double>(xr[k * inner]) - m);
    const double ls = ::log(column_reduce<false>(s, red));
    if (live)
      for (int64_t k = threadIdx.y; k < len; k += blockDim.y) {
        const double v = static_cast<double>(xr[k * inner]) - m;
        yr[k * inner] = static_cast<T>(log ? v - ls : ::exp(v - ls));
      }
  }
}

// softmax: gi = y * (g - sum(g*y)); log_softmax: gi = g - exp(y) * sum(g)
template <typename T>
__global__ void softmax_bwd_mid_kernel(const T* __restrict__ g, const T* __restrict__ y,
                                       T* __restrict__ gi, int64_t len, int64_t inner,
                                       int64_t tiles_per_outer, int64_t tiles, bool log) {
  __shared__ double red[kBlock];
  for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
    const int64_t o = tile / tiles_per_outer;
    const int64_t in = tile % tiles_per_outer * blockDim.x + threadIdx.x;
    const bool live = in < inner;
    const int64_t base = o * len * inner + (live ? in : 0);
    double s = 0;
    if (live)
      for (int64_t k = threadIdx.y; k < len; k += blockDim.y) {
        const int64_t j = base + k * inner;
        s += log ? static_cast<double>(g[j]) : static_cast<double>(g[j]) * y[j];
      }
    s = column_reduce<false>(s, red);
    if (live)
      for (int64_t k = threadIdx.y; k < len; k += blockDim.y) {
        const int64_t j = base + k * inner;
        gi[j] = log ? static_cast<T>(g[j] - ::exp(static_cast<double>(y[j])) * s)
                    : static_cast<T>(y[j] * (g[j] - s));
      }
  }
}

// ---- softmax over the last dim (inner == 1, the common case): a warp per
// row, so long rows are read by 32 threads at once; sums in double as above.
constexpr int kWarp = 32;
__device__ __forceinline__ double warp_sum(double v) {
  for (int d = kWarp / 2; d > 0; d /= 2) v += __shfl_xor_sync(0xffffffffu, v, d);
  return v;
}
__device__ __forceinline__ double warp_max(double v) {
  for (int d = kWarp / 2; d > 0; d /= 2) v = fmax(v, __shfl_xor_sync(0xffffffffu, v, d));
  return v;
}

// Every lane of a warp takes the same rows, so the shuffles see full warps.
#define GRAFT_WARP_PER_ROW(r, rows)                                                       \
  for (int64_t r = (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x) / kWarp; \
       r < (rows); r += static_cast<int64_t>(blockDim.x) * gridDim.x / kWarp)

template <typename T>
__global__ void softmax_fwd_rows_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t rows,
                                        int64_t len, bool log) {
  const int lane = threadIdx.x % kWarp;
  GRAFT_WARP_PER_ROW(r, rows) {
    const T* xr = x + r * len;
    T* yr = y + r * len;
    double m = -INFINITY;
    for (int64_t k = lane; k < len; k += kWarp) m = fmax(m, static_cast<double>(xr[k]));
    m = warp_max(m);
    double s = 0;
    for (int64_t k = lane; k < len; k += kWarp) s += ::exp(static_cast<double>(xr[k]) - m);
    const double ls = ::log(warp_sum(s));
    for (int64_t k = lane; k < len; k += kWarp) {
      const double v = static_cast<double>(xr[k]) - m;
      yr[k] = static_cast<T>(log ? v - ls : ::exp(v - ls));
    }
  }
}

template <typename T>
__global__ void softmax_bwd_rows_kernel(const T* __restrict__ g, const T* __restrict__ y,
                                        T* __restrict__ gi, int64_t rows, int64_t len, bool log) {
  const int lane = threadIdx.x % kWarp;
  GRAFT_WARP_PER_ROW(r, rows) {
    const int64_t base = r * len;
    double s = 0;
    for (int64_t k = lane; k < len; k += kWarp) {
      const int64_t j = base + k;
      s += log ? static_cast<double>(g[j]) : static_cast<double>(g[j]) * y[j];
    }
    s = warp_sum(s);
    for (int64_t k = lane; k < len; k += kWarp) {
      const int64_t j = base + k;
      gi[j] = log ? static_cast<T>(g[j] - ::exp(static_cast<double>(y[j])) * s)
                  : static_cast<T>(y[j] * (g[j] - s));
    }
  }
}

unsigned warp_rows_grid(int64_t rows) { return grid_for(rows, kBlock / kWarp); }

void softmax_forward_cuda(const Tensor& x, int64_t dim, bool log, const Tensor& out) {
  const DimSplit r(x.sizes(), dim);
  const int device = x.device().index;
  DeviceGuard guard(device);
  GRAFT_DISPATCH_FLOAT(x.dtype(), "softmax", [&] {
    if (r.inner == 1) {
      launch<softmax_fwd_rows_kernel<scalar_t>>(warp_rows_grid(r.outer), kBlock, 0,
                                                current_stream(device), x.data_ptr<scalar_t>(),
                                                out.data_ptr<scalar_t>(), r.outer, r.len, log);
      GRAFT_CUDA_CHECK_LAUNCH();
      return;
    }
    const MidTiles t(r.outer, r.inner);
    launch<softmax_fwd_mid_kernel<scalar_t>>(t.grid(), t.block(), 0, current_stream(device),
                                             x.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(),
                                             r.len, r.inner, t.tiles_per_outer, t.tiles, log);
    GRAFT_CUDA_CHECK_LAUNCH();
  });
}

void softmax_backward_cuda(const Tensor& grad_out, const Tensor& output, int64_t dim, bool log,
                           const Tensor& grad_input) {
  const DimSplit r(output.sizes(), dim);
  if (output.numel() == 0) return;
  const int device = output.device().index;
  DeviceGuard guard(device);
  GRAFT_DISPATCH_FLOAT(output.dtype(), "softmax_backward", [&] {
    if (r.inner == 1) {
      launch<softmax_bwd_rows_kernel<scalar_t>>(
          warp_rows_grid(r.outer), kBlock, 0, current_stream(device), grad_out.data_ptr<scalar_t>(),
          output.data_ptr<scalar_t>(), grad_input.data_ptr<scalar_t>(), r.outer, r.len, log);
      GRAFT_CUDA_CHECK_LAUNCH();
      return;
    }
    const MidTiles t(r.outer, r.inner);
    launch<softmax_bwd_mid_kernel<scalar_t>>(
        t.grid(), t.block(), 0, current_stream(device), grad_out.data_ptr<scalar_t>(),
        output.data_ptr<scalar_t>(), grad_input.data_ptr<scalar_t>(), r.len, r.inner,
        t.tiles_per_outer, t.tiles, log);
    GRAFT_CUDA_CHECK_LAUNCH();
  });
}

// ---- nll / cross-entropy ----
// Row kernels write each row's loss (double) and whether it counts;
// reduce_losses then sums them in a fixed order (deterministic, like the CPU).
__device__ __forceinline__ bool target_counts(int64_t t, int64_t C, int64_t ignore_index,
                                              int* flag) {
  if (t == ignore_index) return false;
  if (t < 0 || t >= C) {
    raise_device_error(flag, kIndexOutOfRange);
    return false;
  }
  return true;
}

// A warp per row: the log-softmax (stored for backward) is computed by all
// lanes; lane 0 then checks the target and writes the row's loss.
template <typename T>
__global__ void ce_rows_kernel(const T* __restrict__ x, const int64_t* __restrict__ target,
                               int64_t N, int64_t C, int64_t ignore_index, double ls,
                               bool from_logits, T* __restrict__ log_probs,
                               double* __restrict__ loss, int* __restrict__ counts, int* flag) {
  const int lane = threadIdx.x % kWarp;
  GRAFT_WARP_PER_ROW(i, N) {
    const T* xr = x + i * C;
    if (from_logits) {
      double m = -INFINITY;
      for (int64_t c = lane; c < C; c += kWarp) m = fmax(m, static_cast<double>(xr[c]));
      m = warp_max(m);
      double s = 0;
      for (int64_t c = lane; c < C; c += kWarp) s += ::exp(static_cast<double>(xr[c]) - m);
      const double lse = m + ::log(warp_sum(s));
      for (int64_t c = lane; c < C; c += kWarp)
        log_probs[i * C + c] = static_cast<T>(static_cast<double>(xr[c]) - lse);
      __syncwarp();  // the row's log-probabilities, written by every lane, are read below
    }
    const T* lp = from_logits ? log_probs + i * C : xr;
    double smooth = 0;
    if (ls > 0) {
      for (int64_t c = lane; c < C; c += kWarp) smooth -= static_cast<double>(lp[c]);
      smooth = warp_sum(smooth);
    }
    if (lane != 0) continue;
    const int64_t t = target[i];
    const bool counts_row = target_counts(t, C, ignore_index, flag);
    counts[i] = counts_row ? 1 : 0;
    loss[i] = counts_row
                  ? (1 - ls) * -static_cast<double>(lp[t]) + ls / static_cast<double>(C) * smooth
                  : 0.0;
  }
}

// ---- the loss reduction: sum (or mean over the rows that count) of N
// per-row losses, in two deterministic passes. Pass 1: block b sums its own
// contiguous chunk of rows through a shared-memory tree into partial b; pass 2
// (one block) sums the partials the same way. The chunking depends on N only,
// so the result is the same on every run and every GPU.
constexpr int64_t kLossChunk = 4096, kMaxLossPartials = 1024;  // 16 rows per thread
struct LossSplit {
  int64_t parts, chunk;
  explicit LossSplit(int64_t n) {
    parts = std::min<int64_t>(kMaxLossPartials,
                              std::max<int64_t>(1, (n + kLossChunk - 1) / kLossChunk));
    chunk = std::max<int64_t>(1, (n + parts - 1) / parts);
  }
};

// Sums (s, c) over the block; every thread gets the totals.
__device__ __forceinline__ void block_sum_count(double& s, long long& c, double* s_sum,
                                                long long* s_cnt) {
  s_sum[threadIdx.x] = s;
  s_cnt[threadIdx.x] = c;
  __syncthreads();
  for (unsigned d = blockDim.x / 2; d > 0; d /= 2) {
    if (threadIdx.x < d) {
      s_sum[threadIdx.x] += s_sum[threadIdx.x + d];
      s_cnt[threadIdx.x] += s_cnt[threadIdx.x + d];
    }
    __syncthreads();
  }
  s = s_sum[0];
  c = s_cnt[0];
}

// Pass 1. From the row losses and counts (forward), or, with `target` set,
// counting the rows whose target counts (backward of a mean).
__global__ void loss_partials_kernel(const double* __restrict__ loss,
                                     const int* __restrict__ counts,
                                     const int64_t* __restrict__ target, int64_t C,
                                     int64_t ignore_index, int64_t N, int64_t chunk,
                                     double* __restrict__ psum, long long* __restrict__ pcnt) {
  __shared__ double s_sum[kBlock];
  __shared__ long long s_cnt[kBlock];
  const int64_t begin = blockIdx.x * chunk, end = i64min(N, begin + chunk);
  double s = 0;
  long long c = 0;
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
    if (target) {
      const int64_t t = target[i];
      c += (t != ignore_index && t >= 0 && t < C) ? 1 : 0;
    } else {
      s += loss[i];
      c += counts[i];
    }
  }
  block_sum_count(s, c, s_sum, s_cnt);
  if (threadIdx.x == 0) {
    psum[blockIdx.x] = s;
    pcnt[blockIdx.x] = c;
  }
}

// Pass 2: out[0] = the sum (or mean), and/or *count = the number of rows that count.
template <typename T>
__global__ void loss_finish_kernel(const double* __restrict__ psum,
                                   const long long* __restrict__ pcnt, int64_t parts, int reduction,
                                   T* __restrict__ out, int* __restrict__ count) {
  __shared__ double s_sum[kBlock];
  __shared__ long long s_cnt[kBlock];
  double s = 0;
  long long c = 0;
  for (int64_t i = threadIdx.x; i < parts; i += blockDim.x) {
    s += psum[i];
    c += pcnt[i];
  }
  block_sum_count(s, c, s_sum, s_cnt);
  if (threadIdx.x != 0) return;
  if (out) out[0] = static_cast<T>(reduction == kReduceMean ? s / static_cast<double>(c) : s);
  if (count) *count = static_cast<int>(c);
}

// Runs both passes: out[0] from (loss, counts), or *count from target.
template <typename T>
void reduce_losses(const double* loss, const int* counts, const int64_t* target, int64_t C,
                   int64_t ignore_index, int64_t N, int reduction, T* out, int* count, int device,
                   cudaStream_t stream) {
  const LossSplit split(N);
  Workspace psum(sizeof(double) * split.parts, device),
      pcnt(sizeof(long long) * split.parts, device);
  double* ps = static_cast<double*>(psum.data());
  long long* pc = static_cast<long long*>(pcnt.data());
  launch<loss_partials_kernel>(static_cast<unsigned>(split.parts), kBlock, 0, stream, loss, counts,
                               target, C, ignore_index, N, split.chunk, ps, pc);
  GRAFT_CUDA_CHECK_LAUNCH();
  launch<loss_finish_kernel<T>>(1, kBlock, 0, stream, static_cast<const double*>(ps),
                                static_cast<const long long*>(pc), split.parts, reduction, out,
                                count);
  GRAFT_CUDA_CHECK_LAUNCH();
}

template <typename T>
__global__ void loss_copy_kernel(const double* __restrict__ loss, int64_t N, T* __restrict__ out) {
  GRAFT_GRID_STRIDE(i, N) out[i] = static_cast<T>(loss[i]);
}

template <typename T>
void loss_forward(const Tensor& x, const Tensor& target, int reduction, int64_t ignore_index,
                  double ls, const Tensor& out, const Tensor& log_probs, bool from_logits) {
  const int64_t N = x.sizes()[0], C = x.sizes()[1];
  const int device = x.device().index;
  DeviceGuard guard(device);
  cudaStream_t stream = current_stream(device);
  Workspace loss(sizeof(double) * std::max<int64_t>(N, 1), device);
  Workspace counts(sizeof(int) * std::max<int64_t>(N, 1), device);
  double* l = static_cast<double*>(loss.data());
  int* cnt = static_cast<int*>(counts.data());
  if (N > 0) {
    launch<ce_rows_kernel<T>>(warp_rows_grid(N), kBlock, 0, stream, x.data_ptr<T>(),
                              target.data_ptr<int64_t>(), N, C, ignore_index, ls, from_logits,
                              from_logits ? log_probs.data_ptr<T>() : nullptr, l, cnt,
                              device_error_flag(device));
    GRAFT_CUDA_CHECK_LAUNCH();
  }
  if (reduction == kReduceNone) {
    if (N > 0)
      launch<loss_copy_kernel<T>>(grid_for(N, kBlock), kBlock, 0, stream, l, N, out.data_ptr<T>());
    GRAFT_CUDA_CHECK_LAUNCH();
  } else {
    reduce_losses<T>(l, cnt, nullptr, C, ignore_index, N, reduction, out.data_ptr<T>(), nullptr,
                     device, stream);
  }
}

void nll_forward_cuda(const Tensor& log_probs, const Tensor& target, int reduction,
                      int64_t ignore_index, const Tensor& out) {
  GRAFT_DISPATCH_FLOAT(log_probs.dtype(), "nll_loss", [&] {
    loss_forward<scalar_t>(log_probs, target, reduction, ignore_index, 0.0, out, Tensor(), false);
  });
}

void ce_forward_cuda(const Tensor& logits, const Tensor& target, int reduction,
                     int64_t ignore_index, double ls, const Tensor& out, const Tensor& log_probs) {
  GRAFT_DISPATCH_FLOAT(logits.dtype(), "cross_entropy", [&] {
    loss_forward<scalar_t>(logits, target, reduction, ignore_index, ls, out, log_probs, true);
  });
}

// Backward: scale_i = grad_out[i] (none), g (sum) or g / count (mean). The
// count is recomputed on the device (reduce_losses from the targets) so
// nothing is read back to the host.

// grad[i, c] = scale_i * (p_c - ls/C - (1-ls)[c == t_i]); for nll (from_logits
// false): grad[i, c] = -scale_i [c == t_i].
template <typename T>
__global__ void loss_bwd_kernel(const T* __restrict__ g, const T* __restrict__ log_probs,
                                const int64_t* __restrict__ target, int64_t N, int64_t C,
                                int reduction, int64_t ignore_index, double ls, bool from_logits,
                                const int* __restrict__ count, T* __restrict__ gi) {
  GRAFT_GRID_STRIDE(j, N * C) {
    const int64_t i = j / C, c = j % C;
    const int64_t t = target[i];
    if (t == ignore_index || t < 0 || t >= C) {
      gi[j] = T(0);
      continue;
    }
    const double s = reduction == kReduceNone ? static_cast<double>(g[i])
                     : reduction == kReduceMean
                         ? static_cast<double>(g[0]) / static_cast<double>(*count)
                         : static_cast<double>(g[0]);
    if (from_logits) {
      const double p = ::exp(static_cast<double>(log_probs[j]));
      gi[j] = static_cast<T>(s * (p - ls / static_cast<double>(C) - (c == t ? 1 - ls : 0.0)));
    } else {
      gi[j] = static_cast<T>(c == t ? -s : 0.0);
    }
  }
}

template <typename T>
void loss_backward(const Tensor& grad_out, const Tensor& log_probs, const Tensor& target,
                   int reduction, int64_t ignore_index, double ls, bool from_logits,
                   const Tensor& grad_input) {
  const int64_t N = grad_input.sizes()[0], C = grad_input.sizes()[1];
  if (N * C == 0) return;
  const int device = grad_input.device().index;
  DeviceGuard guard(device);
  cudaStream_t stream = current_stream(device);
  Workspace count(sizeof(int), device);
  if (reduction == kReduceMean)
    reduce_losses<T>(nullptr, nullptr, target.data_ptr<int64_t>(), C, ignore_index, N, reduction,
                     nullptr, static_cast<int*>(count.data()), device, stream);
  launch<loss_bwd_kernel<T>>(grid_for(N * C, kBlock), kBlock, 0, stream, grad_out.data_ptr<T>(),
                             from_logits ? log_probs.data_ptr<T>() : nullptr,
                             target.data_ptr<int64_t>(), N, C, reduction, ignore_index, ls,
                             from_logits, static_cast<const int*>(count.data()),
                             grad_input.data_ptr<T>());
  GRAFT_CUDA_CHECK_LAUNCH();
}

void nll_backward_cuda(const Tensor& grad_out, const Tensor& target, int reduction,
                       int64_t ignore_index, const Tensor& grad_input) {
  GRAFT_DISPATCH_FLOAT(grad_input.dtype(), "nll_loss_backward", [&] {
    loss_backward<scalar_t>(grad_out, Tensor(), target, reduction, ignore_index, 0.0, false,
                            grad_input);
  });
}

void ce_backward_cuda(const Tensor& grad_out, const Tensor& log_probs, const Tensor& target,
                      int reduction, int64_t ignore_index, double ls, const Tensor& grad_logits) {
  GRAFT_DISPATCH_FLOAT(grad_logits.dtype(), "cross_entropy_backward", [&] {
    loss_backward<scalar_t>(grad_out, log_probs, target, reduction, ignore_index, ls, true,
                            grad_logits);
  });
}

}  // namespace

GRAFT_REGISTER_CUDA_KERNEL(softmax_forward, softmax_forward_cuda);
GRAFT_REGISTER_CUDA_KERNEL(softmax_backward, softmax_backward_cuda);
GRAFT_REGISTER_CUDA_KERNEL(nll_loss_forward, nll_forward_cuda);
GRAFT_REGISTER_CUDA_KERNEL(nll_loss_backward, nll_backward_cuda);
GRAFT_REGISTER_CUDA_KERNEL(cross_entropy_forward, ce_forward_cuda);
GRAFT_REGISTER_CUDA_KERNEL(cross_entropy_backward, ce_backward_cuda);

}  // namespace graft::cuda
