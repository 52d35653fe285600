// Shared pieces of the CUDA kernels: strided offset calculators passed to
// kernels by value, dtype conversions that run on the device (float16 and
// bfloat16 are raw bits, converted exactly like the CPU backend), and the
// element-wise launcher with a contiguous fast path.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <array>
#include <cstdint>
#include <type_traits>

#include "core/convert.h"
#include "core/dtype.h"
#include "core/strided.h"
#include "core/tensor.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/runtime.cuh"

namespace graft::cuda {

constexpr int kMaxDims = 8;
constexpr int kBlock = 256;

// for (int64_t i ...) over [0, n) in a grid-stride loop.
#define GRAFT_GRID_STRIDE(i, n)                                                          \
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < (n); \
       i += static_cast<int64_t>(blockDim.x) * gridDim.x)

__device__ __forceinline__ int64_t i64min(int64_t a, int64_t b) { return a < b ? a : b; }

// Sizes shared by N operands plus each operand's strides (in elements), with
// dims merged wherever every operand is contiguous across the boundary
// (coalesce_dims, core/strided.h); offsets() is the device-side index math.
template <int N>
struct OffsetCalc {
  int ndim = 0;
  int64_t sizes[kMaxDims] = {};
  int64_t strides[N][kMaxDims] = {};

  __device__ __forceinline__ void offsets(int64_t linear, int64_t (&off)[N]) const {
#pragma unroll
    for (int k = 0; k < N; ++k) off[k] = 0;
    for (int d = ndim - 1; d >= 0; --d) {
      const int64_t i = linear % sizes[d];
      linear /= sizes[d];
#pragma unroll
      for (int k = 0; k < N; ++k) off[k] += i * strides[k][d];
    }
  }
};

// Builds the calculator over `shape`; throws if more than kMaxDims dims remain
// after merging.
template <int N>
OffsetCalc<N> make_offset_calc(const Shape& shape, const std::array<const Tensor*, N>& ts) {
  const CoalescedDims<N> m = coalesce_dims<N>(shape, ts);  // core/strided.h
  GRAFT_CHECK(m.sizes.size() <= static_cast<size_t>(kMaxDims), "CUDA kernels support at most ",
              kMaxDims, " non-mergeable dims, got shape ", shape_str(shape));
  OffsetCalc<N> c;
  c.ndim = static_cast<int>(m.sizes.size());
  for (int d = 0; d < c.ndim; ++d) {
    c.sizes[d] = m.sizes[d];
    for (int k = 0; k < N; ++k) c.strides[k][d] = m.strides[k][d];
  }
  return c;
}

// Single-tensor strided view for gather-style kernels (no merging: dims keep
// their meaning).
struct TensorGeom {
  int ndim = 0;
  int64_t sizes[kMaxDims] = {};
  int64_t strides[kMaxDims] = {};
};
inline TensorGeom make_geom(const Tensor& t) {
  GRAFT_CHECK(t.dim() <= kMaxDims, "CUDA kernels support at most ", kMaxDims, " dims, got shape ",
              shape_str(t.sizes()));
  TensorGeom g;
  g.ndim = static_cast<int>(t.dim());
  for (int d = 0; d < g.ndim; ++d) {
    g.sizes[d] = t.sizes()[d];
    g.strides[d] = t.strides()[d];
  }
  return g;
}

// ---- device-side float16 / bfloat16 (raw bits, same rounding as the CPU) ----
__device__ __forceinline__ float half_bits_to_float(uint16_t b) {
  __half_raw r;
  r.x = b;
  return __half2float(__half(r));
}
__device__ __forceinline__ uint16_t float_to_half_bits(float f) {
  __half_raw r = __half_raw(__float2half_rn(f));
  return r.x;
}
__device__ __forceinline__ float bf16_bits_to_float(uint16_t b) {
  return __uint_as_float(static_cast<uint32_t>(b) << 16);
}
__device__ __forceinline__ uint16_t float_to_bf16_bits(float f) {
  uint32_t u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

// Loads element `p` of runtime dtype `dt` as a double or int64 (whichever is
// exact), and stores back. Used by copy/fill so that all dtype pairs share one
// kernel instead of 100 instantiations.
struct Scalar {
  bool is_float;
  double f;
  int64_t i;
};
__device__ __forceinline__ Scalar load_scalar(const char* p, DType dt) {
  switch (dt) {
    case DType::Bool:
      return {false, 0, *reinterpret_cast<const bool*>(p) ? 1 : 0};
    case DType::UInt8:
      return {false, 0, *reinterpret_cast<const uint8_t*>(p)};
    case DType::Int8:
      return {false, 0, *reinterpret_cast<const int8_t*>(p)};
    case DType::Int16:
      return {false, 0, *reinterpret_cast<const int16_t*>(p)};
    case DType::Int32:
      return {false, 0, *reinterpret_cast<const int32_t*>(p)};
    case DType::Int64:
      return {false, 0, *reinterpret_cast<const int64_t*>(p)};
    case DType::Float16:
      return {true, half_bits_to_float(*reinterpret_cast<const uint16_t*>(p)), 0};
    case DType::BFloat16:
      return {true, bf16_bits_to_float(*reinterpret_cast<const uint16_t*>(p)), 0};
    case DType::Float32:
      return {true, *reinterpret_cast<const float*>(p), 0};
    case DType::Float64:
      return {true, *reinterpret_cast<const double*>(p), 0};
  }
  return {false, 0, 0};
}
template <typename T>
__device__ __forceinline__ T scalar_as(const Scalar& s) {
  if constexpr (std::is_integral_v<T>) {
    return s.is_float ? float_to_int<T>(s.f) : static_cast<T>(s.i);  // core/convert.h
  } else {
    return s.is_float ? static_cast<T>(s.f) : static_cast<T>(s.i);
  }
}
__device__ __forceinline__ void store_scalar(char* p, DType dt, const Scalar& s) {
  switch (dt) {
    case DType::Bool:
      *reinterpret_cast<bool*>(p) = s.is_float ? s.f != 0 : s.i != 0;
      break;
    case DType::UInt8:
      *reinterpret_cast<uint8_t*>(p) = scalar_as<uint8_t>(s);
      break;
    case DType::Int8:
      *reinterpret_cast<int8_t*>(p) = scalar_as<int8_t>(s);
      break;
    case DType::Int16:
      *reinterpret_cast<int16_t*>(p) = scalar_as<int16_t>(s);
      break;
    case DType::Int32:
      *reinterpret_cast<int32_t*>(p) = scalar_as<int32_t>(s);
      break;
    case DType::Int64:
      *reinterpret_cast<int64_t*>(p) = scalar_as<int64_t>(s);
      break;
    // float16/bfloat16 round through float32, exactly like the CPU backend.
    case DType::Float16:
      *reinterpret_cast<uint16_t*>(p) = float_to_half_bits(scalar_as<float>(s));
      break;
    case DType::BFloat16:
      *reinterpret_cast<uint16_t*>(p) = float_to_bf16_bits(scalar_as<float>(s));
      break;
    case DType::Float32:
      *reinterpret_cast<float*>(p) = scalar_as<float>(s);
      break;
    case DType::Float64:
      *reinterpret_cast<double*>(p) = scalar_as<double>(s);
      break;
  }
}

// ---- element-wise launcher ----
// out[i] = f(in0[i], in1[i], ...), typed. Out and inputs are given as char
// pointers with element strides; F::operator() takes the typed inputs.
template <typename Out, typename F, typename... In>
__global__ void elementwise_contig_kernel(int64_t n, F f, Out* out, const In*... in) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    out[i] = f(in[i]...);
  }
}

template <int N, typename Out, typename F, typename... In, size_t... I>
__device__ __forceinline__ void apply_strided(const int64_t (&off)[N], F& f, Out* out,
                                              const std::tuple<const In*...>& in,
                                              std::index_sequence<I...>) {
  out[off[0]] = f(std::get<I>(in)[off[I + 1]]...);
}

template <typename Out, typename F, typename... In>
__global__ void elementwise_strided_kernel(int64_t n, OffsetCalc<sizeof...(In) + 1> calc, F f,
                                           Out* out, const In*... in) {
  constexpr int N = sizeof...(In) + 1;
  const std::tuple<const In*...> ins(in...);
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    int64_t off[N];
    calc.offsets(i, off);
    apply_strided<N>(off, f, out, ins, std::index_sequence_for<In...>{});
  }
}

inline bool all_contiguous(std::initializer_list<const Tensor*> ts) {
  for (const Tensor* t : ts)
    if (!t->is_contiguous()) return false;
  return true;
}

// Runs f element-wise over out's shape on out's device and stream.
template <typename Out, typename... In, typename F, typename... Ts>
void launch_elementwise(const Tensor& out, F f, const Ts&... in) {
  static_assert(sizeof...(In) == sizeof...(Ts), "one element type per input tensor");
  const int64_t n = out.numel();
  if (n == 0) return;
  const int device = out.device().index;
  DeviceGuard guard(device);
  cudaStream_t stream = current_stream(device);
  Out* o = static_cast<Out*>(out.raw_data());
  if (all_contiguous({&out, &in...})) {
    launch<elementwise_contig_kernel<Out, F, In...>>(grid_for(n, kBlock), kBlock, 0, stream, n, f,
                                                     o, static_cast<const In*>(in.raw_data())...);
  } else {
    auto calc = make_offset_calc<sizeof...(In) + 1>(out.sizes(), {&out, &in...});
    launch<elementwise_strided_kernel<Out, F, In...>>(grid_for(n, kBlock), kBlock, 0, stream, n,
                                                      calc, f, o,
                                                      static_cast<const In*>(in.raw_data())...);
  }
  GRAFT_CUDA_CHECK_LAUNCH();
}

}  // namespace graft::cuda
