// The scalar formula of every element-wise op in core/op_tables.h, once, for
// both backends: kernels/cpu/elementwise.cpp and kernels/cuda/elementwise.cu
// (and so the emulated device) call these functors, named after the table's
// enum entries. Each computes in its argument's type T (float16/bfloat16 never
// reach them: the front ends compute those in float32). They use std:: math,
// which CUDA provides in device code too, so float stays float on both.
//
// Supported types follow the table's `result` column: Float ops are only
// instantiated for floating T, the others for every numeric T (bool inputs
// compute in int, see the kernels).
#pragma once

#include <cmath>
#include <limits>
#include <type_traits>

#include "core/convert.h"
#include "core/op_tables.h"

namespace graft::formula {

// ---- unary ----
struct Neg {
  template <typename T>
  GRAFT_HOST_DEVICE T operator()(T x) const {
    return static_cast<T>(-x);
  }
};
struct Abs {
  template <typename T>
  GRAFT_HOST_DEVICE T operator()(T x) const {
    if constexpr (std::is_floating_point_v<T>) {
      return std::fabs(x);
    } else if constexpr (std::is_signed_v<T>) {
      return static_cast<T>(x < 0 ? -x : x);
    } else {
      return x;
    }
  }
};
struct Exp {
  template <typename T>
  GRAFT_HOST_DEVICE T operator()(T x) const {
    return std::exp(x);
  }
};
struct Log {
  template <typename T>
  GRAFT_HOST_DEVICE T operator()(T x) const {
    return std::log(x);
  }
};
struct Sqrt {
  template <typename T>
  GRAFT_HOST_DEVICE T operator()(T x) const {
    return std::sqrt(x);
  }
};
struct Rsqrt {
  template <typename T>
  GRAFT_HOST_DEVICE T operator()(T x) const {
    return T(1) / std::sqrt(x);
  }
};
struct Sin {
  template <typename T>
  GRAFT_HOST_DEVICE T operator()(T x) const {
    return std::sin(x);
  }
};
struct Cos {
  template <typename T>
  GRAFT_HOST_DEVICE T operator()(T x) const {
    return std::cos(x);
  }
};
struct Tanh {
  template <typename T>
  GRAFT_HOST_DEVICE T operator()(T x) const {
    return std::tanh(x);
  }
};
struct Sigmoid {
  template <typename T>
  GRAFT_HOST_DEVICE T operator()(T x) const {
    return T(1) / (T(1) + std::exp(-x));
  }
};
struct Relu {  // NaN propagates, as in torch
  template <typename T>
  GRAFT_HOST_DEVICE T operator()(T x) const {
    if constexpr (std::is_floating_point_v<T>) {
      return x > T(0) ? x : (std::isnan(x) ? x : T(0));
    } else {
      return x > 0 ? x : T(0);
    }
  }
};
struct Sign {
  template <typename T>
  GRAFT_HOST_DEVICE T operator()(T x) const {
    if constexpr (std::is_unsigned_v<T>) {
      return static_cast<T>(x != 0);
    } else {
      return static_cast<T>((T(0) < x) - (x < T(0)));
    }
  }
};
struct Reciprocal {
  template <typename T>
  GRAFT_HOST_DEVICE T operator()(T x) const {
    return T(1) / x;
  }
};
struct Square {
  template <typename T>
  GRAFT_HOST_DEVICE T operator()(T x) const {
    return static_cast<T>(x * x);
  }
};
struct Floor {  // the identity on integers
  template <typename T>
  GRAFT_HOST_DEVICE T operator()(T x) const {
    if constexpr (std::is_floating_point_v<T>) return std::floor(x);
    return x;
  }
};
struct Ceil {
  template <typename T>
  GRAFT_HOST_DEVICE T operator()(T x) const {
    if constexpr (std::is_floating_point_v<T>) return std::ceil(x);
    return x;
  }
};
struct Round {  // half to even, like torch
  template <typename T>
  GRAFT_HOST_DEVICE T operator()(T x) const {
    if constexpr (std::is_floating_point_v<T>) return std::nearbyint(x);
    return x;
  }
};
struct Log1p {
  template <typename T>
  GRAFT_HOST_DEVICE T operator()(T x) const {
    return std::log1p(x);
  }
};
struct Expm1 {
  template <typename T>
  GRAFT_HOST_DEVICE T operator()(T x) const {
    return std::expm1(x);
  }
};
struct LogicalNot {
  template <typename T>
  GRAFT_HOST_DEVICE T operator()(T x) const {
    return static_cast<T>(x == T(0));
  }
};
// GELU constants as torch writes them (aten/src/ATen/native/cpu/Activation.cpp).
inline constexpr double kSqrt1_2 = 0.70710678118654752440;   // 1/sqrt(2)
inline constexpr double k2_SqrtPi = 1.12837916709551257390;  // 2/sqrt(pi)
inline constexpr double kGeluBeta = 0.79788456080286535588;  // sqrt(2/pi)
inline constexpr double kGeluKappa = 0.044715;
// x * Phi(x), Phi the standard normal CDF.
struct Gelu {
  template <typename T>
  GRAFT_HOST_DEVICE T operator()(T x) const {
    return x * T(0.5) * (T(1) + std::erf(x * T(kSqrt1_2)));
  }
};
// 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), torch's approximate="tanh".
struct GeluTanh {
  template <typename T>
  GRAFT_HOST_DEVICE T operator()(T x) const {
    const T inner = T(kGeluBeta) * (x + T(kGeluKappa) * x * x * x);
    return T(0.5) * x * (T(1) + std::tanh(inner));
  }
};

// ---- binary: (a, b) -> a op b ----
struct Add {
  template <typename T>
  GRAFT_HOST_DEVICE T operator()(T a, T b) const {
    return static_cast<T>(a + b);
  }
};
struct Sub {
  template <typename T>
  GRAFT_HOST_DEVICE T operator()(T a, T b) const {
    return static_cast<T>(a - b);
  }
};
struct Mul {
  template <typename T>
  GRAFT_HOST_DEVICE T operator()(T a, T b) const {
    return static_cast<T>(a * b);
  }
};
struct Div {  // true division: floating T only (the table's Float)
  template <typename T>
  GRAFT_HOST_DEVICE T operator()(T a, T b) const {
    return a / b;
  }
};
struct Pow {
  template <typename T>
  GRAFT_HOST_DEVICE T operator()(T a, T b) const {
    if constexpr (std::is_floating_point_v<T>) {
      return b == T(2) ? a * a : std::pow(a, b);
    } else {  // exact integer power by squaring; negative exponents as torch
      if constexpr (std::is_signed_v<T>) {
        if (b < 0) return a == 1 ? T(1) : (a == T(-1) ? (b % 2 ? T(-1) : T(1)) : T(0));
      }
      T result = 1;
      while (b) {
        if (b & 1) result = static_cast<T>(result * a);
        a = static_cast<T>(a * a);
        b = static_cast<T>(b >> 1);
      }
      return result;
    }
  }
};
struct Maximum {  // NaN if either is NaN
  template <typename T>
  GRAFT_HOST_DEVICE T operator()(T a, T b) const {
    if constexpr (std::is_floating_point_v<T>) {
      if (std::isnan(a) || std::isnan(b)) return std::numeric_limits<T>::quiet_NaN();
    }
    return a > b ? a : b;
  }
};
struct Minimum {
  template <typename T>
  GRAFT_HOST_DEVICE T operator()(T a, T b) const {
    if constexpr (std::is_floating_point_v<T>) {
      if (std::isnan(a) || std::isnan(b)) return std::numeric_limits<T>::quiet_NaN();
    }
    return a < b ? a : b;
  }
};
struct LogicalAnd {
  template <typename T>
  GRAFT_HOST_DEVICE T operator()(T a, T b) const {
    return static_cast<T>((a != T(0)) && (b != T(0)));
  }
};
struct LogicalOr {
  template <typename T>
  GRAFT_HOST_DEVICE T operator()(T a, T b) const {
    return static_cast<T>((a != T(0)) || (b != T(0)));
  }
};
// (grad, x or relu's output) -> grad * (x > 0)
struct ReluBackward {
  template <typename T>
  GRAFT_HOST_DEVICE T operator()(T g, T x) const {
    return x > T(0) ? g : T(0);
  }
};
// (grad, x) -> grad * d/dx x Phi(x) = grad * (Phi(x) + x phi(x)), as torch.
struct GeluBackward {
  template <typename T>
  GRAFT_HOST_DEVICE T operator()(T g, T x) const {
    const T cdf = T(0.5) * (T(1) + std::erf(x * T(kSqrt1_2)));
    const T pdf = std::exp(T(-0.5) * x * x) * T(k2_SqrtPi * kSqrt1_2 * 0.5);
    return g * (cdf + x * pdf);
  }
};
// (grad, x) -> grad * d/dx of GeluTanh, as torch.
struct GeluTanhBackward {
  template <typename T>
  GRAFT_HOST_DEVICE T operator()(T g, T x) const {
    const T x_sq = x * x;
    const T inner = T(kGeluBeta) * (x + T(kGeluKappa) * x_sq * x);
    const T t = std::tanh(inner);
    const T left = T(0.5) * x;
    const T right = T(1) + t;
    const T inner_derivative = T(kGeluBeta) * (T(1) + T(3 * kGeluKappa) * x_sq);
    return g * (T(0.5) * right + left * (T(1) - t * t) * inner_derivative);
  }
};

// ---- comparisons: (a, b) -> bool ----
struct Eq {
  template <typename T>
  GRAFT_HOST_DEVICE bool operator()(T a, T b) const {
    return a == b;
  }
};
struct Ne {
  template <typename T>
  GRAFT_HOST_DEVICE bool operator()(T a, T b) const {
    return a != b;
  }
};
struct Lt {
  template <typename T>
  GRAFT_HOST_DEVICE bool operator()(T a, T b) const {
    return a < b;
  }
};
struct Le {
  template <typename T>
  GRAFT_HOST_DEVICE bool operator()(T a, T b) const {
    return a <= b;
  }
};
struct Gt {
  template <typename T>
  GRAFT_HOST_DEVICE bool operator()(T a, T b) const {
    return a > b;
  }
};
struct Ge {
  template <typename T>
  GRAFT_HOST_DEVICE bool operator()(T a, T b) const {
    return a >= b;
  }
};

// ---- generic dispatch over the tables ----
// Whether a kernel instantiates an op of result kind `r` for element type T.
template <typename T>
constexpr bool supports(OpResult r) {
  return r != OpResult::Float || std::is_floating_point_v<T>;
}

// The one switch per op table: calls fn(Op{}) with the formula of `op` when
// T supports it, and returns whether it did. The CPU kernels pass a loop
// (one instantiation per op and dtype, so each op vectorises on its own); the
// CUDA kernels a single element (apply_* below).
template <typename T, typename Fn>
GRAFT_HOST_DEVICE bool visit_unary(UnaryOp op, Fn&& fn) {
  switch (op) {
#define GRAFT_FORMULA_CASE(Op, name, result, saves) \
  case UnaryOp::Op:                                 \
    if constexpr (supports<T>(OpResult::result)) {  \
      fn(Op{});                                     \
      return true;                                  \
    }                                               \
    break;
    GRAFT_UNARY_OPS(GRAFT_FORMULA_CASE)
#undef GRAFT_FORMULA_CASE
  }
  return false;
}
// The arithmetic ops of the binary table (comparisons: visit_compare).
template <typename T, typename Fn>
GRAFT_HOST_DEVICE bool visit_binary(BinaryOp op, Fn&& fn) {
  switch (op) {
#define GRAFT_FORMULA_CASE(Op, name, result, saves) \
  case BinaryOp::Op:                                \
    if constexpr (supports<T>(OpResult::result)) {  \
      fn(Op{});                                     \
      return true;                                  \
    }                                               \
    break;
    GRAFT_BINARY_OPS(GRAFT_FORMULA_CASE)
#undef GRAFT_FORMULA_CASE
    default:
      break;
  }
  return false;
}
template <typename Fn>
GRAFT_HOST_DEVICE bool visit_compare(BinaryOp op, Fn&& fn) {
  switch (op) {
#define GRAFT_FORMULA_CASE(Op, name, result, saves) \
  case BinaryOp::Op:                                \
    fn(Op{});                                       \
    return true;
    GRAFT_COMPARE_OPS(GRAFT_FORMULA_CASE)
#undef GRAFT_FORMULA_CASE
    default:
      break;
  }
  return false;
}

// Run-time op on one element, one instantiation per T (the CUDA kernels: the
// op is uniform across a warp). Ops T does not support return x / a: the
// host checks supports() before launching.
template <typename T>
GRAFT_HOST_DEVICE T apply_unary(UnaryOp op, T x) {
  T r = x;
  visit_unary<T>(op, [&](auto f) { r = f(x); });
  return r;
}
template <typename T>
GRAFT_HOST_DEVICE T apply_binary(BinaryOp op, T a, T b) {
  T r = a;
  visit_binary<T>(op, [&](auto f) { r = f(a, b); });
  return r;
}
template <typename T>
GRAFT_HOST_DEVICE bool apply_compare(BinaryOp op, T a, T b) {
  bool r = false;
  visit_compare(op, [&](auto f) { r = f(a, b); });
  return r;
}

}  // namespace graft::formula
