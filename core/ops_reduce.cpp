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

// Lays `in` out for the reduction kernels (core/kernels.h, ReduceRows) over
// `dims` (sorted, unique). A contiguous input whose kept dims are adjacent
// ([A, K, B] reduced over A and B, e.g. a conv bias gradient) is read in place
// with inner = B, unless `plain` rows are asked for; any other input becomes a
// contiguous copy with the kept dims first and the reduced dims last (no copy
// when it already is). Either way row r takes its elements in the order of
// the permuted copy, so the result does not depend on which layout is used.
Tensor reduce_rows_input(const Tensor& in, const std::vector<int64_t>& dims, bool plain,
                         ReduceRows& rr) {
  std::vector<bool> reduced(in.dim(), false);
  for (int64_t d : dims) reduced[d] = true;
  Shape perm;
  int64_t first = -1, last = -1;
  bool adjacent = true;
  rr = ReduceRows{1, 1, 1};
  for (int64_t d = 0; d < in.dim(); ++d)
    if (!reduced[d]) {
      perm.push_back(d);
      rr.rows *= in.sizes()[d];
      if (last >= 0 && last != d - 1) adjacent = false;
      if (first < 0) first = d;
      last = d;
    }
  for (int64_t d : dims) {
    perm.push_back(d);
    rr.len *= in.sizes()[d];
  }
  rr.inner = rr.len;
  if (!plain && adjacent && in.is_contiguous()) {
    if (first >= 0) {
      rr.inner = 1;
      for (int64_t d = last + 1; d < in.dim(); ++d) rr.inner *= in.sizes()[d];
    }
    return in;
  }
  NoGradGuard g;
  return in.permute(perm).contiguous();
}

DType reduce_dtype(const Tensor& a, ReduceOp op) {
  DType t = a.dtype();
  if (t == DType::Float16 || t == DType::BFloat16) return DType::Float32;
  if ((op == ReduceOp::Sum || op == ReduceOp::Prod) && !is_floating(t)) return DType::Int64;
  GRAFT_CHECK(op != ReduceOp::Mean || is_floating(t), "mean: needs a floating point input, got ",
              dtype_name(t), " (convert with .to(DType::Float32))");
  return t;
}

Tensor reduce_op(ReduceOp op, const Tensor& a, const std::vector<int64_t>& dims, bool keepdim) {
  const DType t = reduce_dtype(a, op);
  Tensor in = a.to(t);
  Tensor out = empty(keepdim_shape(in, dims), opts(t, a.device()));
  if (in.dim() == 0 || dims.empty()) {
    kernel::copy(a.device())(in, out);
  } else {
    ReduceRows rr;
    const Tensor src = reduce_rows_input(in, dims, false, rr);
    kernel::reduce(a.device())(op, src, rr, out);
  }
  if (!keepdim) out = out.view(squeezed_shape(in, dims));
  return out;
}

}  // namespace

namespace {

using RecordReduction = void (*)(const Tensor&, const std::vector<int64_t>&, bool, const Tensor&);

// The shared front end of sum/mean/prod/amax/amin.
Tensor reduction(ReduceOp op, const Tensor& a, std::vector<int64_t> dims, bool keepdim,
                 const char* what, RecordReduction record) {
  dims = reduction_dims(a, std::move(dims), what);
  Tensor out;
  {
    NoGradGuard g;
    out = reduce_op(op, a, dims, keepdim);
  }
  if (autograd::any_requires_grad({&a})) record(a, dims, keepdim, out);
  return out;
}

}  // namespace

Tensor sum(const Tensor& a, std::vector<int64_t> dims, bool keepdim) {
  return reduction(ReduceOp::Sum, a, std::move(dims), keepdim, "sum: dim", derivatives::sum);
}

Tensor mean(const Tensor& a, std::vector<int64_t> dims, bool keepdim) {
  return reduction(ReduceOp::Mean, a, std::move(dims), keepdim, "mean: dim", derivatives::mean);
}

Tensor prod(const Tensor& a, std::vector<int64_t> dims, bool keepdim) {
  return reduction(ReduceOp::Prod, a, std::move(dims), keepdim, "prod: dim", derivatives::prod);
}

Tensor amax(const Tensor& a, std::vector<int64_t> dims, bool keepdim) {
  return reduction(ReduceOp::Max, a, std::move(dims), keepdim, "amax: dim", derivatives::amax_amin);
}

Tensor amin(const Tensor& a, std::vector<int64_t> dims, bool keepdim) {
  return reduction(ReduceOp::Min, a, std::move(dims), keepdim, "amin: dim", derivatives::amax_amin);
}

Tensor var(const Tensor& a, std::vector<int64_t> dims, double correction, bool keepdim) {
  GRAFT_CHECK(is_floating(a.dtype()), "var: needs a floating point input, got ",
              dtype_name(a.dtype()));
  dims = reduction_dims(a, std::move(dims), "var: dim");
  const DType t = a.dtype() == DType::Float64 ? DType::Float64 : DType::Float32;
  if (t != a.dtype()) return var(a.to(t), dims, correction, keepdim).to(a.dtype());
  Tensor out = empty(keepdim_shape(a, dims), opts(t, a.device()));
  {
    NoGradGuard g;
    // A 0-d tensor reduces over its single element.
    const Tensor in = a.dim() == 0 ? a.reshape({1}) : a;
    const std::vector<int64_t> kdims = a.dim() == 0 ? std::vector<int64_t>{0} : dims;
    ReduceRows rr;
    const Tensor src = reduce_rows_input(in, kdims, true, rr);
    kernel::var(a.device())(src, rr, correction, a.dim() == 0 ? out.reshape({1}) : out);
  }
  if (!keepdim) out = out.view(squeezed_shape(a, dims));
  if (autograd::any_requires_grad({&a})) derivatives::var(a, dims, correction, keepdim, out);
  return out;
}

Tensor std(const Tensor& a, std::vector<int64_t> dims, double correction, bool keepdim) {
  return sqrt(var(a, std::move(dims), correction, keepdim));
}

namespace {

// Shared by max/min(dim) and argmax/argmin: values (optional) and indices.
ValuesIndices arg_reduce_op(ArgReduceOp op, const Tensor& a, int64_t dim, bool keepdim,
                            bool want_values, const char* name) {
  dim = wrap_dim(dim, a.dim(), name);
  const Tensor in = a.dim() == 0 ? a.reshape({1}) : a;
  GRAFT_CHECK(in.size(dim) > 0, name, ": cannot reduce over the empty dim ", dim, " of shape ",
              shape_str(a.sizes()));
  const DType ct = (a.dtype() == DType::Float16 || a.dtype() == DType::BFloat16)
                       ? DType::Float32
                       : (a.dtype() == DType::Bool ? DType::UInt8 : a.dtype());
  const Tensor inc = in.to(ct);
  const Shape kshape = keepdim_shape(inc, {dim});
  ValuesIndices r;
  r.indices = empty(kshape, opts(DType::Int64, a.device()));
  if (want_values) r.values = empty(kshape, opts(ct, a.device()));
  {
    NoGradGuard g;
    ReduceRows rr;
    const Tensor src = reduce_rows_input(inc.detach(), {dim}, true, rr);
    kernel::arg_reduce(a.device())(op, src, rr, r.values, r.indices);
  }
  const Shape final_shape = a.dim() == 0 ? Shape{} : (keepdim ? kshape : squeezed_shape(in, {dim}));
  r.indices = r.indices.view(final_shape);
  if (want_values) {
    r.values = r.values.view(final_shape);
    if (ct != a.dtype()) r.values = r.values.to(a.dtype());
    if (autograd::any_requires_grad({&a}))
      derivatives::max_min_dim(a, dim, keepdim || a.dim() == 0, r.indices, r.values);
  }
  return r;
}

}  // namespace

ValuesIndices max(const Tensor& a, int64_t dim, bool keepdim) {
  return arg_reduce_op(ArgReduceOp::Max, a, dim, keepdim, true, "max: dim");
}

ValuesIndices min(const Tensor& a, int64_t dim, bool keepdim) {
  return arg_reduce_op(ArgReduceOp::Min, a, dim, keepdim, true, "min: dim");
}

Tensor argmax(const Tensor& a, std::optional<int64_t> dim, bool keepdim) {
  if (!dim) {
    // Over all elements: index into the flattened tensor.
    Tensor r = arg_reduce_op(ArgReduceOp::Max, a.reshape({-1}), 0, false, false, "argmax").indices;
    return keepdim ? r.reshape(Shape(static_cast<size_t>(a.dim()), 1)) : r;
  }
  return arg_reduce_op(ArgReduceOp::Max, a, *dim, keepdim, false, "argmax: dim").indices;
}

Tensor argmin(const Tensor& a, std::optional<int64_t> dim, bool keepdim) {
  if (!dim) {
    Tensor r = arg_reduce_op(ArgReduceOp::Min, a.reshape({-1}), 0, false, false, "argmin").indices;
    return keepdim ? r.reshape(Shape(static_cast<size_t>(a.dim()), 1)) : r;
  }
  return arg_reduce_op(ArgReduceOp::Min, a, *dim, keepdim, false, "argmin: dim").indices;
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
