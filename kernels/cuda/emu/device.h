// The device side of the emulated CUDA device (cmake -DGRAFT_CUDA=EMULATE):
// what a kernel body sees when kernels/cuda/*.cu is compiled as host C++.
//
// A block's threads are fibers on one worker thread (kernels/cuda/emu/block.cpp);
// threadIdx and friends read the running fiber's context. __shared__ variables
// are `static thread_local`: a worker runs one block at a time, so each block
// sees one copy, shared by its threads. __syncthreads and the warp shuffles
// switch fibers; a barrier or full-mask shuffle that not every thread (lane)
// reaches is reported as a synccheck error naming the kernel, never a hang.
#pragma once

#include <math.h>  // libstdc++: float overloads of ::exp etc. and ::isnan, as CUDA has
#include <atomic>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __launch_bounds__(...)
#define __shared__ static thread_local
#define __constant__ static

struct uint3 {
  unsigned int x = 0, y = 0, z = 0;
};
struct dim3 {
  unsigned int x = 1, y = 1, z = 1;
  constexpr dim3(unsigned int vx = 1, unsigned int vy = 1, unsigned int vz = 1)
      : x(vx), y(vy), z(vz) {}
  constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
};

namespace graft::cuda::emu {

// What one emulated CUDA thread knows about itself.
struct ThreadContext {
  uint3 thread_idx, block_idx;
  dim3 block_dim, grid_dim;
  void* dynamic_shared = nullptr;
};
// The running fiber's context (set by the block scheduler at every switch).
ThreadContext* current_thread();

// Block barrier (synccheck: every live thread of the block must arrive).
void syncthreads();
// Warp exchange: every lane of `mask` deposits `bits`, waits for the others,
// then receives the bits of lane `src_lane` (its own when out of range).
// kind: 0 = idx, 1 = up, 2 = down, 3 = xor.
uint64_t warp_shuffle(unsigned mask, uint64_t bits, int kind, int arg, int width);
// Vote: returns the mask of lanes whose predicate is true.
unsigned warp_ballot(unsigned mask, bool pred);

template <typename T>
T shuffle_as(unsigned mask, T v, int kind, int arg, int width) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>, "shuffle of a >8-byte type");
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  bits = warp_shuffle(mask, bits, kind, arg, width);
  T out;
  std::memcpy(&out, &bits, sizeof(T));
  return out;
}

}  // namespace graft::cuda::emu

#define threadIdx (::graft::cuda::emu::current_thread()->thread_idx)
#define blockIdx (::graft::cuda::emu::current_thread()->block_idx)
#define blockDim (::graft::cuda::emu::current_thread()->block_dim)
#define gridDim (::graft::cuda::emu::current_thread()->grid_dim)
constexpr int warpSize = 32;

inline void __syncthreads() { ::graft::cuda::emu::syncthreads(); }
inline void __syncwarp(unsigned mask = 0xffffffffu) {
  (void)::graft::cuda::emu::warp_ballot(mask, true);
}
inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }

template <typename T>
T __shfl_sync(unsigned mask, T v, int src, int width = 32) {
  return ::graft::cuda::emu::shuffle_as(mask, v, 0, src, width);
}
template <typename T>
T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  return ::graft::cuda::emu::shuffle_as(mask, v, 1, static_cast<int>(delta), width);
}
template <typename T>
T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  return ::graft::cuda::emu::shuffle_as(mask, v, 2, static_cast<int>(delta), width);
}
template <typename T>
T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
  return ::graft::cuda::emu::shuffle_as(mask, v, 3, lane_mask, width);
}
inline unsigned __ballot_sync(unsigned mask, int pred) {
  return ::graft::cuda::emu::warp_ballot(mask, pred != 0);
}
inline int __any_sync(unsigned mask, int pred) { return __ballot_sync(mask, pred) != 0; }
inline int __all_sync(unsigned mask, int pred) {
  return __ballot_sync(mask, pred) == __ballot_sync(mask, 1);
}

// ---- atomics (device memory is host memory: std::atomic_ref) ----
template <typename T>
T atomicAdd(T* p, T v) {
  return std::atomic_ref<T>(*p).fetch_add(v, std::memory_order_relaxed);
}
template <typename T>
T atomicCAS(T* p, T expected, T desired) {
  std::atomic_ref<T>(*p).compare_exchange_strong(expected, desired, std::memory_order_relaxed);
  return expected;  // the old value either way
}
template <typename T>
T atomicExch(T* p, T v) {
  return std::atomic_ref<T>(*p).exchange(v, std::memory_order_relaxed);
}
template <typename T>
T atomicMax(T* p, T v) {
  std::atomic_ref<T> a(*p);
  T old = a.load(std::memory_order_relaxed);
  while (old < v && !a.compare_exchange_weak(old, v, std::memory_order_relaxed)) {
  }
  return old;
}
template <typename T>
T atomicMin(T* p, T v) {
  std::atomic_ref<T> a(*p);
  T old = a.load(std::memory_order_relaxed);
  while (v < old && !a.compare_exchange_weak(old, v, std::memory_order_relaxed)) {
  }
  return old;
}

// ---- bit and math intrinsics ----
inline float __uint_as_float(unsigned int u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline unsigned int __float_as_uint(float f) {
  unsigned int u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float __int_as_float(int i) { return __uint_as_float(static_cast<unsigned>(i)); }
inline int __float_as_int(float f) { return static_cast<int>(__float_as_uint(f)); }
inline double __longlong_as_double(long long i) {
  double d;
  std::memcpy(&d, &i, 8);
  return d;
}
inline long long __double_as_longlong(double d) {
  long long i;
  std::memcpy(&i, &d, 8);
  return i;
}
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(static_cast<unsigned>(x)); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float rsqrtf(float x) { return 1.f / std::sqrt(x); }
inline double rsqrt(double x) { return 1.0 / std::sqrt(x); }
