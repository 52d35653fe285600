// CUDA element-wise kernels: unary, binary and tensor-scalar ops. One kernel
// instantiation per (functor, dtype); the op itself is a run-time switch
// inside the functor (uniform across a warp, so it costs no divergence).
#include <cmath>
#include <limits>
#include <type_traits>

#include "core/kernels.h"
#include "kernels/cuda/loops.cuh"

namespace graft::cuda {

namespace {

// Which unary ops integer dtypes support (the rest are floating-point only,
// as on the CPU backend).
bool integer_unary_ok(UnaryOp op) {
  switch (op) {
    case UnaryOp::Neg:
    case UnaryOp::Abs:
    case UnaryOp::Relu:
    case UnaryOp::Sign:
    case UnaryOp::Square:
    case UnaryOp::Floor:
    case UnaryOp::Ceil:
    case UnaryOp::Round:
      return true;
    default:
      return false;
  }
}

template <typename T>
struct UnaryF {
  UnaryOp op;
  __device__ T operator()(T x) const {
    if constexpr (std::is_floating_point_v<T>) {
      switch (op) {
        case UnaryOp::Neg:
          return -x;
        case UnaryOp::Abs:
          return ::fabs(x);
        case UnaryOp::Exp:
          return ::exp(x);
        case UnaryOp::Log:
          return ::log(x);
        case UnaryOp::Sqrt:
          return ::sqrt(x);
        case UnaryOp::Rsqrt:
          return T(1) / ::sqrt(x);
        case UnaryOp::Sin:
          return ::sin(x);
        case UnaryOp::Cos:
          return ::cos(x);
        case UnaryOp::Tanh:
          return ::tanh(x);
        case UnaryOp::Sigmoid:
          return T(1) / (T(1) + ::exp(-x));
        case UnaryOp::Relu:
          return x > T(0) ? x : (::isnan(x) ? x : T(0));
        case UnaryOp::Sign:
          return static_cast<T>((T(0) < x) - (x < T(0)));
        case UnaryOp::Reciprocal:
          return T(1) / x;
        case UnaryOp::Square:
          return x * x;
        case UnaryOp::Floor:
          return ::floor(x);
        case UnaryOp::Ceil:
          return ::ceil(x);
        case UnaryOp::Round:
          return ::rint(x);  // half to even, like torch
        case UnaryOp::Log1p:
          return ::log1p(x);
        case UnaryOp::Expm1:
          return ::expm1(x);
        case UnaryOp::LogicalNot:
          return x == T(0);
      }
      return x;
    } else {
      switch (op) {
        case UnaryOp::Neg:
          return static_cast<T>(-x);
        case UnaryOp::Abs:
          if constexpr (std::is_signed_v<T>) return static_cast<T>(x < 0 ? -x : x);
          return x;
        case UnaryOp::Relu:
          return x > 0 ? x : T(0);
        case UnaryOp::Sign:
          if constexpr (std::is_signed_v<T>) return static_cast<T>((T(0) < x) - (x < T(0)));
          return static_cast<T>(x != 0);
        case UnaryOp::Square:
          return static_cast<T>(x * x);
        default:
          return x;  // floor/ceil/round are the identity on integers
      }
    }
  }
};

struct LogicalNotF {
  __device__ bool operator()(bool x) const { return !x; }
};

template <typename T>
__device__ __forceinline__ T int_pow(T base, T e) {
  if constexpr (std::is_signed_v<T>) {
    if (e < 0) return base == 1 ? T(1) : (base == T(-1) ? (e % 2 ? T(-1) : T(1)) : T(0));
  }
  T result = 1;
  while (e) {
    if (e & 1) result = static_cast<T>(result * base);
    base = static_cast<T>(base * base);
    e >>= 1;
  }
  return result;
}

template <typename T>
__device__ __forceinline__ T arith(BinaryOp op, T a, T b, int* flag) {
  switch (op) {
    case BinaryOp::Add:
      return static_cast<T>(a + b);
    case BinaryOp::Sub:
      return static_cast<T>(a - b);
    case BinaryOp::Mul:
      return static_cast<T>(a * b);
    case BinaryOp::Div:
      if constexpr (std::is_floating_point_v<T>) {
        return a / b;
      } else {
        if (b == 0) {
          raise_device_error(flag, kIntegerDivisionByZero);
          return T(0);
        }
        return static_cast<T>(a / b);
      }
    case BinaryOp::Pow:
      if constexpr (std::is_floating_point_v<T>) {
        return b == T(2) ? a * a : ::pow(a, b);
      } else {
        return int_pow(a, b);
      }
    case BinaryOp::Maximum:
      if constexpr (std::is_floating_point_v<T>) {
        if (::isnan(a) || ::isnan(b)) return a + b;  // NaN
      }
      return a > b ? a : b;
    case BinaryOp::Minimum:
      if constexpr (std::is_floating_point_v<T>) {
        if (::isnan(a) || ::isnan(b)) return a + b;
      }
      return a < b ? a : b;
    case BinaryOp::ReluBackward:
      return b > T(0) ? a : T(0);
    case BinaryOp::LogicalAnd:
      return (a != T(0)) && (b != T(0));
    case BinaryOp::LogicalOr:
      return (a != T(0)) || (b != T(0));
    default:
      return T(0);  // comparisons never reach here (host checks)
  }
}

template <typename T>
__device__ __forceinline__ bool compare(BinaryOp op, T a, T b) {
  switch (op) {
    case BinaryOp::Eq:
      return a == b;
    case BinaryOp::Ne:
      return a != b;
    case BinaryOp::Lt:
      return a < b;
    case BinaryOp::Le:
      return a <= b;
    case BinaryOp::Gt:
      return a > b;
    case BinaryOp::Ge:
      return a >= b;
    default:
      return false;
  }
}

template <typename T>
struct BinaryF {
  BinaryOp op;
  int* flag;
  __device__ T operator()(T a, T b) const { return arith(op, a, b, flag); }
};
struct BoolBinaryF {
  BinaryOp op;
  int* flag;
  __device__ bool operator()(bool a, bool b) const {
    return arith<int>(op, a ? 1 : 0, b ? 1 : 0, flag) != 0;
  }
};
template <typename T>
struct CompareF {
  BinaryOp op;
  __device__ bool operator()(T a, T b) const { return compare(op, a, b); }
};
template <typename T>
struct ScalarF {
  BinaryOp op;
  T c;
  bool scalar_first;
  int* flag;
  __device__ T operator()(T x) const {
    return scalar_first ? arith(op, c, x, flag) : arith(op, x, c, flag);
  }
};
template <typename T>
struct ScalarCompareF {
  BinaryOp op;
  double c;
  bool scalar_first;
  __device__ bool operator()(T x) const {
    const double v = static_cast<double>(x);
    return scalar_first ? compare(op, c, v) : compare(op, v, c);
  }
};

bool is_reduced_float(DType t) { return t == DType::Float16 || t == DType::BFloat16; }

Tensor to_dtype(const Tensor& t, DType d) {
  Tensor out = empty(t.sizes(), TensorOptions{d, t.device()});
  kernel::copy(t.device())(t, out);
  return out;
}

#define GRAFT_CUDA_DISPATCH_COMPARABLE(DT, NAME, ...)                      \
  [&] {                                                                    \
    switch (DT) {                                                          \
      GRAFT_DTYPE_CASE(Float32, float, __VA_ARGS__)                        \
      GRAFT_DTYPE_CASE(Float64, double, __VA_ARGS__)                       \
      GRAFT_DTYPE_CASE(Int64, int64_t, __VA_ARGS__)                        \
      GRAFT_DTYPE_CASE(Int32, int32_t, __VA_ARGS__)                        \
      GRAFT_DTYPE_CASE(Int16, int16_t, __VA_ARGS__)                        \
      GRAFT_DTYPE_CASE(Int8, int8_t, __VA_ARGS__)                          \
      GRAFT_DTYPE_CASE(UInt8, uint8_t, __VA_ARGS__)                        \
      GRAFT_DTYPE_CASE(Bool, bool, __VA_ARGS__)                            \
      default:                                                             \
        GRAFT_FAIL(NAME, ": unsupported dtype ", ::graft::dtype_name(DT)); \
    }                                                                      \
  }()

void unary_cuda(UnaryOp op, const Tensor& in, const Tensor& out) {
  if (op == UnaryOp::LogicalNot) {
    const Tensor b = in.dtype() == DType::Bool ? in : to_dtype(in, DType::Bool);
    launch_elementwise<bool, bool>(out, LogicalNotF{}, b);
    return;
  }
  GRAFT_DISPATCH_NUMERIC(in.dtype(), unary_op_name(op), [&] {
    if constexpr (!std::is_floating_point_v<scalar_t>) {
      GRAFT_CHECK(integer_unary_ok(op), unary_op_name(op), ": not supported for dtype ",
                  dtype_name(in.dtype()));
    }
    launch_elementwise<scalar_t, scalar_t>(out, UnaryF<scalar_t>{op}, in);
  });
}

void binary_cuda(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) {
  int* flag = device_error_flag(out.device().index);
  if (out.dtype() == DType::Bool && is_comparison(op)) {
    if (is_reduced_float(a.dtype())) {
      binary_cuda(op, to_dtype(a, DType::Float32), to_dtype(b, DType::Float32), out);
      return;
    }
    GRAFT_CUDA_DISPATCH_COMPARABLE(a.dtype(), binary_op_name(op), [&] {
      launch_elementwise<bool, scalar_t, scalar_t>(out, CompareF<scalar_t>{op}, a, b);
    });
    return;
  }
  GRAFT_CHECK(!is_comparison(op), binary_op_name(op), ": comparison output must be bool");
  if (a.dtype() == DType::Bool) {
    launch_elementwise<bool, bool, bool>(out, BoolBinaryF{op, flag}, a, b);
    return;
  }
  GRAFT_DISPATCH_NUMERIC(a.dtype(), binary_op_name(op), [&] {
    launch_elementwise<scalar_t, scalar_t, scalar_t>(out, BinaryF<scalar_t>{op, flag}, a, b);
  });
}

void binary_scalar_cuda(BinaryOp op, const Tensor& a, double s, bool scalar_first,
                        const Tensor& out) {
  if (is_comparison(op)) {
    if (is_reduced_float(a.dtype())) {
      binary_scalar_cuda(op, to_dtype(a, DType::Float32), s, scalar_first, out);
      return;
    }
    GRAFT_CUDA_DISPATCH_COMPARABLE(a.dtype(), binary_op_name(op), [&] {
      launch_elementwise<bool, scalar_t>(out, ScalarCompareF<scalar_t>{op, s, scalar_first}, a);
    });
    return;
  }
  int* flag = device_error_flag(out.device().index);
  GRAFT_DISPATCH_NUMERIC(a.dtype(), binary_op_name(op), [&] {
    launch_elementwise<scalar_t, scalar_t>(
        out, ScalarF<scalar_t>{op, static_cast<scalar_t>(s), scalar_first, flag}, a);
  });
}

}  // namespace

GRAFT_REGISTER_CUDA_KERNEL(unary, unary_cuda);
GRAFT_REGISTER_CUDA_KERNEL(binary, binary_cuda);
GRAFT_REGISTER_CUDA_KERNEL(binary_scalar, binary_scalar_cuda);

}  // namespace graft::cuda
