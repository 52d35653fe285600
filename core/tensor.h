// Tensor: a strided view (sizes, strides, offset) into a shared Storage, plus
// the autograd metadata. Tensor is a cheap handle; copies alias the same data.
// Ops live in core/ops.h; this header holds metadata, views and conversions,
// plus method forms of the common ops (x.sum(), x.relu(), x.matmul(y)) that
// delegate to those free functions (core/tensor_methods.cpp).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/dtype.h"
#include "core/hooks.h"
#include "core/op_tables.h"
#include "core/storage.h"

namespace graft {

using Shape = std::vector<int64_t>;

class Tensor;
namespace autograd {
struct Node;
// A gradient hook (Tensor::register_hook): sees the gradient w.r.t. a tensor;
// returning a defined tensor (same shape) replaces it, undefined keeps it.
using GradHook = std::function<Tensor(const Tensor& grad)>;
}  // namespace autograd

struct TensorImpl {
  Storage storage;
  Shape sizes;
  Shape strides;
  int64_t offset = 0;  // in elements
  DType dtype = DType::Float32;
  // Made by a view op (view, permute, slice, select, expand, ...): shares
  // memory with a base tensor. Autograd refuses in-place ops that would give
  // such a view a history, since the base's history would not follow.
  bool is_view = false;

  // autograd
  bool requires_grad = false;
  std::shared_ptr<TensorImpl> grad;
  std::shared_ptr<autograd::Node> grad_fn;  // null for leaves
  uint32_t output_nr = 0;
  std::weak_ptr<autograd::Node> grad_accumulator;  // leaves only, created lazily
  // Leaves only: register_hook()'s hooks, run before accumulation into .grad.
  // (A non-leaf's hooks live on its grad_fn.)
  std::shared_ptr<HookList<autograd::GradHook>> grad_hooks;
  bool retains_grad = false;  // retain_grad() was called on this non-leaf
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  bool defined() const { return impl_ != nullptr; }
  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  bool is_same(const Tensor& o) const { return impl_ == o.impl_; }

  // ---- metadata ----
  const Shape& sizes() const;
  const Shape& shape() const { return sizes(); }
  const Shape& strides() const;
  int64_t size(int64_t dim) const;  // negative dims count from the end
  int64_t stride(int64_t dim) const;
  int64_t dim() const;
  int64_t numel() const;
  DType dtype() const;
  Device device() const;
  int64_t storage_offset() const;
  const Storage& storage() const;
  bool is_contiguous() const;
  size_t itemsize() const { return graft::itemsize(dtype()); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * itemsize(); }

  // Pointer to element [0,...,0]. The typed form checks the dtype.
  void* raw_data() const;
  template <typename T>
  T* data_ptr() const {
    GRAFT_CHECK(dtype() == dtype_of<T>, "data_ptr: tensor has dtype ", dtype_name(dtype()),
                ", requested ", dtype_name(dtype_of<T>));
    return static_cast<T*>(raw_data());
  }
  // The single value of a one-element tensor, converted to double (any device).
  double item() const;
  // Copies all elements (any device, any layout) into a vector of T.
  template <typename T>
  std::vector<T> to_vector() const;

  // ---- views (share storage; differentiable) ----
  Tensor view(Shape shape) const;     // requires compatible strides; -1 infers one size
  Tensor reshape(Shape shape) const;  // view when possible, otherwise a copy
  Tensor permute(Shape dims) const;
  Tensor transpose(int64_t d0, int64_t d1) const;
  Tensor t() const;  // 2-D transpose
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
  Tensor slice(int64_t dim, int64_t start, int64_t end, int64_t step = 1) const;
  Tensor select(int64_t dim, int64_t index) const;
  Tensor expand(Shape shape) const;  // -1 keeps a size
  Tensor squeeze() const;
  Tensor squeeze(int64_t dim) const;
  Tensor unsqueeze(int64_t dim) const;
  Tensor flatten(int64_t start_dim = 0, int64_t end_dim = -1) const;
  Tensor as_strided(Shape sizes, Shape strides, int64_t offset) const;  // not differentiable

  // ---- copies and conversions ----
  Tensor contiguous() const;
  Tensor clone() const;
  Tensor to(DType dtype) const;
  Tensor to(Device device) const;
  Tensor cpu() const { return to(Device::cpu()); }
  Tensor detach() const;  // shares storage, no graph

  // ---- autograd ----
  bool requires_grad() const;
  // Only leaves can change the flag; returns *this for chaining.
  const Tensor& set_requires_grad(bool value) const;
  bool is_leaf() const;
  const std::shared_ptr<autograd::Node>& grad_fn() const;
  Tensor grad() const;  // undefined when no gradient is held
  void set_grad(const Tensor& g) const;
  void zero_grad() const;  // set_to_none semantics
  // Backpropagate from this tensor. A non-scalar needs an explicit gradient.
  // create_graph (double backward) is not supported: true is an error.
  void backward(const Tensor& gradient = Tensor(), bool retain_graph = false,
                bool create_graph = false) const;
  // Calls hook(grad) each time the gradient w.r.t. this tensor is computed, in
  // registration order; a defined return value replaces the gradient (for a
  // leaf, before it is accumulated into .grad). Needs requires_grad.
  HookHandle register_hook(autograd::GradHook hook) const;
  // Keeps .grad on a non-leaf after backward (accumulating, like a leaf's);
  // the stored gradient is the one after the hooks registered before this
  // call. Does nothing on a leaf.
  void retain_grad() const;
  bool retains_grad() const;

  // ---- op methods: the free functions of core/ops.h, as torch spells them ----
  // element-wise
#define GRAFT_UNARY_METHOD_DECL(Op, name, result, saves) Tensor name() const;
  GRAFT_UNARY_OPS(GRAFT_UNARY_METHOD_DECL)  // x.neg(), x.relu(), ... (core/op_tables.h)
#undef GRAFT_UNARY_METHOD_DECL
  Tensor add(const Tensor& other, double alpha = 1) const;
  Tensor sub(const Tensor& other, double alpha = 1) const;
  Tensor mul(const Tensor& other) const;
  Tensor div(const Tensor& other) const;
  Tensor pow(const Tensor& exponent) const;
  Tensor add(double other) const;
  Tensor sub(double other) const;
  Tensor mul(double other) const;
  Tensor div(double other) const;
  Tensor pow(double exponent) const;
  Tensor maximum(const Tensor& other) const;
  Tensor minimum(const Tensor& other) const;
  Tensor clamp(std::optional<double> min, std::optional<double> max = std::nullopt) const;
#define GRAFT_COMPARE_METHOD_DECL(Op, name, result, saves) \
  Tensor name(const Tensor& other) const;                  \
  Tensor name(double other) const;
  GRAFT_COMPARE_OPS(GRAFT_COMPARE_METHOD_DECL)  // x.eq(y), x.lt(0.5), ...
#undef GRAFT_COMPARE_METHOD_DECL
  // in place: change this tensor's data (every handle sees it) and return it
  const Tensor& add_(const Tensor& other, double alpha = 1) const;
  const Tensor& sub_(const Tensor& other, double alpha = 1) const;
  const Tensor& mul_(const Tensor& other) const;
  const Tensor& div_(const Tensor& other) const;
  const Tensor& add_(double other) const;
  const Tensor& mul_(double other) const;
  const Tensor& clamp_(std::optional<double> min, std::optional<double> max) const;
  const Tensor& relu_() const;
  const Tensor& fill_(double value) const;
  const Tensor& zero_() const;
  const Tensor& copy_(const Tensor& src) const;
  // reductions: no dims = all dims; x.mean(1) reduces one dim, x.mean({1, 2}) several
  Tensor sum(std::vector<int64_t> dims = {}, bool keepdim = false) const;
  Tensor sum(int64_t dim, bool keepdim = false) const;
  Tensor mean(std::vector<int64_t> dims = {}, bool keepdim = false) const;
  Tensor mean(int64_t dim, bool keepdim = false) const;
  Tensor prod(std::vector<int64_t> dims = {}, bool keepdim = false) const;
  Tensor amax(std::vector<int64_t> dims = {}, bool keepdim = false) const;
  Tensor amin(std::vector<int64_t> dims = {}, bool keepdim = false) const;
  Tensor var(std::vector<int64_t> dims = {}, double correction = 1, bool keepdim = false) const;
  Tensor std(std::vector<int64_t> dims = {}, double correction = 1, bool keepdim = false) const;
  Tensor max() const;  // over all elements; graft::max(x, dim) gives values and indices
  Tensor min() const;
  Tensor argmax(std::optional<int64_t> dim = std::nullopt, bool keepdim = false) const;
  Tensor argmin(std::optional<int64_t> dim = std::nullopt, bool keepdim = false) const;
  // linear algebra, indexing, nn
  Tensor matmul(const Tensor& other) const;
  Tensor mm(const Tensor& other) const;
  Tensor bmm(const Tensor& other) const;
  Tensor index_select(int64_t dim, const Tensor& index) const;
  Tensor gather(int64_t dim, const Tensor& index) const;
  Tensor softmax(int64_t dim) const;
  Tensor log_softmax(int64_t dim) const;

  std::string str() const;       // torch-like printed form
  std::string meta_str() const;  // "float32[2, 3] cpu"

 private:
  std::shared_ptr<TensorImpl> impl_;
};

std::ostream& operator<<(std::ostream& os, const Tensor& t);

// Helpers for shapes.
int64_t shape_numel(const Shape& shape);
// Bytes of a contiguous tensor of `shape` and `dtype`; past 4 TiB throws
// "<what>: shape [...] is too large" (a size that large is a bug, not a request).
size_t shape_nbytes(const Shape& shape, DType dtype, const char* what);
Shape contiguous_strides(const Shape& shape);
// Wraps a possibly negative dim into [0, ndim); throws with `what` in the message.
int64_t wrap_dim(int64_t dim, int64_t ndim, const char* what = "dim");

// Makes a new tensor over `storage` (no copy, no autograd).
Tensor make_tensor(Storage storage, Shape sizes, Shape strides, int64_t offset, DType dtype);

}  // namespace graft
