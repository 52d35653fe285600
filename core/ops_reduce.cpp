// Front ends for reductions.
#include <algorithm>

#include "core/autograd.h"
#include "core/derivatives.h"
#include "core/kernels.h"
#include "core/ops.h"

namespace graft {

namespace {

// Sorted unique wrapped dims; empty means all.
std::vector<int64_t> reduction_dims(const Tensor& a, std::vector<int64_t> dims, const char* op) {
  if (dims.empty()) {
    dims.resize(a.dim());
    for (int64_t i = 0; i < a.dim(); ++i) dims[i] = i;
    return dims;
  }
  for (auto& d : dims) d = wrap_dim(d, a.dim(), op);
  std::sort(dims.begin(), dims.end());
  GRAFT_CHECK(std::adjacent_find(dims.begin(), dims.end()) == dims.end(), op,
              ": dim appears more than once in the list of dims");
  if (a.dim() == 0) dims.clear();
  return dims;
}

Shape keepdim_shape(const Tensor& a, const std::vector<int64_t>& dims) {
  Shape s = a.sizes();
  for (int64_t d : dims) s[d] = 1;
  return s;
}

Shape squeezed_shape(const Tensor& a, const std::vector<int64_t>& dims) {
  Shape s;
  for (int64_t d = 0; d < a.dim(); ++d)
    if (!std::binary_search(dims.begin(), dims.end(), d)) s.push_back(a.sizes()[d]);
  return s;
}

DType reduce_dtype(const Tensor& a, ReduceOp op) {
  DType t = a.dtype();
  if (t == DType::Float16 || t == DType::BFloat16) return DType::Float32;
  if ((op == ReduceOp::Sum || op == ReduceOp::Prod) && !is_floating(t)) return DType::Int64;
  GRAFT_CHECK(op != ReduceOp::Mean || is_floating(t), "mean: needs a floating point input, got ",
              dtype_name(t), " (convert with .to(DType::Float32))");
  return t;
}

Tensor reduce_op(ReduceOp op, const Tensor& a, const std::vector<int64_t>& dims, bool keepdim,
                 const char* name) {
  const DType t = reduce_dtype(a, op);
  Tensor in = a.to(t);
  Tensor out = empty(keepdim_shape(in, dims), opts(t, a.device()));
  if (in.dim() == 0 || dims.empty()) {
    kernel::copy(a.device())(in, out);
  } else {
    kernel::reduce(a.device())(op, in, dims, out);
  }
  if (!keepdim) out = out.view(squeezed_shape(in, dims));
  (void)name;
  return out;
}

}  // namespace

Tensor sum(const Tensor& a, std::vector<int64_t> dims, bool keepdim) {
  dims = reduction_dims(a, std::move(dims), "sum: dim");
  Tensor out;
  {
    NoGradGuard g;
    out = reduce_op(ReduceOp::Sum, a, dims, keepdim, "sum");
  }
  if (autograd::any_requires_grad({&a})) derivatives::sum(a, dims, keepdim, out);
  return out;
}

Tensor mean(const Tensor& a, std::vector<int64_t> dims, bool keepdim) {
  dims = reduction_dims(a, std::move(dims), "mean: dim");
  Tensor out;
  {
    NoGradGuard g;
    out = reduce_op(ReduceOp::Mean, a, dims, keepdim, "mean");
  }
  if (autograd::any_requires_grad({&a})) derivatives::mean(a, dims, keepdim, out);
  return out;
}

Tensor prod(const Tensor& a, std::vector<int64_t> dims, bool keepdim) {
  dims = reduction_dims(a, std::move(dims), "prod: dim");
  Tensor out;
  {
    NoGradGuard g;
    out = reduce_op(ReduceOp::Prod, a, dims, keepdim, "prod");
  }
  if (autograd::any_requires_grad({&a})) derivatives::prod(a, dims, keepdim, out);
  return out;
}

Tensor amax(const Tensor& a, std::vector<int64_t> dims, bool keepdim) {
  dims = reduction_dims(a, std::move(dims), "amax: dim");
  Tensor out;
  {
    NoGradGuard g;
    out = reduce_op(ReduceOp::Max, a, dims, keepdim, "amax");
  }
  if (autograd::any_requires_grad({&a})) derivatives::amax_amin(a, dims, keepdim, out);
  return out;
}

Tensor amin(const Tensor& a, std::vector<int64_t> dims, bool keepdim) {
  dims = reduction_dims(a, std::move(dims), "amin: dim");
  Tensor out;
  {
    NoGradGuard g;
    out = reduce_op(ReduceOp::Min, a, dims, keepdim, "amin");
  }
  if (autograd::any_requires_grad({&a})) derivatives::amax_amin(a, dims, keepdim, out);
  return out;
}

Tensor max(const Tensor& a) { return amax(a); }
Tensor min(const Tensor& a) { return amin(a); }

Tensor sum_to(const Tensor& grad, const Shape& shape) {
  if (grad.sizes() == shape) return grad;
  const int64_t lead = grad.dim() - static_cast<int64_t>(shape.size());
  GRAFT_CHECK(lead >= 0, "sum_to: cannot reduce ", shape_str(grad.sizes()), " to ",
              shape_str(shape));
  std::vector<int64_t> dims;
  for (int64_t d = 0; d < grad.dim(); ++d) {
    if (d < lead) {
      dims.push_back(d);
    } else if (shape[d - lead] == 1 && grad.sizes()[d] != 1) {
      dims.push_back(d);
    } else {
      GRAFT_CHECK(shape[d - lead] == grad.sizes()[d], "sum_to: cannot reduce ",
                  shape_str(grad.sizes()), " to ", shape_str(shape));
    }
  }
  Tensor r = dims.empty() ? grad : sum(grad, dims, true);
  return r.reshape(shape);
}

}  // namespace graft
