// Op front ends: validation, output allocation, kernel dispatch, and graph
// recording. Backward formulas are in core/derivatives.cpp.
#include "core/ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>

#include "core/autograd.h"
#include "core/derivatives.h"
#include "core/kernels.h"

namespace graft {

// ============================================================ factories

Tensor empty(const Shape& shape, TensorOptions o) {
  auto storage = std::make_shared<StorageImpl>(shape_nbytes(shape, o.dtype, "empty"), o.device);
  Tensor t = make_tensor(std::move(storage), shape, contiguous_strides(shape), 0, o.dtype);
  if (o.requires_grad) t.set_requires_grad(true);
  return t;
}

Tensor full(const Shape& shape, double value, TensorOptions o) {
  const bool rg = o.requires_grad;
  o.requires_grad = false;
  Tensor t = empty(shape, o);
  kernel::fill(t.device())(t, value);
  if (rg) t.set_requires_grad(true);
  return t;
}

Tensor zeros(const Shape& shape, TensorOptions o) { return full(shape, 0.0, o); }
Tensor ones(const Shape& shape, TensorOptions o) { return full(shape, 1.0, o); }
Tensor scalar_tensor(double value, TensorOptions o) { return full({}, value, o); }

Tensor arange(double start, double end, double step, TensorOptions o) {
  GRAFT_CHECK(step != 0, "arange: step must be non-zero");
  GRAFT_CHECK(std::isfinite(start) && std::isfinite(end) && std::isfinite(step),
              "arange: bounds must be finite");
  const double count = std::ceil((end - start) / step);
  const int64_t n = count > 0 ? static_cast<int64_t>(count) : 0;
  Tensor t = empty({n}, opts(DType::Float64));
  double* p = t.data_ptr<double>();
  for (int64_t i = 0; i < n; ++i) p[i] = start + static_cast<double>(i) * step;
  return t.to(o.dtype).to(o.device);
}

namespace {
Generator& gen_or_default(Generator* gen) { return gen ? *gen : default_generator(); }

// Fills a CPU float64 buffer from the generator, then converts and moves.
template <typename Draw>
Tensor random_tensor(const Shape& shape, TensorOptions o, Generator* gen, Draw draw) {
  Tensor t = empty(shape, opts(DType::Float64));
  double* p = t.data_ptr<double>();
  Generator& g = gen_or_default(gen);
  {
    std::lock_guard<std::mutex> lock(g.mutex());
    for (int64_t i = 0, n = t.numel(); i < n; ++i) p[i] = draw(g);
  }
  Tensor out = t.to(o.dtype).to(o.device);
  if (o.requires_grad) out.set_requires_grad(true);
  return out;
}
}  // namespace

Tensor rand(const Shape& shape, TensorOptions o, Generator* gen) {
  return random_tensor(shape, o, gen, [](Generator& g) { return g.next_double(); });
}

Tensor randn(const Shape& shape, TensorOptions o, Generator* gen) {
  return random_tensor(shape, o, gen, [](Generator& g) { return g.next_normal(); });
}

Tensor randint(int64_t lo, int64_t hi, const Shape& shape, TensorOptions o, Generator* gen) {
  GRAFT_CHECK(lo < hi, "randint: empty range [", lo, ", ", hi, ")");
  const auto span = static_cast<uint64_t>(hi - lo);
  Tensor t = empty(shape, opts(DType::Int64));
  int64_t* p = t.data_ptr<int64_t>();
  Generator& g = gen_or_default(gen);
  {
    std::lock_guard<std::mutex> lock(g.mutex());
    for (int64_t i = 0, n = t.numel(); i < n; ++i)
      p[i] = lo + static_cast<int64_t>(g.next_below(span));
  }
  return t.to(o.dtype).to(o.device);
}

Tensor randperm(int64_t n, Generator* gen) {
  GRAFT_CHECK(n >= 0, "randperm: n must be non-negative, got ", n);
  Tensor t = empty({n}, opts(DType::Int64));
  int64_t* p = t.data_ptr<int64_t>();
  std::iota(p, p + n, int64_t{0});
  Generator& g = gen_or_default(gen);
  std::lock_guard<std::mutex> lock(g.mutex());
  for (int64_t i = n - 1; i > 0; --i) {
    const auto j = static_cast<int64_t>(g.next_below(static_cast<uint64_t>(i + 1)));
    std::swap(p[i], p[j]);
  }
  return t;
}

Tensor from_buffer(const void* data, const Shape& shape, DType dtype) {
  Tensor t = empty(shape, opts(dtype));
  if (t.nbytes()) std::memcpy(t.raw_data(), data, t.nbytes());
  return t;
}

Tensor from_blob(void* data, const Shape& shape, DType dtype, Device device) {
  const size_t nbytes = static_cast<size_t>(shape_numel(shape)) * itemsize(dtype);
  auto storage = std::make_shared<StorageImpl>(data, nbytes, device, nullptr);
  return make_tensor(std::move(storage), shape, contiguous_strides(shape), 0, dtype);
}

Tensor empty_like(const Tensor& t) { return empty(t.sizes(), opts(t.dtype(), t.device())); }
Tensor zeros_like(const Tensor& t) { return zeros(t.sizes(), opts(t.dtype(), t.device())); }
Tensor ones_like(const Tensor& t) { return ones(t.sizes(), opts(t.dtype(), t.device())); }
Tensor full_like(const Tensor& t, double v) {
  return full(t.sizes(), v, opts(t.dtype(), t.device()));
}

// ============================================================ element-wise

Shape broadcast_shapes(const Shape& a, const Shape& b) {
  const size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    const int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    const int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    GRAFT_CHECK(da == db || da == 1 || db == 1, "shapes ", shape_str(a), " and ", shape_str(b),
                " cannot be broadcast together (dim ", i, ": ", da, " vs ", db, ")");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

namespace {

void check_same_device(const Tensor& a, const Tensor& b, const char* op) {
  GRAFT_CHECK(a.device() == b.device(), op, ": expected all tensors on one device, got ",
              a.device().str(), " and ", b.device().str());
}

// float16/bfloat16 compute in float32 and are stored back.
DType compute_dtype(DType t) {
  return (t == DType::Float16 || t == DType::BFloat16) ? DType::Float32 : t;
}

Tensor unary_op(UnaryOp op, const Tensor& a) {
  if (unary_result(op) == OpResult::Bool) {
    Tensor in = a.to(DType::Bool);
    Tensor out = empty(a.sizes(), opts(DType::Bool, a.device()));
    kernel::unary(a.device())(op, in, out);
    return out;
  }
  DType t = a.dtype();
  if (unary_result(op) == OpResult::Float && !is_floating(t)) t = DType::Float32;
  GRAFT_CHECK(t != DType::Bool || op == UnaryOp::Abs, unary_op_name(op),
              ": not supported for bool tensors");
  const DType ct = compute_dtype(t);
  Tensor in = a.to(ct);
  Tensor out = empty(a.sizes(), opts(ct, a.device()));
  {
    NoGradGuard g;
    kernel::unary(a.device())(op, in, out);
  }
  if (autograd::any_requires_grad({&in})) derivatives::unary(op, in, out);
  return ct == t ? out : out.to(t);
}

DType binary_result_dtype(const Tensor& a, const Tensor& b, BinaryOp op) {
  DType t = promote_types(a.dtype(), b.dtype());
  if (binary_result(op) == OpResult::Float && !is_floating(t)) t = DType::Float32;
  return t;
}

Tensor binary_op(BinaryOp op, const Tensor& a, const Tensor& b) {
  check_same_device(a, b, binary_op_name(op));
  const Shape shape = broadcast_shapes(a.sizes(), b.sizes());
  const bool logical = binary_result(op) == OpResult::Bool;
  const DType t = logical ? DType::Bool : binary_result_dtype(a, b, op);
  const DType ct = logical ? DType::Bool : compute_dtype(t);
  Tensor ac = a.to(ct), bc = b.to(ct);
  const DType out_t = is_comparison(op) ? DType::Bool : ct;
  Tensor out = empty(shape, opts(out_t, a.device()));
  {
    NoGradGuard g;
    kernel::binary(a.device())(op, ac.expand(shape), bc.expand(shape), out);
  }
  if (!is_comparison(op) && autograd::any_requires_grad({&ac, &bc}))
    derivatives::binary(op, ac, bc, out);
  return (out_t == ct && ct != t) ? out.to(t) : out;
}

Tensor binary_scalar_op(BinaryOp op, const Tensor& a, double s, bool scalar_first) {
  DType t = a.dtype();
  const bool integral_scalar = std::nearbyint(s) == s && std::isfinite(s);
  if (!is_floating(t) && (!integral_scalar || binary_result(op) == OpResult::Float))
    t = DType::Float32;
  if (t == DType::Bool && !is_comparison(op)) t = DType::Int64;
  const DType ct = compute_dtype(t);
  Tensor ac = a.to(ct);
  const DType out_t = is_comparison(op) ? DType::Bool : ct;
  Tensor out = empty(a.sizes(), opts(out_t, a.device()));
  {
    NoGradGuard g;
    kernel::binary_scalar(a.device())(op, ac, s, scalar_first, out);
  }
  if (!is_comparison(op) && autograd::any_requires_grad({&ac}))
    derivatives::binary_scalar(op, ac, s, scalar_first, out);
  return (out_t == ct && ct != t) ? out.to(t) : out;
}

// In-place: computes into `a` itself. Autograd: rejected on leaves that need
// grad; on non-leaves the result takes over the out-of-place node.
void check_inplace(const Tensor& a, const char* op) {
  GRAFT_CHECK(!(autograd::grad_enabled() && a.requires_grad() && a.is_leaf()), op,
              ": a leaf tensor that requires grad cannot be modified in place (use "
              "NoGradGuard for parameter updates)");
}

Tensor& finish_inplace(Tensor& a, const Tensor& result) {
  // `result` was computed out of place (with its graph when needed); write it
  // back into a's memory and let a adopt its history.
  GRAFT_CHECK(!(result.requires_grad() && a.impl()->is_view), "in-place operation on a view (",
              a.meta_str(),
              ") that needs a gradient is not "
              "supported: the viewed tensor's history would not record it; use an out-of-place "
              "op, or clone() the view first");
  {
    NoGradGuard g;
    kernel::copy(a.device())(result, a);
  }
  a.storage()->bump_version();
  if (result.requires_grad() && result.grad_fn()) {
    a.impl()->grad_fn = result.grad_fn();
    a.impl()->output_nr = 0;
    a.impl()->requires_grad = true;
  }
  return a;
}

}  // namespace

#define GRAFT_UNARY_FRONT_END(Op, name, result, saves) \
  Tensor name(const Tensor& a) { return unary_op(UnaryOp::Op, a); }
GRAFT_UNARY_OPS(GRAFT_UNARY_FRONT_END)
#undef GRAFT_UNARY_FRONT_END

Tensor add(const Tensor& a, const Tensor& b, double alpha) {
  return binary_op(BinaryOp::Add, a, alpha == 1 ? b : mul(b, alpha));
}
Tensor sub(const Tensor& a, const Tensor& b, double alpha) {
  return binary_op(BinaryOp::Sub, a, alpha == 1 ? b : mul(b, alpha));
}
Tensor mul(const Tensor& a, const Tensor& b) { return binary_op(BinaryOp::Mul, a, b); }
Tensor div(const Tensor& a, const Tensor& b) { return binary_op(BinaryOp::Div, a, b); }
Tensor pow(const Tensor& a, const Tensor& b) { return binary_op(BinaryOp::Pow, a, b); }
Tensor maximum(const Tensor& a, const Tensor& b) { return binary_op(BinaryOp::Maximum, a, b); }
Tensor minimum(const Tensor& a, const Tensor& b) { return binary_op(BinaryOp::Minimum, a, b); }
Tensor add(const Tensor& a, double b) { return binary_scalar_op(BinaryOp::Add, a, b, false); }
Tensor sub(const Tensor& a, double b) { return binary_scalar_op(BinaryOp::Sub, a, b, false); }
Tensor rsub(const Tensor& a, double b) { return binary_scalar_op(BinaryOp::Sub, a, b, true); }
Tensor mul(const Tensor& a, double b) { return binary_scalar_op(BinaryOp::Mul, a, b, false); }
Tensor div(const Tensor& a, double b) { return binary_scalar_op(BinaryOp::Div, a, b, false); }
Tensor rdiv(const Tensor& a, double b) { return binary_scalar_op(BinaryOp::Div, a, b, true); }
Tensor pow(const Tensor& a, double e) { return binary_scalar_op(BinaryOp::Pow, a, e, false); }

#define GRAFT_COMPARE_FRONT_END(Op, name, result, saves)                                  \
  Tensor name(const Tensor& a, const Tensor& b) { return binary_op(BinaryOp::Op, a, b); } \
  Tensor name(const Tensor& a, double b) { return binary_scalar_op(BinaryOp::Op, a, b, false); }
GRAFT_COMPARE_OPS(GRAFT_COMPARE_FRONT_END)
#undef GRAFT_COMPARE_FRONT_END

Tensor logical_and(const Tensor& a, const Tensor& b) {
  return binary_op(BinaryOp::LogicalAnd, a, b);
}
Tensor logical_or(const Tensor& a, const Tensor& b) { return binary_op(BinaryOp::LogicalOr, a, b); }

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  check_same_device(cond, a, "where");
  check_same_device(a, b, "where");
  GRAFT_CHECK(cond.dtype() == DType::Bool, "where: condition must be bool, got ",
              dtype_name(cond.dtype()));
  const Shape shape = broadcast_shapes(cond.sizes(), broadcast_shapes(a.sizes(), b.sizes()));
  const DType t = compute_dtype(promote_types(a.dtype(), b.dtype()));
  Tensor ac = a.to(t), bc = b.to(t);
  Tensor out = empty(shape, opts(t, a.device()));
  {
    NoGradGuard g;
    kernel::where(a.device())(cond.expand(shape), ac.expand(shape), bc.expand(shape), out);
  }
  if (autograd::any_requires_grad({&ac, &bc})) derivatives::where(cond, ac, bc, out);
  return out;
}

Tensor clamp(const Tensor& a, std::optional<double> lo, std::optional<double> hi) {
  GRAFT_CHECK(lo || hi, "clamp: at least one of min and max must be given");
  Tensor out;
  {
    NoGradGuard g;
    out = a;
    if (lo) out = binary_scalar_op(BinaryOp::Maximum, out, *lo, false);
    if (hi) out = binary_scalar_op(BinaryOp::Minimum, out, *hi, false);
    if (out.is_same(a)) out = a.clone();
  }
  if (autograd::any_requires_grad({&a})) derivatives::clamp(a, lo, hi, out);
  return out;
}

// ---- in-place ----

Tensor& add_(Tensor& a, const Tensor& b, double alpha) {
  check_inplace(a, "add_");
  if (!autograd::any_requires_grad({&a, &b}) && a.dtype() == b.dtype() &&
      broadcast_shapes(a.sizes(), b.sizes()) == a.sizes()) {
    // Fast path, no graph: write straight into a.
    Tensor bb = alpha == 1 ? b : mul(b, alpha);
    kernel::binary(a.device())(BinaryOp::Add, a, bb.expand(a.sizes()), a);
    a.storage()->bump_version();
    return a;
  }
  return finish_inplace(a, add(a, b, alpha));
}
Tensor& sub_(Tensor& a, const Tensor& b, double alpha) { return add_(a, b, -alpha); }
Tensor& mul_(Tensor& a, const Tensor& b) {
  check_inplace(a, "mul_");
  if (!autograd::any_requires_grad({&a, &b}) && a.dtype() == b.dtype() &&
      broadcast_shapes(a.sizes(), b.sizes()) == a.sizes()) {
    kernel::binary(a.device())(BinaryOp::Mul, a, b.expand(a.sizes()), a);
    a.storage()->bump_version();
    return a;
  }
  return finish_inplace(a, mul(a, b));
}
Tensor& div_(Tensor& a, const Tensor& b) {
  check_inplace(a, "div_");
  return finish_inplace(a, div(a, b));
}
Tensor& add_(Tensor& a, double b) {
  check_inplace(a, "add_");
  if (!autograd::any_requires_grad({&a}) && is_floating(a.dtype()) &&
      compute_dtype(a.dtype()) == a.dtype()) {
    kernel::binary_scalar(a.device())(BinaryOp::Add, a, b, false, a);
    a.storage()->bump_version();
    return a;
  }
  return finish_inplace(a, add(a, b));
}
Tensor& mul_(Tensor& a, double b) {
  check_inplace(a, "mul_");
  if (!autograd::any_requires_grad({&a}) && is_floating(a.dtype()) &&
      compute_dtype(a.dtype()) == a.dtype()) {
    kernel::binary_scalar(a.device())(BinaryOp::Mul, a, b, false, a);
    a.storage()->bump_version();
    return a;
  }
  return finish_inplace(a, mul(a, b));
}
Tensor& clamp_(Tensor& a, std::optional<double> lo, std::optional<double> hi) {
  check_inplace(a, "clamp_");
  return finish_inplace(a, clamp(a, lo, hi));
}
Tensor& relu_(Tensor& a) {
  check_inplace(a, "relu_");
  if (!autograd::any_requires_grad({&a}) && compute_dtype(a.dtype()) == a.dtype()) {
    kernel::unary(a.device())(UnaryOp::Relu, a, a);
    a.storage()->bump_version();
    return a;
  }
  return finish_inplace(a, relu(a));
}
Tensor& fill_(Tensor& a, double value) {
  check_inplace(a, "fill_");
  kernel::fill(a.device())(a, value);
  a.storage()->bump_version();
  return a;
}
Tensor& zero_(Tensor& a) { return fill_(a, 0.0); }

Tensor& copy_(Tensor& dst, const Tensor& src) {
  check_inplace(dst, "copy_");
  Tensor s = src;
  if (s.device() != dst.device()) s = s.to(dst.device());
  Tensor expanded = s.expand(dst.sizes());
  if (autograd::any_requires_grad({&s})) {
    // Differentiable copy: dst takes the history of a converted clone.
    return finish_inplace(dst, expanded.to(dst.dtype()).clone());
  }
  kernel::copy(dst.device())(expanded, dst);
  dst.storage()->bump_version();
  return dst;
}

namespace {
// Fills a contiguous float32/float64 CPU tensor with scale * draw() + shift
// straight from the generator: the same values as the generic path (a float64
// draw, scaled in float64, converted once), without its four full-size passes
// and temporaries, which made model construction (kaiming init of ~11M ResNet18
// weights) take seconds. Returns false where the generic path must run.
template <typename Draw>
bool fill_random_direct(Tensor& a, Generator* gen, double scale, double shift, Draw draw) {
  if (!a.device().is_cpu() || !a.is_contiguous() ||
      (a.dtype() != DType::Float32 && a.dtype() != DType::Float64))
    return false;
  check_inplace(a, "random fill");
  Generator& g = gen_or_default(gen);
  const int64_t n = a.numel();
  {
    std::lock_guard<std::mutex> lock(g.mutex());
    if (a.dtype() == DType::Float32) {
      float* p = a.data_ptr<float>();
      for (int64_t i = 0; i < n; ++i) {
        const double scaled = draw(g) * scale;
        p[i] = static_cast<float>(scaled + shift);
      }
    } else {
      double* p = a.data_ptr<double>();
      for (int64_t i = 0; i < n; ++i) {
        const double scaled = draw(g) * scale;
        p[i] = scaled + shift;
      }
    }
  }
  a.storage()->bump_version();
  return true;
}
}  // namespace

Tensor& uniform_(Tensor& a, double lo, double hi, Generator* gen) {
  if (fill_random_direct(a, gen, hi - lo, lo, [](Generator& g) { return g.next_double(); }))
    return a;
  Tensor r = rand(a.sizes(), opts(DType::Float64), gen);
  NoGradGuard g;
  Tensor scaled = add(mul(r, hi - lo), lo);
  return copy_(a, scaled);
}

Tensor& normal_(Tensor& a, double mean, double std, Generator* gen) {
  if (fill_random_direct(a, gen, std, mean, [](Generator& g) { return g.next_normal(); })) return a;
  Tensor r = randn(a.sizes(), opts(DType::Float64), gen);
  NoGradGuard g;
  Tensor scaled = add(mul(r, std), mean);
  return copy_(a, scaled);
}

// ============================================================ tests helpers

bool allclose(const Tensor& a, const Tensor& b, double rtol, double atol) {
  if (a.sizes() != b.sizes()) return false;
  const auto va = a.to_vector<double>();
  const auto vb = b.to_vector<double>();
  for (size_t i = 0; i < va.size(); ++i) {
    if (std::isnan(va[i]) && std::isnan(vb[i])) continue;
    if (va[i] == vb[i]) continue;  // equal infinities
    if (!(std::fabs(va[i] - vb[i]) <= atol + rtol * std::fabs(vb[i]))) return false;
  }
  return true;
}

double max_rel_error(const Tensor& a, const Tensor& b) {
  GRAFT_CHECK(a.sizes() == b.sizes(), "max_rel_error: shapes differ: ", shape_str(a.sizes()),
              " vs ", shape_str(b.sizes()));
  const auto va = a.to_vector<double>();
  const auto vb = b.to_vector<double>();
  double max_diff = 0, max_ref = 0;
  for (size_t i = 0; i < va.size(); ++i) {
    const double d = std::fabs(va[i] - vb[i]);
    if (std::isnan(d)) return std::numeric_limits<double>::infinity();
    max_diff = std::max(max_diff, d);
    max_ref = std::max(max_ref, std::fabs(vb[i]));
  }
  return max_diff / std::max(max_ref, 1e-30);
}

}  // namespace graft
