// The device-neutral op API. Every op is declared here once; its front end
// (core/ops.cpp) checks shapes and dtypes, allocates the output, calls the
// kernel registered for the input's device (core/kernels.h) and, when grad
// mode is on and an input requires grad, records the backward node whose
// formula lives in core/derivatives.cpp.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "core/alloc.h"
#include "core/generator.h"
#include "core/op_tables.h"
#include "core/tensor.h"

namespace graft {

// ---- factories (empty() and TensorOptions are in core/alloc.h) ----
Tensor zeros(const Shape& shape, TensorOptions o = {});
Tensor ones(const Shape& shape, TensorOptions o = {});
Tensor full(const Shape& shape, double value, TensorOptions o = {});
Tensor scalar_tensor(double value, TensorOptions o = {});
Tensor arange(double start, double end, double step = 1, TensorOptions o = {});
inline Tensor arange(double end, TensorOptions o = {}) { return arange(0, end, 1, o); }
// Uniform [lo, hi), standard normal, uniform integers [lo, hi). Drawn on the CPU
// from `gen` (default_generator() when null), then moved to o.device, so a seed
// gives the same numbers on every device.
Tensor rand(const Shape& shape, TensorOptions o = {}, Generator* gen = nullptr);
Tensor randn(const Shape& shape, TensorOptions o = {}, Generator* gen = nullptr);
Tensor randint(int64_t lo, int64_t hi, const Shape& shape, TensorOptions o = {DType::Int64},
               Generator* gen = nullptr);
Tensor randperm(int64_t n, Generator* gen = nullptr);
// Copies `nbytes` of host memory into a new CPU tensor.
Tensor from_buffer(const void* data, const Shape& shape, DType dtype);
template <typename T>
Tensor tensor(const std::vector<T>& values, const Shape& shape) {
  GRAFT_CHECK(static_cast<int64_t>(values.size()) == shape_numel(shape), "tensor: ", values.size(),
              " values do not fill shape ", shape_str(shape));
  return from_buffer(values.data(), shape, dtype_of<T>);
}
template <typename T>
Tensor tensor(const std::vector<T>& values) {
  return tensor(values, Shape{static_cast<int64_t>(values.size())});
}
// Wraps caller memory without copying; the caller keeps it alive.
Tensor from_blob(void* data, const Shape& shape, DType dtype, Device device = Device::cpu());
Tensor empty_like(const Tensor& t);
Tensor zeros_like(const Tensor& t);
Tensor ones_like(const Tensor& t);
Tensor full_like(const Tensor& t, double value);

// ---- element-wise ----
// One function per row of GRAFT_UNARY_OPS (core/op_tables.h), named as the
// row: Tensor neg(const Tensor& a), relu, exp, ... (gelu is the exact erf
// form, gelu_tanh torch's approximate="tanh").
#define GRAFT_UNARY_DECL(Op, name, result, saves) Tensor name(const Tensor& a);
GRAFT_UNARY_OPS(GRAFT_UNARY_DECL)
#undef GRAFT_UNARY_DECL

Tensor add(const Tensor& a, const Tensor& b, double alpha = 1);  // a + alpha*b
Tensor sub(const Tensor& a, const Tensor& b, double alpha = 1);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor pow(const Tensor& a, const Tensor& b);
Tensor maximum(const Tensor& a, const Tensor& b);
Tensor minimum(const Tensor& a, const Tensor& b);
Tensor add(const Tensor& a, double b);
Tensor sub(const Tensor& a, double b);
Tensor rsub(const Tensor& a, double b);  // b - a
Tensor mul(const Tensor& a, double b);
Tensor div(const Tensor& a, double b);
Tensor rdiv(const Tensor& a, double b);  // b / a
Tensor pow(const Tensor& a, double exponent);

// eq, ne, lt, le, gt, ge (GRAFT_COMPARE_OPS), against a tensor or a scalar.
#define GRAFT_COMPARE_DECL(Op, name, result, saves) \
  Tensor name(const Tensor& a, const Tensor& b);    \
  Tensor name(const Tensor& a, double b);
GRAFT_COMPARE_OPS(GRAFT_COMPARE_DECL)
#undef GRAFT_COMPARE_DECL
Tensor logical_and(const Tensor& a, const Tensor& b);
Tensor logical_or(const Tensor& a, const Tensor& b);

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
Tensor clamp(const Tensor& a, std::optional<double> min, std::optional<double> max);

// In-place variants. They bump the version counter; autograd rejects them on
// leaves that require grad and on tensors saved for backward.
Tensor& add_(Tensor& a, const Tensor& b, double alpha = 1);
Tensor& sub_(Tensor& a, const Tensor& b, double alpha = 1);
Tensor& mul_(Tensor& a, const Tensor& b);
Tensor& div_(Tensor& a, const Tensor& b);
Tensor& add_(Tensor& a, double b);
Tensor& mul_(Tensor& a, double b);
Tensor& clamp_(Tensor& a, std::optional<double> min, std::optional<double> max);
Tensor& relu_(Tensor& a);
Tensor& fill_(Tensor& a, double value);
Tensor& zero_(Tensor& a);
// Copies src (broadcast to dst's shape, any dtype/device) into dst.
Tensor& copy_(Tensor& dst, const Tensor& src);
// Random fills (CPU generator, then copied for other devices).
Tensor& uniform_(Tensor& a, double lo, double hi, Generator* gen = nullptr);
Tensor& normal_(Tensor& a, double mean, double std, Generator* gen = nullptr);

// ---- reductions ----
// Empty `dims` means all dims.
Tensor sum(const Tensor& a, std::vector<int64_t> dims = {}, bool keepdim = false);
Tensor mean(const Tensor& a, std::vector<int64_t> dims = {}, bool keepdim = false);
Tensor prod(const Tensor& a, std::vector<int64_t> dims = {}, bool keepdim = false);
Tensor amax(const Tensor& a, std::vector<int64_t> dims = {}, bool keepdim = false);
Tensor amin(const Tensor& a, std::vector<int64_t> dims = {}, bool keepdim = false);
Tensor var(const Tensor& a, std::vector<int64_t> dims = {}, double correction = 1,
           bool keepdim = false);
Tensor std(const Tensor& a, std::vector<int64_t> dims = {}, double correction = 1,
           bool keepdim = false);
struct ValuesIndices {
  Tensor values;
  Tensor indices;
};
ValuesIndices max(const Tensor& a, int64_t dim, bool keepdim = false);
ValuesIndices min(const Tensor& a, int64_t dim, bool keepdim = false);
Tensor max(const Tensor& a);  // all elements
Tensor min(const Tensor& a);
Tensor argmax(const Tensor& a, std::optional<int64_t> dim = std::nullopt, bool keepdim = false);
Tensor argmin(const Tensor& a, std::optional<int64_t> dim = std::nullopt, bool keepdim = false);
// Reduces `grad` (shaped like a broadcast result) back to `shape` by summing.
Tensor sum_to(const Tensor& grad, const Shape& shape);

// ---- linear algebra ----
Tensor matmul(const Tensor& a, const Tensor& b);  // numpy matmul semantics
Tensor mm(const Tensor& a, const Tensor& b);
Tensor bmm(const Tensor& a, const Tensor& b);

// ---- joining and indexing ----
Tensor cat(const std::vector<Tensor>& tensors, int64_t dim = 0);
Tensor stack(const std::vector<Tensor>& tensors, int64_t dim = 0);
Tensor index_select(const Tensor& a, int64_t dim, const Tensor& index);
Tensor gather(const Tensor& a, int64_t dim, const Tensor& index);
Tensor scatter_add(const Tensor& a, int64_t dim, const Tensor& index, const Tensor& src);
Tensor one_hot(const Tensor& labels, int64_t num_classes = -1);  // int64 result

// Shapes: broadcast result of two shapes (throws with both shapes on mismatch).
Shape broadcast_shapes(const Shape& a, const Shape& b);

// ---- operators ----
inline Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
inline Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
inline Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
inline Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
inline Tensor operator-(const Tensor& a) { return neg(a); }
inline Tensor operator+(const Tensor& a, double b) { return add(a, b); }
inline Tensor operator-(const Tensor& a, double b) { return sub(a, b); }
inline Tensor operator*(const Tensor& a, double b) { return mul(a, b); }
inline Tensor operator/(const Tensor& a, double b) { return div(a, b); }
inline Tensor operator+(double a, const Tensor& b) { return add(b, a); }
inline Tensor operator-(double a, const Tensor& b) { return rsub(b, a); }
inline Tensor operator*(double a, const Tensor& b) { return mul(b, a); }
inline Tensor operator/(double a, const Tensor& b) { return rdiv(b, a); }

// ---- comparisons for tests ----
// True when shapes match and |a-b| <= atol + rtol*|b| everywhere (NaNs equal).
bool allclose(const Tensor& a, const Tensor& b, double rtol = 1e-5, double atol = 1e-8);
// max |a-b| / max(|b|, tiny) over all elements, as double.
double max_rel_error(const Tensor& a, const Tensor& b);

}  // namespace graft
