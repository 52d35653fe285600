// Front ends for matrix products, joining and indexing ops.
//
// bmm is the one matrix-product primitive (kernel and backward); mm and
// matmul reshape onto it with differentiable views, so their gradients come
// out of bmm's backward and the view nodes.
#include <algorithm>

#include "core/autograd.h"
#include "core/derivatives.h"
#include "core/kernels.h"
#include "core/ops.h"

namespace graft {

namespace {

void check_same_device(const Tensor& a, const Tensor& b, const char* op) {
  GRAFT_CHECK(a.device() == b.device(), op, ": expected all tensors on one device, got ",
              a.device().str(), " and ", b.device().str());
}

// float16/bfloat16 products compute in float32.
DType gemm_dtype(DType t) {
  return (t == DType::Float16 || t == DType::BFloat16) ? DType::Float32 : t;
}

// True when the matrices of a 3-D tensor can be handed to GEMM as they are:
// one of the last two strides is 1 and the other spans a whole row/column
// (the same rule as the CPU kernel's layout_of).
bool gemm_ready(const Tensor& t) {
  const int64_t rows = t.size(1), cols = t.size(2), rs = t.stride(1), cs = t.stride(2);
  if ((cs == 1 || cols == 1) && (rows == 1 || rs >= cols)) return true;
  if ((rs == 1 || rows == 1) && (cols == 1 || cs >= rows)) return true;
  return false;
}

// Index tensors are int64; int32 indices are accepted and widened.
Tensor as_index(const Tensor& index, const char* op) {
  GRAFT_CHECK(index.dtype() == DType::Int64 || index.dtype() == DType::Int32, op,
              ": index must be an int64 (or int32) tensor, got ", dtype_name(index.dtype()));
  return index.to(DType::Int64);
}

}  // namespace

// ============================================================ linear algebra

Tensor bmm(const Tensor& a, const Tensor& b) {
  GRAFT_CHECK(a.dim() == 3 && b.dim() == 3, "bmm: expected 3-D tensors, got ", shape_str(a.sizes()),
              " and ", shape_str(b.sizes()));
  check_same_device(a, b, "bmm");
  GRAFT_CHECK(a.dtype() == b.dtype(), "bmm: expected both tensors to have the same dtype, got ",
              dtype_name(a.dtype()), " and ", dtype_name(b.dtype()));
  GRAFT_CHECK(a.size(0) == b.size(0), "bmm: batch sizes differ: ", shape_str(a.sizes()), " and ",
              shape_str(b.sizes()));
  GRAFT_CHECK(a.size(2) == b.size(1), "bmm: shapes ", shape_str(a.sizes()), " and ",
              shape_str(b.sizes()), " cannot be multiplied (", a.size(2), " vs ", b.size(1), ")");
  const DType t = a.dtype();
  const DType ct = gemm_dtype(t);
  if (ct != t) return bmm(a.to(ct), b.to(ct)).to(t);
  Tensor out = empty({a.size(0), a.size(1), b.size(2)}, opts(t, a.device()));
  {
    NoGradGuard g;
    const Tensor ak = gemm_ready(a) ? a : a.contiguous();
    const Tensor bk = gemm_ready(b) ? b : b.contiguous();
    kernel::bmm(a.device())(ak, bk, out, false);
  }
  if (autograd::any_requires_grad({&a, &b})) derivatives::bmm(a, b, out);
  return out;
}

Tensor mm(const Tensor& a, const Tensor& b) {
  GRAFT_CHECK(a.dim() == 2 && b.dim() == 2, "mm: expected 2-D tensors, got ", shape_str(a.sizes()),
              " and ", shape_str(b.sizes()));
  GRAFT_CHECK(a.size(1) == b.size(0), "mm: shapes ", shape_str(a.sizes()), " and ",
              shape_str(b.sizes()), " cannot be multiplied (", a.size(1), " vs ", b.size(0), ")");
  return bmm(a.unsqueeze(0), b.unsqueeze(0)).squeeze(0);
}

Tensor matmul(const Tensor& a, const Tensor& b) {
  const int64_t da = a.dim(), db = b.dim();
  GRAFT_CHECK(da >= 1 && db >= 1, "matmul: both arguments need at least 1 dimension, got ",
              shape_str(a.sizes()), " and ", shape_str(b.sizes()));
  const int64_t ka = a.size(-1), kb = db == 1 ? b.size(0) : b.size(-2);
  GRAFT_CHECK(ka == kb, "matmul: shapes ", shape_str(a.sizes()), " and ", shape_str(b.sizes()),
              " cannot be multiplied (", ka, " vs ", kb, ")");
  if (da == 1 && db == 1) return mm(a.unsqueeze(0), b.unsqueeze(1)).reshape({});
  if (da == 2 && db == 1) return mm(a, b.unsqueeze(1)).squeeze(1);
  if (da == 1 && db == 2) return mm(a.unsqueeze(0), b).squeeze(0);
  if (da == 2 && db == 2) return mm(a, b);
  if (da >= 3 && db <= 2) {
    // Fold a's batch dims into its rows: one big GEMM instead of many small.
    Shape out_shape(a.sizes().begin(), a.sizes().end() - 1);
    const Tensor b2 = db == 1 ? b.unsqueeze(1) : b;
    if (db == 2) out_shape.push_back(b.size(1));
    return mm(a.reshape({-1, ka}), b2).reshape(out_shape);
  }
  // General case: broadcast the batch dims and run one bmm.
  const Tensor a2 = da == 1 ? a.unsqueeze(0) : a;
  const Tensor b2 = db == 1 ? b.unsqueeze(1) : b;
  const int64_t m = a2.size(-2), n = b2.size(-1);
  const Shape batch_a(a2.sizes().begin(), a2.sizes().end() - 2);
  const Shape batch_b(b2.sizes().begin(), b2.sizes().end() - 2);
  const Shape batch = broadcast_shapes(batch_a, batch_b);
  Shape ea = batch, eb = batch;
  ea.insert(ea.end(), {m, ka});
  eb.insert(eb.end(), {ka, n});
  Tensor r = bmm(a2.expand(ea).reshape({-1, m, ka}), b2.expand(eb).reshape({-1, ka, n}));
  Shape out_shape = batch;
  if (da > 1) out_shape.push_back(m);
  if (db > 1) out_shape.push_back(n);
  return r.reshape(out_shape);
}

// ============================================================ joining

Tensor cat(const std::vector<Tensor>& tensors, int64_t dim) {
  GRAFT_CHECK(!tensors.empty(), "cat: expected a non-empty list of tensors");
  // Like torch, 1-D empty tensors are skipped (legacy behaviour relied upon
  // by code that starts from an empty accumulator).
  std::vector<Tensor> parts;
  for (const Tensor& t : tensors) {
    GRAFT_CHECK(t.defined(), "cat: undefined tensor in the list");
    if (!(t.dim() == 1 && t.numel() == 0)) parts.push_back(t);
  }
  if (parts.empty()) return tensors[0].clone();
  const Tensor& ref = parts[0];
  GRAFT_CHECK(ref.dim() > 0, "cat: zero-dimensional tensors cannot be concatenated");
  dim = wrap_dim(dim, ref.dim(), "cat: dim");
  DType t = ref.dtype();
  Shape shape = ref.sizes();
  shape[dim] = 0;
  for (size_t i = 0; i < parts.size(); ++i) {
    const Tensor& p = parts[i];
    check_same_device(ref, p, "cat");
    GRAFT_CHECK(p.dim() == ref.dim(),
                "cat: tensors must have the same number of dims; tensor 0 "
                "has shape ",
                shape_str(ref.sizes()), ", tensor ", i, " has shape ", shape_str(p.sizes()));
    for (int64_t d = 0; d < ref.dim(); ++d)
      GRAFT_CHECK(d == dim || p.size(d) == ref.size(d), "cat: sizes must match except in dim ", dim,
                  "; tensor 0 has shape ", shape_str(ref.sizes()), ", tensor ", i, " has shape ",
                  shape_str(p.sizes()));
    shape[dim] += p.size(dim);
    t = promote_types(t, p.dtype());
  }
  Tensor out = empty(shape, opts(t, ref.device()));
  {
    NoGradGuard g;
    int64_t offset = 0;
    for (const Tensor& p : parts) {
      const int64_t len = p.size(dim);
      if (len > 0) kernel::copy(out.device())(p, out.narrow(dim, offset, len));
      offset += len;
    }
  }
  if (is_floating(t) && autograd::any_requires_grad(parts)) derivatives::cat(parts, dim, out);
  return out;
}

Tensor stack(const std::vector<Tensor>& tensors, int64_t dim) {
  GRAFT_CHECK(!tensors.empty(), "stack: expected a non-empty list of tensors");
  dim = wrap_dim(dim, tensors[0].dim() + 1, "stack: dim");
  std::vector<Tensor> parts;
  parts.reserve(tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    GRAFT_CHECK(tensors[i].sizes() == tensors[0].sizes(),
                "stack: expects each tensor to be the "
                "same shape, but tensor 0 has shape ",
                shape_str(tensors[0].sizes()), " and tensor ", i, " has shape ",
                shape_str(tensors[i].sizes()));
    parts.push_back(tensors[i].unsqueeze(dim));
  }
  return cat(parts, dim);
}

// ============================================================ indexing

Tensor index_select(const Tensor& a, int64_t dim, const Tensor& index_in) {
  check_same_device(a, index_in, "index_select");
  dim = wrap_dim(dim, a.dim(), "index_select: dim");
  GRAFT_CHECK(index_in.dim() <= 1, "index_select: index must be 0-D or 1-D, got shape ",
              shape_str(index_in.sizes()));
  const Tensor index = as_index(index_in, "index_select").contiguous().reshape({-1});
  // A 0-d input has one element to select and a 0-d output to hold it (as in torch).
  GRAFT_CHECK(a.dim() > 0 || index.numel() == 1,
              "index_select: a 0-d input takes exactly one index, got ", index.numel());
  Shape shape = a.sizes();
  if (a.dim() > 0) shape[dim] = index.numel();
  Tensor out = empty(shape, opts(a.dtype(), a.device()));
  {
    NoGradGuard g;
    kernel::index_select(a.device())(a, dim, index, out);
  }
  if (autograd::any_requires_grad({&a})) derivatives::index_select(a, dim, index, out);
  return out;
}

namespace {
void check_gather_shapes(const Tensor& self, int64_t dim, const Tensor& index, const Tensor* src,
                         const char* op) {
  GRAFT_CHECK(index.dim() == self.dim(), op, ": index ", shape_str(index.sizes()),
              " must have as many dims as the input ", shape_str(self.sizes()));
  for (int64_t d = 0; d < self.dim(); ++d) {
    GRAFT_CHECK(d == dim || index.size(d) <= self.size(d), op, ": index ", shape_str(index.sizes()),
                " is larger than the input ", shape_str(self.sizes()), " at dim ", d);
    if (src)
      GRAFT_CHECK(index.size(d) <= src->size(d), op, ": index ", shape_str(index.sizes()),
                  " is larger than src ", shape_str(src->sizes()), " at dim ", d);
  }
}
}  // namespace

Tensor gather(const Tensor& a, int64_t dim, const Tensor& index_in) {
  check_same_device(a, index_in, "gather");
  dim = wrap_dim(dim, a.dim(), "gather: dim");
  const Tensor index = as_index(index_in, "gather");
  check_gather_shapes(a, dim, index, nullptr, "gather");
  Tensor out = empty(index.sizes(), opts(a.dtype(), a.device()));
  {
    NoGradGuard g;
    kernel::gather(a.device())(a, dim, index, out);
  }
  if (autograd::any_requires_grad({&a})) derivatives::gather(a, dim, index, out);
  return out;
}

Tensor scatter_add(const Tensor& a, int64_t dim, const Tensor& index_in, const Tensor& src) {
  check_same_device(a, index_in, "scatter_add");
  check_same_device(a, src, "scatter_add");
  dim = wrap_dim(dim, a.dim(), "scatter_add: dim");
  GRAFT_CHECK(a.dtype() == src.dtype(), "scatter_add: self (", dtype_name(a.dtype()), ") and src (",
              dtype_name(src.dtype()), ") must have the same dtype");
  GRAFT_CHECK(src.dim() == a.dim(), "scatter_add: src ", shape_str(src.sizes()),
              " must have as many dims as self ", shape_str(a.sizes()));
  const Tensor index = as_index(index_in, "scatter_add");
  check_gather_shapes(a, dim, index, &src, "scatter_add");
  Tensor out = a.detach().clone();
  {
    NoGradGuard g;
    kernel::scatter_add(a.device())(out, dim, index, src);
  }
  if (autograd::any_requires_grad({&a, &src})) derivatives::scatter_add(a, dim, index, src, out);
  return out;
}

Tensor one_hot(const Tensor& labels, int64_t num_classes) {
  GRAFT_CHECK(labels.dtype() == DType::Int64 || labels.dtype() == DType::Int32,
              "one_hot: labels must be an integer tensor, got ", dtype_name(labels.dtype()));
  const Tensor idx = labels.to(DType::Int64);
  if (idx.numel() > 0) {
    const auto lo = static_cast<int64_t>(amin(idx).item());
    const auto hi = static_cast<int64_t>(amax(idx).item());
    GRAFT_CHECK(lo >= 0, "one_hot: labels must be non-negative, got ", lo);
    if (num_classes < 0) num_classes = hi + 1;
    GRAFT_CHECK(hi < num_classes, "one_hot: label ", hi, " is out of range for ", num_classes,
                " classes");
  } else {
    GRAFT_CHECK(num_classes >= 0,
                "one_hot: cannot infer the number of classes from an empty "
                "tensor; pass num_classes");
  }
  Shape shape = idx.sizes();
  shape.push_back(num_classes);
  Tensor out = zeros(shape, opts(DType::Int64, labels.device()));
  Shape one_shape = idx.sizes();
  one_shape.push_back(1);
  if (num_classes == 0 || idx.numel() == 0) return out;
  NoGradGuard g;
  kernel::scatter_add(labels.device())(out, out.dim() - 1, idx.unsqueeze(-1),
                                       ones(one_shape, opts(DType::Int64, labels.device())));
  return out;
}

}  // namespace graft
