// CPU element-wise kernels: unary, binary, scalar, copy/convert, fill, where.
#include <cmath>
#include <type_traits>

#include "core/convert.h"
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

template <typename T>
inline T apply_unary(UnaryOp op, T x) {
  if constexpr (std::is_floating_point_v<T>) {
    switch (op) {
      case UnaryOp::Neg:
        return -x;
      case UnaryOp::Abs:
        return std::fabs(x);
      case UnaryOp::Exp:
        return std::exp(x);
      case UnaryOp::Log:
        return std::log(x);
      case UnaryOp::Sqrt:
        return std::sqrt(x);
      case UnaryOp::Rsqrt:
        return T(1) / std::sqrt(x);
      case UnaryOp::Sin:
        return std::sin(x);
      case UnaryOp::Cos:
        return std::cos(x);
      case UnaryOp::Tanh:
        return std::tanh(x);
      case UnaryOp::Sigmoid:
        return T(1) / (T(1) + std::exp(-x));
      case UnaryOp::Relu:
        return x > T(0) ? x : (std::isnan(x) ? x : T(0));
      case UnaryOp::Sign:
        return static_cast<T>((T(0) < x) - (x < T(0)));
      case UnaryOp::Reciprocal:
        return T(1) / x;
      case UnaryOp::Square:
        return x * x;
      case UnaryOp::Floor:
        return std::floor(x);
      case UnaryOp::Ceil:
        return std::ceil(x);
      case UnaryOp::Round:
        return std::nearbyint(x);  // half to even, like torch
      case UnaryOp::Log1p:
        return std::log1p(x);
      case UnaryOp::Expm1:
        return std::expm1(x);
      case UnaryOp::LogicalNot:
        return x == T(0);
    }
  } else if constexpr (std::is_same_v<T, bool>) {
    switch (op) {
      case UnaryOp::Abs:
        return x;
      case UnaryOp::LogicalNot:
        return !x;
      default:
        break;
    }
  } else {
    switch (op) {
      case UnaryOp::Neg:
        return static_cast<T>(-x);
      case UnaryOp::Abs:
        return static_cast<T>(x < 0 ? -x : x);
      case UnaryOp::Relu:
        return x > 0 ? x : T(0);
      case UnaryOp::Sign:
        return static_cast<T>((T(0) < x) - (x < T(0)));
      case UnaryOp::Square:
        return static_cast<T>(x * x);
      case UnaryOp::Floor:
      case UnaryOp::Ceil:
      case UnaryOp::Round:
        return x;
      case UnaryOp::LogicalNot:
        return x == 0;
      default:
        break;
    }
  }
  GRAFT_FAIL(unary_op_name(op), ": not supported for dtype ", dtype_name(dtype_of<T>));
}

template <typename T>
inline T int_pow(T base, T exp) {
  if (exp < 0) return base == 1 ? T(1) : (base == T(-1) ? (exp % 2 ? T(-1) : T(1)) : T(0));
  T result = 1;
  while (exp) {
    if (exp & 1) result = static_cast<T>(result * base);
    base = static_cast<T>(base * base);
    exp >>= 1;
  }
  return result;
}

template <typename T>
inline T apply_arith(BinaryOp op, T a, T b) {
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
        GRAFT_CHECK(b != 0, "div: integer division by zero");
        return static_cast<T>(a / b);
      }
    case BinaryOp::Pow:
      if constexpr (std::is_floating_point_v<T>) {
        return b == T(2) ? a * a : std::pow(a, b);
      } else {
        return int_pow(a, b);
      }
    case BinaryOp::Maximum:
      if constexpr (std::is_floating_point_v<T>) {
        if (std::isnan(a) || std::isnan(b)) return std::numeric_limits<T>::quiet_NaN();
      }
      return a > b ? a : b;
    case BinaryOp::Minimum:
      if constexpr (std::is_floating_point_v<T>) {
        if (std::isnan(a) || std::isnan(b)) return std::numeric_limits<T>::quiet_NaN();
      }
      return a < b ? a : b;
    case BinaryOp::ReluBackward:
      return b > T(0) ? a : T(0);
    case BinaryOp::LogicalAnd:
      return (a != T(0)) && (b != T(0));
    case BinaryOp::LogicalOr:
      return (a != T(0)) || (b != T(0));
    default:
      break;
  }
  GRAFT_FAIL(binary_op_name(op), ": not an arithmetic op");
}

template <typename T>
inline bool apply_compare(BinaryOp op, T a, T b) {
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
      break;
  }
  GRAFT_FAIL(binary_op_name(op), ": not a comparison");
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

void unary_cpu(UnaryOp op, const Tensor& in, const Tensor& out) {
  if (op == UnaryOp::LogicalNot) {
    map_elements<bool, bool>(out, {&in}, [](bool x) { return !x; });
    return;
  }
  GRAFT_DISPATCH_NUMERIC(in.dtype(), unary_op_name(op), [&] {
    switch (op) {  // hot ops get their own instantiation so they vectorise
      case UnaryOp::Relu:
        map_elements<scalar_t, scalar_t>(out, {&in},
                                         [](scalar_t x) { return apply_unary(UnaryOp::Relu, x); });
        break;
      case UnaryOp::Neg:
        map_elements<scalar_t, scalar_t>(out, {&in},
                                         [](scalar_t x) { return static_cast<scalar_t>(-x); });
        break;
      default:
        map_elements<scalar_t, scalar_t>(out, {&in},
                                         [op](scalar_t x) { return apply_unary(op, x); });
    }
  });
}

void binary_cpu(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) {
  if (out.dtype() == DType::Bool && is_comparison(op)) {
    GRAFT_DISPATCH_ALL(a.dtype(), binary_op_name(op), [&] {
      map_elements<bool, scalar_t, scalar_t>(out, {&a, &b}, [op](scalar_t x, scalar_t y) {
        if constexpr (std::is_same_v<scalar_t, Half> || std::is_same_v<scalar_t, BFloat16>) {
          return apply_compare(op, static_cast<float>(x), static_cast<float>(y));
        } else {
          return apply_compare(op, x, y);
        }
      });
    });
    return;
  }
  if (a.dtype() == DType::Bool) {
    map_elements<bool, bool, bool>(
        out, {&a, &b}, [op](bool x, bool y) { return apply_arith<int>(op, x, y) != 0; });
    return;
  }
  GRAFT_DISPATCH_NUMERIC(a.dtype(), binary_op_name(op), [&] {
    using T = scalar_t;
    switch (op) {
      case BinaryOp::Add:
        map_elements<T, T, T>(out, {&a, &b}, [](T x, T y) { return static_cast<T>(x + y); });
        break;
      case BinaryOp::Sub:
        map_elements<T, T, T>(out, {&a, &b}, [](T x, T y) { return static_cast<T>(x - y); });
        break;
      case BinaryOp::Mul:
        map_elements<T, T, T>(out, {&a, &b}, [](T x, T y) { return static_cast<T>(x * y); });
        break;
      case BinaryOp::ReluBackward:
        map_elements<T, T, T>(out, {&a, &b}, [](T g, T x) { return x > T(0) ? g : T(0); });
        break;
      default:
        map_elements<T, T, T>(out, {&a, &b}, [op](T x, T y) { return apply_arith(op, x, y); });
    }
  });
}

void binary_scalar_cpu(BinaryOp op, const Tensor& a, double s, bool scalar_first,
                       const Tensor& out) {
  if (is_comparison(op)) {
    GRAFT_DISPATCH_ALL(a.dtype(), binary_op_name(op), [&] {
      map_elements<bool, scalar_t>(out, {&a}, [op, s, scalar_first](scalar_t x) {
        const double v = convert<double>(x);
        return scalar_first ? apply_compare(op, s, v) : apply_compare(op, v, s);
      });
    });
    return;
  }
  GRAFT_DISPATCH_NUMERIC(a.dtype(), binary_op_name(op), [&] {
    using T = scalar_t;
    const T c = static_cast<T>(s);
    if (!scalar_first && op == BinaryOp::Mul) {
      map_elements<T, T>(out, {&a}, [c](T x) { return static_cast<T>(x * c); });
    } else if (!scalar_first && op == BinaryOp::Add) {
      map_elements<T, T>(out, {&a}, [c](T x) { return static_cast<T>(x + c); });
    } else if (scalar_first) {
      map_elements<T, T>(out, {&a}, [op, c](T x) { return apply_arith(op, c, x); });
    } else {
      map_elements<T, T>(out, {&a}, [op, c](T x) { return apply_arith(op, x, c); });
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
