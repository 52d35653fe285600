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

// Each kernel below visits its op table once, outside the loop
// (formula::visit_*): one loop instantiation per (op, dtype), so every op
// vectorises where its formula allows. Ops a dtype does not support fail with
// a clear error.
template <typename T>
void unary_loop(UnaryOp op, const Tensor& in, const Tensor& out) {
  const bool done = formula::visit_unary<T>(
      op, [&](auto f) { map_elements<T, T>(out, {&in}, [f](T x) { return f(x); }); });
  GRAFT_CHECK(done, unary_op_name(op), ": not supported for dtype ", dtype_name(dtype_of<T>));
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
  const bool done = formula::visit_binary<T>(op, [&](auto f) {
    map_elements<T, T, T>(out, {&a, &b}, [f](T x, T y) { return f(x, y); });
  });
  GRAFT_CHECK(done, binary_op_name(op), ": not supported for dtype ", dtype_name(dtype_of<T>));
}

template <typename T>
void compare_loop(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) {
  using C = compare_t<T>;
  const bool done = formula::visit_compare(op, [&](auto f) {
    map_elements<bool, T, T>(out, {&a, &b},
                             [f](T x, T y) { return f(convert<C>(x), convert<C>(y)); });
  });
  GRAFT_CHECK(done, binary_op_name(op), ": not a comparison");
}

void binary_cpu(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) {
  if (is_comparison(op)) {
    GRAFT_CHECK(out.dtype() == DType::Bool, binary_op_name(op), ": comparison output must be bool");
    GRAFT_DISPATCH_ALL(a.dtype(), binary_op_name(op),
                       [&] { compare_loop<scalar_t>(op, a, b, out); });
    return;
  }
  if (a.dtype() == DType::Bool) {  // bool operands compute in int
    const bool done = formula::visit_binary<int>(op, [&](auto f) {
      map_elements<bool, bool, bool>(out, {&a, &b},
                                     [f](bool x, bool y) { return f(int{x}, int{y}) != 0; });
    });
    GRAFT_CHECK(done, binary_op_name(op), ": not supported for dtype bool");
    return;
  }
  GRAFT_DISPATCH_NUMERIC(a.dtype(), binary_op_name(op),
                         [&] { binary_loop<scalar_t>(op, a, b, out); });
}

template <typename T, bool kScalarFirst>
void binary_scalar_loop(BinaryOp op, const Tensor& a, T c, const Tensor& out) {
  const bool done = formula::visit_binary<T>(op, [&](auto f) {
    map_elements<T, T>(out, {&a}, [f, c](T x) { return kScalarFirst ? f(c, x) : f(x, c); });
  });
  GRAFT_CHECK(done, binary_op_name(op), ": not supported for dtype ", dtype_name(dtype_of<T>));
}

void binary_scalar_cpu(BinaryOp op, const Tensor& a, double s, bool scalar_first,
                       const Tensor& out) {
  if (is_comparison(op)) {
    GRAFT_DISPATCH_ALL(a.dtype(), binary_op_name(op), [&] {
      formula::visit_compare(op, [&](auto f) {
        map_elements<bool, scalar_t>(out, {&a}, [f, s, scalar_first](scalar_t x) {
          const double v = convert<double>(x);
          return scalar_first ? f(s, v) : f(v, s);
        });
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
