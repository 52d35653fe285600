// CPU element-wise kernels: unary, binary, scalar (copy, fill and where: copy.cpp).
#include <cmath>
#include <type_traits>

#include "core/convert.h"
#include "core/elementwise_formulas.h"
#include "core/kernels.h"
#include "kernels/cpu/loops.h"

namespace graft::cpu {

namespace {

// Comparisons of float16/bfloat16 compute in float32.
template <typename T>
using compare_t =
    std::conditional_t<std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>, float, T>;

// Each kernel below switches over its op table once, outside the loop: one
// loop instantiation per (op, dtype), so every op vectorises where its formula
// allows. Ops a dtype does not support fail with a clear error.
template <typename T>
void unary_loop(UnaryOp op, const Tensor& in, const Tensor& out) {
  switch (op) {
#define GRAFT_UNARY_CASE(Op, name, result, saves)                           \
  case UnaryOp::Op:                                                         \
    if constexpr (formula::supports<T>(OpResult::result)) {                 \
      map_elements<T, T>(out, {&in}, [](T x) { return formula::Op{}(x); }); \
      return;                                                               \
    }                                                                       \
    break;
    GRAFT_UNARY_OPS(GRAFT_UNARY_CASE)
#undef GRAFT_UNARY_CASE
  }
  GRAFT_FAIL(unary_op_name(op), ": not supported for dtype ", dtype_name(dtype_of<T>));
}

void unary_cpu(UnaryOp op, const Tensor& in, const Tensor& out) {
  if (unary_result(op) == OpResult::Bool) {
    GRAFT_CHECK(in.dtype() == DType::Bool, unary_op_name(op), ": expected a bool input");
    map_elements<bool, bool>(out, {&in}, [](bool x) { return formula::LogicalNot{}(x); });
    return;
  }
  GRAFT_DISPATCH_NUMERIC(in.dtype(), unary_op_name(op), [&] { unary_loop<scalar_t>(op, in, out); });
}

template <typename T>
void binary_loop(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) {
  switch (op) {
#define GRAFT_BINARY_CASE(Op, name, result, saves)                                        \
  case BinaryOp::Op:                                                                      \
    if constexpr (formula::supports<T>(OpResult::result)) {                               \
      map_elements<T, T, T>(out, {&a, &b}, [](T x, T y) { return formula::Op{}(x, y); }); \
      return;                                                                             \
    }                                                                                     \
    break;
    GRAFT_BINARY_OPS(GRAFT_BINARY_CASE)
#undef GRAFT_BINARY_CASE
    default:
      break;
  }
  GRAFT_FAIL(binary_op_name(op), ": not supported for dtype ", dtype_name(dtype_of<T>));
}

template <typename T>
void compare_loop(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) {
  using C = compare_t<T>;
  switch (op) {
#define GRAFT_COMPARE_CASE(Op, name, result, saves)                                           \
  case BinaryOp::Op:                                                                          \
    map_elements<bool, T, T>(                                                                 \
        out, {&a, &b}, [](T x, T y) { return formula::Op{}(convert<C>(x), convert<C>(y)); }); \
    return;
    GRAFT_COMPARE_OPS(GRAFT_COMPARE_CASE)
#undef GRAFT_COMPARE_CASE
    default:
      break;
  }
  GRAFT_FAIL(binary_op_name(op), ": not a comparison");
}

void binary_cpu(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) {
  if (is_comparison(op)) {
    GRAFT_CHECK(out.dtype() == DType::Bool, binary_op_name(op), ": comparison output must be bool");
    GRAFT_DISPATCH_ALL(a.dtype(), binary_op_name(op),
                       [&] { compare_loop<scalar_t>(op, a, b, out); });
    return;
  }
  if (a.dtype() == DType::Bool) {  // bool operands compute in int
    GRAFT_CHECK(formula::supports<int>(binary_result(op)), binary_op_name(op),
                ": not supported for dtype bool");
    map_elements<bool, bool, bool>(
        out, {&a, &b}, [op](bool x, bool y) { return formula::apply_binary<int>(op, x, y) != 0; });
    return;
  }
  GRAFT_DISPATCH_NUMERIC(a.dtype(), binary_op_name(op),
                         [&] { binary_loop<scalar_t>(op, a, b, out); });
}

template <typename T, bool kScalarFirst>
void binary_scalar_loop(BinaryOp op, const Tensor& a, T c, const Tensor& out) {
  switch (op) {
#define GRAFT_BINARY_CASE(Op, name, result, saves)                       \
  case BinaryOp::Op:                                                     \
    if constexpr (formula::supports<T>(OpResult::result)) {              \
      map_elements<T, T>(out, {&a}, [c](T x) {                           \
        return kScalarFirst ? formula::Op{}(c, x) : formula::Op{}(x, c); \
      });                                                                \
      return;                                                            \
    }                                                                    \
    break;
    GRAFT_BINARY_OPS(GRAFT_BINARY_CASE)
#undef GRAFT_BINARY_CASE
    default:
      break;
  }
  GRAFT_FAIL(binary_op_name(op), ": not supported for dtype ", dtype_name(dtype_of<T>));
}

void binary_scalar_cpu(BinaryOp op, const Tensor& a, double s, bool scalar_first,
                       const Tensor& out) {
  if (is_comparison(op)) {
    GRAFT_DISPATCH_ALL(a.dtype(), binary_op_name(op), [&] {
      map_elements<bool, scalar_t>(out, {&a}, [op, s, scalar_first](scalar_t x) {
        const double v = convert<double>(x);
        return scalar_first ? formula::apply_compare(op, s, v) : formula::apply_compare(op, v, s);
      });
    });
    return;
  }
  GRAFT_DISPATCH_NUMERIC(a.dtype(), binary_op_name(op), [&] {
    const scalar_t c = static_cast<scalar_t>(s);
    if (scalar_first) {
      binary_scalar_loop<scalar_t, true>(op, a, c, out);
    } else {
      binary_scalar_loop<scalar_t, false>(op, a, c, out);
    }
  });
}

}  // namespace

GRAFT_REGISTER_KERNEL(unary, CPU, unary_cpu);
GRAFT_REGISTER_KERNEL(binary, CPU, binary_cpu);
GRAFT_REGISTER_KERNEL(binary_scalar, CPU, binary_scalar_cpu);

}  // namespace graft::cpu
