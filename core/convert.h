// Floating-point to integer conversion shared by the CPU and CUDA backends
// (kernels/cpu/elementwise.cpp, kernels/cuda/loops.cuh), torch's rule: through
// int64, so a value outside the target's range wraps modulo 2^bits (float 300
// -> uint8 44, -1 -> 255). A plain cast is undefined in C++ and differs by
// device (x86 wraps through int32, CUDA's cvt saturates). NaN and values
// outside int64's range give INT64_MIN's low bits, as x86's cvttsd2si does.
#pragma once

#include <cstdint>
#include <type_traits>

#if defined(__CUDACC__)
#define GRAFT_HOST_DEVICE __host__ __device__
#else
#define GRAFT_HOST_DEVICE
#endif

namespace graft {

template <typename To>
GRAFT_HOST_DEVICE inline To float_to_int(double v) {
  static_assert(std::is_integral_v<To> && !std::is_same_v<To, bool>, "integer targets only");
  // 2^63 is exact in double; NaN fails both comparisons.
  const int64_t i = v >= -9223372036854775808.0 && v < 9223372036854775808.0
                        ? static_cast<int64_t>(v)
                        : INT64_MIN;
  return static_cast<To>(i);  // modular (C++20)
}

}  // namespace graft
