// Element types. float16/bfloat16 are storage types: ops compute on them by
// converting to float32 first.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>

#include "core/error.h"

namespace graft {

enum class DType : uint8_t {
  Bool,
  UInt8,
  Int8,
  Int16,
  Int32,
  Int64,
  Float16,
  BFloat16,
  Float32,
  Float64,
};
constexpr int kNumDTypes = 10;

// IEEE binary16, stored as raw bits.
struct Half {
  uint16_t bits = 0;
  Half() = default;
  explicit Half(float f);
  explicit operator float() const;
};

// bfloat16 (upper half of a float32), round-to-nearest-even on conversion.
struct BFloat16 {
  uint16_t bits = 0;
  BFloat16() = default;
  explicit BFloat16(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) {  // NaN stays a quiet NaN
      bits = static_cast<uint16_t>((u >> 16) | 0x40);
    } else {
      u += 0x7fffu + ((u >> 16) & 1u);
      bits = static_cast<uint16_t>(u >> 16);
    }
  }
  explicit operator float() const {
    uint32_t u = static_cast<uint32_t>(bits) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
};

size_t itemsize(DType t);
const char* dtype_name(DType t);  // "float32", "int64", ...
bool is_floating(DType t);
bool is_integral(DType t);  // bool excluded
// torch-style promotion of two tensor dtypes.
DType promote_types(DType a, DType b);

template <typename T>
struct DTypeOf;
#define GRAFT_DTYPE_OF(T, D)                 \
  template <>                                \
  struct DTypeOf<T> {                        \
    static constexpr DType value = DType::D; \
  };
GRAFT_DTYPE_OF(bool, Bool)
GRAFT_DTYPE_OF(uint8_t, UInt8)
GRAFT_DTYPE_OF(int8_t, Int8)
GRAFT_DTYPE_OF(int16_t, Int16)
GRAFT_DTYPE_OF(int32_t, Int32)
GRAFT_DTYPE_OF(int64_t, Int64)
GRAFT_DTYPE_OF(Half, Float16)
GRAFT_DTYPE_OF(BFloat16, BFloat16)
GRAFT_DTYPE_OF(float, Float32)
GRAFT_DTYPE_OF(double, Float64)
#undef GRAFT_DTYPE_OF
template <typename T>
constexpr DType dtype_of = DTypeOf<T>::value;

}  // namespace graft

// Runs the lambda body with `scalar_t` bound to the C++ type of `dtype`.
// Usage: GRAFT_DISPATCH_FLOAT(t.dtype(), "relu", [&] { kernel<scalar_t>(...); });
#define GRAFT_DTYPE_CASE(D, T, ...) \
  case ::graft::DType::D: {         \
    using scalar_t = T;             \
    return __VA_ARGS__();           \
  }

// The dtype sets, each a list of cases, nested: FLOAT within NUMERIC within
// NUMERIC_AND_BOOL within ALL.
#define GRAFT_FLOAT_CASES(...)                  \
  GRAFT_DTYPE_CASE(Float32, float, __VA_ARGS__) \
  GRAFT_DTYPE_CASE(Float64, double, __VA_ARGS__)
#define GRAFT_NUMERIC_CASES(...)                \
  GRAFT_FLOAT_CASES(__VA_ARGS__)                \
  GRAFT_DTYPE_CASE(Int64, int64_t, __VA_ARGS__) \
  GRAFT_DTYPE_CASE(Int32, int32_t, __VA_ARGS__) \
  GRAFT_DTYPE_CASE(Int16, int16_t, __VA_ARGS__) \
  GRAFT_DTYPE_CASE(Int8, int8_t, __VA_ARGS__)   \
  GRAFT_DTYPE_CASE(UInt8, uint8_t, __VA_ARGS__)
#define GRAFT_NUMERIC_AND_BOOL_CASES(...) \
  GRAFT_NUMERIC_CASES(__VA_ARGS__)        \
  GRAFT_DTYPE_CASE(Bool, bool, __VA_ARGS__)

#define GRAFT_DISPATCH_FLOAT(DT, NAME, ...)                               \
  [&] {                                                                   \
    switch (DT) {                                                         \
      GRAFT_FLOAT_CASES(__VA_ARGS__)                                      \
      default:                                                            \
        GRAFT_FAIL(NAME, ": unsupported dtype ", ::graft::dtype_name(DT), \
                   " (expected float32 or float64)");                     \
    }                                                                     \
  }()

#define GRAFT_DISPATCH_NUMERIC(DT, NAME, ...)                              \
  [&] {                                                                    \
    switch (DT) {                                                          \
      GRAFT_NUMERIC_CASES(__VA_ARGS__)                                     \
      default:                                                             \
        GRAFT_FAIL(NAME, ": unsupported dtype ", ::graft::dtype_name(DT)); \
    }                                                                      \
  }()

// NUMERIC plus bool: every dtype a kernel computes on directly (float16 and
// bfloat16 excluded: they compute in float32).
#define GRAFT_DISPATCH_NUMERIC_AND_BOOL(DT, NAME, ...)                     \
  [&] {                                                                    \
    switch (DT) {                                                          \
      GRAFT_NUMERIC_AND_BOOL_CASES(__VA_ARGS__)                            \
      default:                                                             \
        GRAFT_FAIL(NAME, ": unsupported dtype ", ::graft::dtype_name(DT)); \
    }                                                                      \
  }()

#define GRAFT_DISPATCH_ALL(DT, NAME, ...)                        \
  [&] {                                                          \
    switch (DT) {                                                \
      GRAFT_NUMERIC_AND_BOOL_CASES(__VA_ARGS__)                  \
      GRAFT_DTYPE_CASE(Float16, ::graft::Half, __VA_ARGS__)      \
      GRAFT_DTYPE_CASE(BFloat16, ::graft::BFloat16, __VA_ARGS__) \
    }                                                            \
    GRAFT_FAIL(NAME, ": corrupt dtype value");                   \
  }()

// Runs the lambda body with `bits_t` bound to an unsigned integer type of
// `SIZE` bytes (1, 2, 4 or 8): for kernels that only move elements (gather,
// where), one instantiation per element size instead of per dtype.
#define GRAFT_BITS_CASE(SIZE, T, ...) \
  case SIZE: {                        \
    using bits_t = T;                 \
    return __VA_ARGS__();             \
  }
#define GRAFT_DISPATCH_BITS(SIZE, NAME, ...)                   \
  [&] {                                                        \
    switch (SIZE) {                                            \
      GRAFT_BITS_CASE(1, uint8_t, __VA_ARGS__)                 \
      GRAFT_BITS_CASE(2, uint16_t, __VA_ARGS__)                \
      GRAFT_BITS_CASE(4, uint32_t, __VA_ARGS__)                \
      GRAFT_BITS_CASE(8, uint64_t, __VA_ARGS__)                \
      default:                                                 \
        GRAFT_FAIL(NAME, ": unsupported element size ", SIZE); \
    }                                                          \
  }()
