// CUDA reductions: sum/mean/prod/max/min, argmax/argmin and variance of rows
// laid out by the front end (core/ops_reduce.cpp; core/kernels.h's
// ReduceRows). sum/mean/prod/max/min also read interleaved rows in place
// ([A, K, B] reduced over A and B: conv bias gradients); argmax and var take
// plain rows. A row is reduced by a group of G threads: a warp (G = 32) when
// rows are many or short, a whole block (G = 256) when rows are few and long.
// Floating-point sums accumulate in double, like the CPU backend, so results
// agree to rounding.
#include <algorithm>
#include <cfloat>
#include <climits>
#include <cmath>
#include <type_traits>

#include "core/kernels.h"
#include "kernels/cuda/loops.cuh"

namespace graft::cuda {

namespace {

constexpr int kWarp = 32;

// Block-wide mode when rows are few and long; otherwise a warp per row.
bool use_block_mode(int64_t rows, int64_t len) { return len >= 2048 && rows < 2048; }

template <typename V>
__device__ __forceinline__ V shfl_down(V v, int delta) {
  return __shfl_down_sync(0xffffffffu, v, delta);
}

// Reduces v across the G threads of a group; the result is valid in the
// group's first thread. `smem` needs kBlock / 32 entries (block mode only).
template <int G, typename V, typename C>
__device__ __forceinline__ V group_reduce(V v, C combine, V* smem) {
#pragma unroll
  for (int d = kWarp / 2; d > 0; d /= 2) v = combine(v, shfl_down(v, d));
  if constexpr (G > kWarp) {
    const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
    __syncthreads();  // smem may still be read from the previous row
    if (lane == 0) smem[warp] = v;
    __syncthreads();
    if (warp == 0) {
      v = lane < G / kWarp ? smem[lane] : smem[0];
#pragma unroll
      for (int d = kWarp / 2; d > 0; d /= 2) {
        const V o = shfl_down(v, d);
        if (lane + d < G / kWarp) v = combine(v, o);
      }
    }
  }
  return v;
}

template <typename Acc>
struct Combine {
  ReduceOp op;
  __device__ Acc operator()(Acc a, Acc b) const {
    switch (op) {
      case ReduceOp::Sum:
      case ReduceOp::Mean:
        return a + b;
      case ReduceOp::Prod:
        return a * b;
      case ReduceOp::Max:
        if constexpr (std::is_floating_point_v<Acc>) {
          if (::isnan(a) || ::isnan(b)) return a + b;
        }
        return a > b ? a : b;
      case ReduceOp::Min:
        if constexpr (std::is_floating_point_v<Acc>) {
          if (::isnan(a) || ::isnan(b)) return a + b;
        }
        return a < b ? a : b;
    }
    return a;
  }
};

template <typename Acc>
__device__ __forceinline__ Acc identity(ReduceOp op) {
  switch (op) {
    case ReduceOp::Prod:
      return Acc(1);
    case ReduceOp::Max:
      if constexpr (std::is_floating_point_v<Acc>)
        return -INFINITY;
      else
        return LLONG_MIN;
    case ReduceOp::Min:
      if constexpr (std::is_floating_point_v<Acc>)
        return INFINITY;
      else
        return LLONG_MAX;
    default:
      return Acc(0);
  }
}

// Where element i of row r lives: src[(i / inner) * outer_stride + r * inner +
// i % inner], i.e. a contiguous [A, rows, inner] tensor reduced over A and
// inner without copying it (a conv bias gradient: [N, C, H*W] over N and HW).
// Rows of a [rows, len] tensor: inner = len.
struct RowLayout {
  int64_t inner, outer_stride;
};

// A row may be split into `chunks` equal ranges (the last shorter); task
// b = r * chunks + c reduces chunk c of row r into dst[b]. With one chunk dst
// is the result (Mean divides by mean_count); with several, dst holds
// partials that a second pass reduces (mean_count -1: no division).
template <int G, typename T, typename Acc, typename Out>
__global__ void reduce_rows_kernel(ReduceOp op, const T* __restrict__ src, Out* __restrict__ dst,
                                   int64_t rows, int64_t len, RowLayout lay, int64_t chunks,
                                   int64_t mean_count) {
  __shared__ Acc smem[kBlock / kWarp];
  constexpr int kRowsPerBlock = kBlock / G;
  const int t = threadIdx.x % G;
  const Combine<Acc> combine{op};
  const int64_t tasks = rows * chunks, chunk_len = (len + chunks - 1) / chunks;
  for (int64_t b0 = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock; b0 < tasks;
       b0 += static_cast<int64_t>(gridDim.x) * kRowsPerBlock) {
    const int64_t b = b0 + threadIdx.x / G;
    Acc acc = identity<Acc>(op);
    if (b < tasks) {
      const int64_t r = b / chunks, begin = b % chunks * chunk_len;
      const int64_t end = begin + chunk_len < len ? begin + chunk_len : len;
      if (lay.inner == len) {
        const T* row = src + r * len;
        for (int64_t i = begin + t; i < end; i += G) acc = combine(acc, static_cast<Acc>(row[i]));
      } else {
        for (int64_t i = begin + t; i < end; i += G)
          acc = combine(acc,
                        static_cast<Acc>(
                            src[i / lay.inner * lay.outer_stride + r * lay.inner + i % lay.inner]));
      }
    }
    acc = group_reduce<G>(acc, combine, smem);
    if (t == 0 && b < tasks) {
      if (op == ReduceOp::Mean && mean_count >= 0) acc = acc / static_cast<Acc>(mean_count);
      dst[b] = static_cast<Out>(acc);
    }
  }
}

template <typename T, typename Acc, typename Out>
void launch_rows(ReduceOp op, const T* src, Out* dst, int64_t rows, int64_t len, RowLayout lay,
                 int64_t chunks, int64_t mean_count, cudaStream_t stream) {
  const int64_t tasks = rows * chunks;
  if (use_block_mode(tasks, len / chunks)) {
    launch<reduce_rows_kernel<kBlock, T, Acc, Out>>(grid_for(tasks, 1), kBlock, 0, stream, op, src,
                                                    dst, rows, len, lay, chunks, mean_count);
  } else {
    launch<reduce_rows_kernel<kWarp, T, Acc, Out>>(grid_for(tasks, kBlock / kWarp), kBlock, 0,
                                                   stream, op, src, dst, rows, len, lay, chunks,
                                                   mean_count);
  }
  GRAFT_CUDA_CHECK_LAUNCH();
}

// Few long rows (a full reduction is one row) would leave all but a few
// blocks idle: split each row into chunks reduced in parallel into partials,
// then reduce the partials. Fixed chunking keeps the result deterministic.
template <typename T, typename Acc>
void launch_reduce(ReduceOp op, const T* src, T* dst, int64_t rows, int64_t len, RowLayout lay,
                   int device) {
  cudaStream_t stream = current_stream(device);
  constexpr int64_t kChunk = 16384, kTargetBlocks = 1024;
  const int64_t chunks =
      std::max<int64_t>(1, std::min(len / kChunk, kTargetBlocks / std::max<int64_t>(rows, 1)));
  if (chunks == 1) {
    launch_rows<T, Acc, T>(op, src, dst, rows, len, lay, 1, len, stream);
    return;
  }
  Workspace partial(sizeof(Acc) * rows * chunks, device);
  Acc* p = static_cast<Acc*>(partial.data());
  launch_rows<T, Acc, Acc>(op, src, p, rows, len, lay, chunks, -1, stream);
  launch_rows<Acc, Acc, T>(op, p, dst, rows, chunks, RowLayout{chunks, 0}, 1, len, stream);
}

void reduce_cuda(ReduceOp op, const Tensor& in, const ReduceRows& rr, const Tensor& out) {
  DeviceGuard guard(in.device().index);
  check_reduce_rows(in, rr, false, "reduce");
  GRAFT_CHECK(out.is_contiguous() && out.numel() == rr.rows, "reduce: bad output");
  GRAFT_CHECK(rr.len > 0 || (op != ReduceOp::Max && op != ReduceOp::Min),
              "max/min: cannot reduce over an empty dimension");
  if (rr.rows == 0) return;
  GRAFT_DISPATCH_NUMERIC(in.dtype(), "reduce", [&] {
    using Acc = std::conditional_t<std::is_floating_point_v<scalar_t>, double, int64_t>;
    launch_reduce<scalar_t, Acc>(op, in.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), rr.rows,
                                 rr.len, RowLayout{rr.inner, rr.rows * rr.inner},
                                 in.device().index);
  });
}

// ---- argmax / argmin ----
template <typename Acc>
struct ValIdx {
  Acc v;
  int64_t i;
};
template <typename Acc>
__device__ __forceinline__ ValIdx<Acc> shfl_down(ValIdx<Acc> p, int delta) {
  return {__shfl_down_sync(0xffffffffu, p.v, delta), __shfl_down_sync(0xffffffffu, p.i, delta)};
}

// torch semantics: NaN counts as the extreme value; ties go to the first index.
template <typename Acc>
struct ArgCombine {
  bool is_max;
  __device__ ValIdx<Acc> operator()(ValIdx<Acc> a, ValIdx<Acc> b) const {
    if (a.i < 0) return b;  // empty slot
    if (b.i < 0) return a;
    if constexpr (std::is_floating_point_v<Acc>) {
      const bool an = ::isnan(a.v), bn = ::isnan(b.v);
      if (an || bn) return an && (!bn || a.i < b.i) ? a : b;
    }
    if (a.v == b.v) return a.i < b.i ? a : b;
    return (is_max ? a.v > b.v : a.v < b.v) ? a : b;
  }
};

template <int G, typename T, typename Acc>
__global__ void arg_reduce_kernel(bool is_max, const T* __restrict__ src, T* values,
                                  int64_t* __restrict__ indices, int64_t rows, int64_t len) {
  __shared__ ValIdx<Acc> smem[kBlock / kWarp];
  constexpr int kRowsPerBlock = kBlock / G;
  const int t = threadIdx.x % G;
  const ArgCombine<Acc> combine{is_max};
  for (int64_t r0 = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock; r0 < rows;
       r0 += static_cast<int64_t>(gridDim.x) * kRowsPerBlock) {
    const int64_t r = r0 + threadIdx.x / G;
    ValIdx<Acc> acc{Acc(0), -1};
    if (r < rows) {
      const T* row = src + r * len;
      for (int64_t i = t; i < len; i += G) acc = combine(acc, {static_cast<Acc>(row[i]), i});
    }
    acc = group_reduce<G>(acc, combine, smem);
    if (t == 0 && r < rows) {
      indices[r] = acc.i;
      if (values) values[r] = src[r * len + acc.i];
    }
  }
}

void arg_reduce_cuda(ArgReduceOp op, const Tensor& src, const ReduceRows& rr, const Tensor& values,
                     const Tensor& indices) {
  DeviceGuard guard(src.device().index);
  check_reduce_rows(src, rr, true, "arg_reduce");
  const int64_t rows = rr.rows, len = rr.len;
  GRAFT_CHECK(len > 0, "argmax/argmin: cannot reduce over an empty dimension");
  GRAFT_CHECK(indices.is_contiguous() && indices.numel() == rows && indices.dtype() == DType::Int64,
              "arg_reduce: bad indices output");
  GRAFT_CHECK(!values.defined() || (values.is_contiguous() && values.numel() == rows),
              "arg_reduce: bad values output");
  if (rows == 0) return;
  const bool is_max = op == ArgReduceOp::Max;
  cudaStream_t stream = current_stream(src.device().index);
  GRAFT_DISPATCH_NUMERIC(src.dtype(), "arg_reduce", [&] {
    using Acc = std::conditional_t<std::is_floating_point_v<scalar_t>, double, int64_t>;
    scalar_t* v = values.defined() ? values.data_ptr<scalar_t>() : nullptr;
    if (use_block_mode(rows, len)) {
      launch<arg_reduce_kernel<kBlock, scalar_t, Acc>>(grid_for(rows, 1), kBlock, 0, stream, is_max,
                                                       src.data_ptr<scalar_t>(), v,
                                                       indices.data_ptr<int64_t>(), rows, len);
    } else {
      launch<arg_reduce_kernel<kWarp, scalar_t, Acc>>(grid_for(rows, kBlock / kWarp), kBlock, 0,
                                                      stream, is_max, src.data_ptr<scalar_t>(), v,
                                                      indices.data_ptr<int64_t>(), rows, len);
    }
    GRAFT_CUDA_CHECK_LAUNCH();
  });
}

// ---- variance (two passes over each row: mean, then squared deviations) ----
template <int G, typename T>
__global__ void var_kernel(const T* __restrict__ src, T* __restrict__ dst, int64_t rows,
                           int64_t len, double correction) {
  __shared__ double smem[kBlock / kWarp];
  __shared__ double mean_smem[kBlock / kWarp];
  constexpr int kRowsPerBlock = kBlock / G;
  const int t = threadIdx.x % G;
  const auto add = [](double a, double b) { return a + b; };
  for (int64_t r0 = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock; r0 < rows;
       r0 += static_cast<int64_t>(gridDim.x) * kRowsPerBlock) {
    const int64_t r = r0 + threadIdx.x / G;
    const T* row = src + (r < rows ? r : 0) * len;
    double s = 0;
    if (r < rows)
      for (int64_t i = t; i < len; i += G) s += static_cast<double>(row[i]);
    s = group_reduce<G>(s, add, smem);
    // Broadcast the row mean from the group's first thread.
    __syncthreads();
    if (t == 0) mean_smem[threadIdx.x / G] = s / static_cast<double>(len);
    __syncthreads();
    const double mean = mean_smem[threadIdx.x / G];
    double q = 0;
    if (r < rows)
      for (int64_t i = t; i < len; i += G) {
        const double d = static_cast<double>(row[i]) - mean;
        q += d * d;
      }
    q = group_reduce<G>(q, add, smem);
    if (t == 0 && r < rows) {
      const double denom = static_cast<double>(len) - correction;
      dst[r] = static_cast<T>(q / (denom > 0 ? denom : 0.0));
    }
  }
}

void var_cuda(const Tensor& src, const ReduceRows& rr, double correction, const Tensor& out) {
  DeviceGuard guard(src.device().index);
  check_reduce_rows(src, rr, true, "var");
  const int64_t rows = rr.rows, len = rr.len;
  GRAFT_CHECK(out.is_contiguous() && out.numel() == rows, "var: bad output");
  if (rows == 0) return;
  cudaStream_t stream = current_stream(src.device().index);
  GRAFT_DISPATCH_FLOAT(src.dtype(), "var", [&] {
    if (use_block_mode(rows, len)) {
      launch<var_kernel<kBlock, scalar_t>>(grid_for(rows, 1), kBlock, 0, stream,
                                           src.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), rows,
                                           len, correction);
    } else {
      launch<var_kernel<kWarp, scalar_t>>(grid_for(rows, kBlock / kWarp), kBlock, 0, stream,
                                          src.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), rows,
                                          len, correction);
    }
    GRAFT_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace

GRAFT_REGISTER_CUDA_KERNEL(reduce, reduce_cuda);
GRAFT_REGISTER_CUDA_KERNEL(arg_reduce, arg_reduce_cuda);
GRAFT_REGISTER_CUDA_KERNEL(var, var_cuda);

}  // namespace graft::cuda
