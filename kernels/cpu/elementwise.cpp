// CPU element-wise kernels: unary, binary, scalar, copy/convert, fill, where.
#include <cmath>
#include <type_traits>

#include "core/convert.h"
#include "core/elementwise_formulas.h"
#include "core/kernels.h"
#include "kernels/cpu/loops.h"

namespace graft::cpu {

namespace {

template <typename To, typename From>
inline To convert(From v) {
  if constexpr (std::is_same_v<To, From>) {
    return v;
  } else if constexpr (std::is_same_v<From, Half> || std::is_same_v<From, BFloat16>) {
    return convert<To>(static_cast<float>(v));
  } else if constexpr (std::is_same_v<To, Half> || std::is_same_v<To, BFloat16>) {
    return To(static_cast<float>(v));
  } else if constexpr (std::is_same_v<To, bool>) {
    return v != From(0);
  } else if constexpr (std::is_integral_v<To> && std::is_floating_point_v<From>) {
    return float_to_int<To>(v);  // one rule on every device (core/convert.h)
  } else {
    return static_cast<To>(v);
  }
}

// Runs f(out_ptr, in_ptrs...) element-wise with a fast contiguous path that the
// compiler can vectorise. Op is a compile-time functor per call site.
template <typename Out, typename... In, typename F>
void map_elements(const Tensor& out, const std::array<const Tensor*, sizeof...(In)>& ins, F f) {
  constexpr size_t N = sizeof...(In) + 1;
  std::array<const Tensor*, N> ops{};
  ops[0] = &out;
  for (size_t i = 0; i < sizeof...(In); ++i) ops[i + 1] = ins[i];
  StridedLoop<N> loop(out.sizes(), ops);
  loop.run([&](std::array<char*, N>& p, const std::array<int64_t, N>& st, int64_t n) {
    constexpr std::array<int64_t, N> item{static_cast<int64_t>(sizeof(Out)),
                                          static_cast<int64_t>(sizeof(In))...};
    bool contig = true;
    for (size_t k = 0; k < N; ++k) contig = contig && st[k] == item[k];
    if (contig) {
      Out* o = reinterpret_cast<Out*>(p[0]);
      [&]<size_t... I>(std::index_sequence<I...>) {
        std::tuple<const In*...> in{reinterpret_cast<const In*>(p[I + 1])...};
        for (int64_t i = 0; i < n; ++i) o[i] = f(std::get<I>(in)[i]...);
      }
      (std::index_sequence_for<In...>{});
    } else {
      for (int64_t i = 0; i < n; ++i) {
        [&]<size_t... I>(std::index_sequence<I...>) {
          *reinterpret_cast<Out*>(p[0] + i * st[0]) =
              f(*reinterpret_cast<const In*>(p[I + 1] + i * st[I + 1])...);
        }
        (std::index_sequence_for<In...>{});
      }
    }
  });
}

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

template <typename To>
void copy_to(const Tensor& src, const Tensor& dst) {
  GRAFT_DISPATCH_ALL(src.dtype(), "copy", [&] {
    map_elements<To, scalar_t>(dst, {&src}, [](scalar_t x) { return convert<To>(x); });
  });
}

void copy_cpu(const Tensor& src, const Tensor& dst) {
  GRAFT_CHECK(src.sizes() == dst.sizes(), "copy: shape mismatch ", shape_str(src.sizes()), " vs ",
              shape_str(dst.sizes()));
  GRAFT_DISPATCH_ALL(dst.dtype(), "copy", [&] { copy_to<scalar_t>(src, dst); });
}

void fill_cpu(const Tensor& out, double value) {
  GRAFT_DISPATCH_ALL(out.dtype(), "fill", [&] {
    const scalar_t v = convert<scalar_t>(value);
    StridedLoop<1> loop(out.sizes(), {&out});
    loop.run([v](std::array<char*, 1>& p, const std::array<int64_t, 1>& st, int64_t n) {
      for (int64_t i = 0; i < n; ++i) *reinterpret_cast<scalar_t*>(p[0] + i * st[0]) = v;
    });
  });
}

void where_cpu(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out) {
  GRAFT_DISPATCH_ALL(out.dtype(), "where", [&] {
    map_elements<scalar_t, bool, scalar_t, scalar_t>(
        out, {&cond, &a, &b}, [](bool c, scalar_t x, scalar_t y) { return c ? x : y; });
  });
}

}  // namespace

GRAFT_REGISTER_KERNEL(unary, CPU, unary_cpu);
GRAFT_REGISTER_KERNEL(binary, CPU, binary_cpu);
GRAFT_REGISTER_KERNEL(binary_scalar, CPU, binary_scalar_cpu);
GRAFT_REGISTER_KERNEL(copy, CPU, copy_cpu);
GRAFT_REGISTER_KERNEL(fill, CPU, fill_cpu);
GRAFT_REGISTER_KERNEL(where, CPU, where_cpu);

}  // namespace graft::cpu
