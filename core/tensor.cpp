// Tensor metadata, views and conversions.
#include "core/tensor.h"

#include <algorithm>
#include <numeric>

#include "core/autograd.h"
#include "core/derivatives.h"
#include "core/kernels.h"
#include "core/ops.h"

namespace graft {

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t s : shape) {
    GRAFT_CHECK(s >= 0, "negative dimension in shape ", shape_str(shape));
    GRAFT_CHECK(!__builtin_mul_overflow(n, s, &n), "shape ", shape_str(shape),
                " has more elements than int64 can count");
  }
  return n;
}

size_t shape_nbytes(const Shape& shape, DType dtype, const char* what) {
  const int64_t n = shape_numel(shape);
  constexpr int64_t kMaxBytes = int64_t{1} << 42;  // 4 TiB
  const auto item = static_cast<int64_t>(itemsize(dtype));
  GRAFT_CHECK(n <= kMaxBytes / item, what, ": shape ", shape_str(shape), " is too large");
  return static_cast<size_t>(n * item);
}

Shape contiguous_strides(const Shape& shape) {
  Shape strides(shape.size());
  int64_t s = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    strides[i] = s;
    // Dims of size 0 count as 1, as in torch; so a shape with a 0 can still overflow here.
    GRAFT_CHECK(!__builtin_mul_overflow(s, std::max<int64_t>(shape[i], 1), &s), "shape ",
                shape_str(shape), " is too large for int64 strides");
  }
  return strides;
}

int64_t wrap_dim(int64_t dim, int64_t ndim, const char* what) {
  const int64_t n = std::max<int64_t>(ndim, 1);  // a 0-d tensor accepts dim 0 and -1
  GRAFT_CHECK(dim >= -n && dim < n, what, " ", dim, " is out of range for a tensor with ", ndim,
              " dimension", ndim == 1 ? "" : "s", " (expected a value in [", -n, ", ", n - 1, "])");
  return dim < 0 ? dim + n : dim;
}

Tensor make_tensor(Storage storage, Shape sizes, Shape strides, int64_t offset, DType dtype) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::move(storage);
  impl->sizes = std::move(sizes);
  impl->strides = std::move(strides);
  impl->offset = offset;
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

namespace {

const TensorImpl& checked(const TensorImpl* impl) {
  GRAFT_CHECK(impl != nullptr, "operation on an undefined tensor");
  return *impl;
}

// A view over self's storage (the caller records the view's backward).
Tensor alias(const Tensor& self, Shape sizes, Shape strides, int64_t offset) {
  Tensor t =
      make_tensor(self.storage(), std::move(sizes), std::move(strides), offset, self.dtype());
  t.impl()->is_view = true;
  return t;
}

// Strides for viewing `self` as `shape` without copying, if possible
// (the algorithm of torch's computeStride).
bool view_strides(const Shape& old_sizes, const Shape& old_strides, const Shape& shape,
                  Shape& out) {
  out.assign(shape.size(), 0);
  if (old_sizes.empty() || shape_numel(old_sizes) == 0) {
    out = contiguous_strides(shape);
    return true;
  }
  int64_t view_d = static_cast<int64_t>(shape.size()) - 1;
  int64_t chunk_base_stride = old_strides.empty() ? 1 : old_strides.back();
  int64_t tensor_numel = 1, view_numel = 1;
  for (int64_t d = static_cast<int64_t>(old_sizes.size()) - 1; d >= 0; --d) {
    tensor_numel *= old_sizes[d];
    if (d == 0 ||
        (old_sizes[d - 1] != 1 && old_strides[d - 1] != tensor_numel * chunk_base_stride)) {
      while (view_d >= 0 && (view_numel < tensor_numel || shape[view_d] == 1)) {
        out[view_d] = view_numel * chunk_base_stride;
        view_numel *= shape[view_d];
        --view_d;
      }
      if (view_numel != tensor_numel) return false;
      if (d > 0) {
        chunk_base_stride = old_strides[d - 1];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  return view_d == -1;
}

Shape infer_shape(Shape shape, int64_t numel, const Shape& from) {
  int64_t infer = -1, known = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      GRAFT_CHECK(infer < 0, "view/reshape: only one dimension can be -1, got ", shape_str(shape));
      infer = static_cast<int64_t>(i);
    } else {
      GRAFT_CHECK(shape[i] >= 0, "view/reshape: invalid size in ", shape_str(shape));
      known *= shape[i];
    }
  }
  if (infer >= 0) {
    GRAFT_CHECK(known != 0 && numel % known == 0, "view/reshape: shape ", shape_str(shape),
                " is invalid for input of shape ", shape_str(from));
    shape[infer] = numel / known;
  }
  GRAFT_CHECK(shape_numel(shape) == numel, "view/reshape: shape ", shape_str(shape),
              " is invalid for input of shape ", shape_str(from), " (", numel, " elements)");
  return shape;
}

}  // namespace

const Shape& Tensor::sizes() const { return checked(impl_.get()).sizes; }
const Shape& Tensor::strides() const { return checked(impl_.get()).strides; }
int64_t Tensor::dim() const { return static_cast<int64_t>(sizes().size()); }
int64_t Tensor::size(int64_t d) const { return sizes()[wrap_dim(d, dim(), "size: dim")]; }
int64_t Tensor::stride(int64_t d) const { return strides()[wrap_dim(d, dim(), "stride: dim")]; }
int64_t Tensor::numel() const { return shape_numel(sizes()); }
DType Tensor::dtype() const { return checked(impl_.get()).dtype; }
Device Tensor::device() const { return checked(impl_.get()).storage->device(); }
int64_t Tensor::storage_offset() const { return checked(impl_.get()).offset; }
const Storage& Tensor::storage() const { return checked(impl_.get()).storage; }

bool Tensor::is_contiguous() const {
  const auto& sz = sizes();
  const auto& st = strides();
  if (shape_numel(sz) == 0) return true;  // no element to lay out
  int64_t expected = 1;
  for (size_t i = sz.size(); i-- > 0;) {
    if (sz[i] == 1) continue;
    if (st[i] != expected) return false;
    expected *= sz[i];
  }
  return true;
}

void* Tensor::raw_data() const {
  const TensorImpl& t = checked(impl_.get());
  if (!t.storage->data()) return nullptr;
  return static_cast<char*>(t.storage->data()) + t.offset * static_cast<int64_t>(itemsize());
}

double Tensor::item() const {
  GRAFT_CHECK(numel() == 1, "item: tensor with ", numel(), " elements (shape ", shape_str(sizes()),
              ") cannot be converted to a scalar");
  Tensor c = detach().to(Device::cpu()).to(DType::Float64).contiguous();
  return *c.data_ptr<double>();
}

template <typename T>
std::vector<T> Tensor::to_vector() const {
  Tensor c = detach().to(Device::cpu()).to(dtype_of<T>).contiguous();
  const T* p = c.data_ptr<T>();
  return std::vector<T>(p, p + c.numel());
}
template std::vector<float> Tensor::to_vector<float>() const;
template std::vector<double> Tensor::to_vector<double>() const;
template std::vector<int64_t> Tensor::to_vector<int64_t>() const;
template std::vector<int32_t> Tensor::to_vector<int32_t>() const;
template std::vector<uint8_t> Tensor::to_vector<uint8_t>() const;

// ---- views ----

Tensor Tensor::view(Shape shape) const {
  shape = infer_shape(std::move(shape), numel(), sizes());
  Shape st;
  GRAFT_CHECK(view_strides(sizes(), strides(), shape, st), "view: size ", shape_str(shape),
              " is not compatible with the input's size ", shape_str(sizes()), " and strides ",
              shape_str(strides()),
              " (at least one dimension spans across two contiguous subspaces); use reshape "
              "instead");
  Tensor out = alias(*this, std::move(shape), std::move(st), storage_offset());
  if (autograd::any_requires_grad({this})) derivatives::view(*this, out);
  return out;
}

Tensor Tensor::reshape(Shape shape) const {
  shape = infer_shape(std::move(shape), numel(), sizes());
  Shape st;
  if (view_strides(sizes(), strides(), shape, st)) return view(std::move(shape));
  return contiguous().view(std::move(shape));
}

Tensor Tensor::permute(Shape dims) const {
  const int64_t n = dim();
  GRAFT_CHECK(static_cast<int64_t>(dims.size()) == n, "permute: got ", dims.size(),
              " dims for a tensor with ", n, " dims");
  std::vector<bool> used(n, false);
  Shape sz(n), st(n);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t d = wrap_dim(dims[i], n, "permute: dim");
    GRAFT_CHECK(!used[d], "permute: dim ", d, " repeats in ", shape_str(dims));
    used[d] = true;
    dims[i] = d;
    sz[i] = sizes()[d];
    st[i] = strides()[d];
  }
  Tensor out = alias(*this, std::move(sz), std::move(st), storage_offset());
  if (autograd::any_requires_grad({this})) derivatives::permute(*this, dims, out);
  return out;
}

Tensor Tensor::transpose(int64_t d0, int64_t d1) const {
  const int64_t n = dim();
  if (n == 0) return *this;
  d0 = wrap_dim(d0, n, "transpose: dim");
  d1 = wrap_dim(d1, n, "transpose: dim");
  Shape dims(n);
  std::iota(dims.begin(), dims.end(), 0);
  std::swap(dims[d0], dims[d1]);
  return permute(dims);
}

Tensor Tensor::t() const {
  GRAFT_CHECK(dim() <= 2, "t: expects a tensor with <= 2 dims, got shape ", shape_str(sizes()));
  return dim() < 2 ? *this : transpose(0, 1);
}

Tensor Tensor::slice(int64_t d, int64_t start, int64_t end, int64_t step) const {
  GRAFT_CHECK(dim() > 0, "slice: cannot slice a 0-d tensor");
  d = wrap_dim(d, dim(), "slice: dim");
  GRAFT_CHECK(step > 0, "slice: step must be positive, got ", step);
  const int64_t n = sizes()[d];
  if (start < 0) start += n;
  if (end < 0) end += n;
  start = std::clamp<int64_t>(start, 0, n);
  end = std::clamp<int64_t>(end, start, n);
  Shape sz = sizes(), st = strides();
  sz[d] = (end - start + step - 1) / step;
  st[d] *= step;
  Tensor out = alias(*this, std::move(sz), std::move(st), storage_offset() + start * strides()[d]);
  if (autograd::any_requires_grad({this})) derivatives::slice(*this, d, start, step, out);
  return out;
}

Tensor Tensor::narrow(int64_t d, int64_t start, int64_t length) const {
  GRAFT_CHECK(dim() > 0, "narrow: cannot narrow a 0-d tensor");
  d = wrap_dim(d, dim(), "narrow: dim");
  const int64_t n = sizes()[d];
  if (start < 0) start += n;
  GRAFT_CHECK(start >= 0 && length >= 0 && start + length <= n, "narrow: start ", start,
              " + length ", length, " exceeds dimension ", d, " of size ", n, " (shape ",
              shape_str(sizes()), ")");
  return slice(d, start, start + length, 1);
}

Tensor Tensor::select(int64_t d, int64_t index) const {
  GRAFT_CHECK(dim() > 0, "select: cannot select from a 0-d tensor");
  d = wrap_dim(d, dim(), "select: dim");
  const int64_t n = sizes()[d];
  GRAFT_CHECK(index >= -n && index < n, "select: index ", index, " out of range for dimension ", d,
              " of size ", n);
  if (index < 0) index += n;
  Shape sz = sizes(), st = strides();
  const int64_t offset = storage_offset() + index * st[d];
  sz.erase(sz.begin() + d);
  st.erase(st.begin() + d);
  Tensor out = alias(*this, std::move(sz), std::move(st), offset);
  if (autograd::any_requires_grad({this})) derivatives::select(*this, d, index, out);
  return out;
}

Tensor Tensor::expand(Shape shape) const {
  const int64_t n = static_cast<int64_t>(shape.size());
  GRAFT_CHECK(n >= dim(), "expand: target shape ", shape_str(shape), " has fewer dims than ",
              shape_str(sizes()));
  Shape st(n);
  for (int64_t i = n - 1; i >= 0; --i) {
    const int64_t j = i - (n - dim());
    if (j >= 0) {
      const int64_t have = sizes()[j];
      if (shape[i] == -1) shape[i] = have;
      GRAFT_CHECK(have == shape[i] || have == 1, "expand: the expanded size ", shape[i],
                  " must match the existing size ", have, " at dim ", i, " (", shape_str(sizes()),
                  " -> ", shape_str(shape), ")");
      st[i] = have == shape[i] ? strides()[j] : 0;
    } else {
      GRAFT_CHECK(shape[i] >= 0, "expand: -1 is not allowed for a new leading dim");
      st[i] = 0;
    }
  }
  if (shape == sizes()) return *this;
  Tensor out = alias(*this, std::move(shape), std::move(st), storage_offset());
  if (autograd::any_requires_grad({this})) derivatives::expand(*this, out);
  return out;
}

Tensor Tensor::squeeze() const {
  Shape sz;
  for (int64_t s : sizes())
    if (s != 1) sz.push_back(s);
  return sz.size() == sizes().size() ? *this : view(sz);
}

Tensor Tensor::squeeze(int64_t d) const {
  if (dim() == 0) return *this;
  d = wrap_dim(d, dim(), "squeeze: dim");
  if (sizes()[d] != 1) return *this;
  Shape sz = sizes();
  sz.erase(sz.begin() + d);
  return view(sz);
}

Tensor Tensor::unsqueeze(int64_t d) const {
  d = wrap_dim(d, dim() + 1, "unsqueeze: dim");
  Shape sz = sizes();
  sz.insert(sz.begin() + d, 1);
  return view(sz);
}

Tensor Tensor::flatten(int64_t start, int64_t end) const {
  if (dim() == 0) return view({1});
  start = wrap_dim(start, dim(), "flatten: start_dim");
  end = wrap_dim(end, dim(), "flatten: end_dim");
  GRAFT_CHECK(start <= end, "flatten: start_dim ", start, " is after end_dim ", end);
  Shape sz(sizes().begin(), sizes().begin() + start);
  int64_t n = 1;
  for (int64_t i = start; i <= end; ++i) n *= sizes()[i];
  sz.push_back(n);
  sz.insert(sz.end(), sizes().begin() + end + 1, sizes().end());
  return reshape(sz);
}

Tensor Tensor::as_strided(Shape sz, Shape st, int64_t offset) const {
  GRAFT_CHECK(sz.size() == st.size(), "as_strided: sizes and strides differ in length");
  int64_t max_index = offset;
  for (size_t i = 0; i < sz.size(); ++i) {
    GRAFT_CHECK(sz[i] >= 0 && st[i] >= 0, "as_strided: negative size or stride");
    if (sz[i] == 0) max_index = -1;
    if (max_index >= 0) max_index += (sz[i] - 1) * st[i];
  }
  GRAFT_CHECK(
      max_index < 0 || static_cast<size_t>(max_index + 1) * itemsize() <= storage()->nbytes(),
      "as_strided: view ", shape_str(sz), " strides ", shape_str(st), " offset ", offset,
      " exceeds the storage of ", storage()->nbytes(), " bytes");
  return alias(*this, std::move(sz), std::move(st), offset);
}

// ---- copies and conversions ----

Tensor Tensor::contiguous() const { return is_contiguous() ? *this : clone(); }

Tensor Tensor::clone() const {
  Tensor out = empty(sizes(), opts(dtype(), device()));
  {
    NoGradGuard g;
    kernel::copy(device())(*this, out);
  }
  if (autograd::any_requires_grad({this})) derivatives::clone(*this, out);
  return out;
}

Tensor Tensor::to(DType t) const {
  if (t == dtype()) return *this;
  Tensor out = empty(sizes(), opts(t, device()));
  kernel::copy(device())(*this, out);
  if (is_floating(t) && autograd::any_requires_grad({this})) derivatives::to_dtype(*this, out);
  return out;
}

Tensor Tensor::to(Device d) const {
  if (d == device()) return *this;
  GRAFT_CHECK(device_available(d), "to(", d.str(), "): ", device_unavailable_reason(d.type));
  Tensor src = contiguous();
  Tensor out = empty(sizes(), opts(dtype(), d));
  if (nbytes() > 0) {
    if (d.is_cpu()) {
      device_backend(src.device().type)
          .copy_bytes(out.raw_data(), src.raw_data(), nbytes(), CopyKind::DeviceToHost,
                      src.device().index);
    } else if (src.device().is_cpu()) {
      device_backend(d.type).copy_bytes(out.raw_data(), src.raw_data(), nbytes(),
                                        CopyKind::HostToDevice, d.index);
    } else {
      GRAFT_CHECK(src.device().type == d.type, "to: copies between ", src.device().str(), " and ",
                  d.str(), " are not supported");
      device_backend(d.type).copy_bytes(out.raw_data(), src.raw_data(), nbytes(),
                                        CopyKind::DeviceToDevice, d.index);
    }
  }
  if (autograd::any_requires_grad({this})) derivatives::to_device(*this, out);
  return out;
}

Tensor Tensor::detach() const {
  return make_tensor(storage(), sizes(), strides(), storage_offset(), dtype());
}

// ---- autograd ----

bool Tensor::requires_grad() const { return checked(impl_.get()).requires_grad; }

const Tensor& Tensor::set_requires_grad(bool value) const {
  TensorImpl& t = const_cast<TensorImpl&>(checked(impl_.get()));
  GRAFT_CHECK(!t.grad_fn,
              "set_requires_grad: only leaf tensors can change requires_grad; "
              "use detach() on a non-leaf");
  GRAFT_CHECK(!value || is_floating(t.dtype),
              "set_requires_grad: only floating point tensors "
              "can require gradients, this one is ",
              dtype_name(t.dtype));
  t.requires_grad = value;
  return *this;
}

bool Tensor::is_leaf() const { return !checked(impl_.get()).grad_fn; }

const std::shared_ptr<autograd::Node>& Tensor::grad_fn() const {
  return checked(impl_.get()).grad_fn;
}

Tensor Tensor::grad() const {
  const TensorImpl& t = checked(impl_.get());
  return t.grad ? Tensor(t.grad) : Tensor();
}

void Tensor::set_grad(const Tensor& g) const {
  TensorImpl& t = const_cast<TensorImpl&>(checked(impl_.get()));
  if (g.defined()) {
    GRAFT_CHECK(g.sizes() == t.sizes, "set_grad: gradient shape ", shape_str(g.sizes()),
                " does not match tensor shape ", shape_str(t.sizes));
  }
  t.grad = g.defined() ? g.impl_ptr() : nullptr;
}

void Tensor::zero_grad() const { const_cast<TensorImpl&>(checked(impl_.get())).grad = nullptr; }

void Tensor::backward(const Tensor& gradient, bool retain_graph, bool create_graph) const {
  autograd::check_no_create_graph(create_graph, "backward");
  autograd::run_backward({*this}, {gradient}, retain_graph);
}

std::string Tensor::meta_str() const {
  if (!defined()) return "undefined";
  std::string s = std::string(dtype_name(dtype())) + shape_str(sizes());
  if (!device().is_cpu()) s.append(" ").append(device().str());
  return s;
}

}  // namespace graft
