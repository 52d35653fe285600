// Tensor's op methods (core/tensor.h): each delegates to the free function of
// the same name in core/ops.h or core/ops_nn.h, which holds the checks, the
// dispatch and the autograd recording.
#include "core/ops.h"
#include "core/ops_nn.h"

namespace graft {

#define GRAFT_UNARY_METHOD(Op, name, result, saves) \
  Tensor Tensor::name() const { return graft::name(*this); }
GRAFT_UNARY_OPS(GRAFT_UNARY_METHOD)
Tensor Tensor::max() const { return graft::max(*this); }
Tensor Tensor::min() const { return graft::min(*this); }
#undef GRAFT_UNARY_METHOD

// One method per operand type (Tensor, double) for each binary op.
#define GRAFT_BINARY_METHOD(name, Other) \
  Tensor Tensor::name(Other other) const { return graft::name(*this, other); }
#define GRAFT_BINARY_METHODS(name)         \
  GRAFT_BINARY_METHOD(name, const Tensor&) \
  GRAFT_BINARY_METHOD(name, double)
GRAFT_BINARY_METHODS(mul)
GRAFT_BINARY_METHODS(div)
GRAFT_BINARY_METHODS(pow)
#define GRAFT_COMPARE_METHODS(Op, name, result, saves) GRAFT_BINARY_METHODS(name)
GRAFT_COMPARE_OPS(GRAFT_COMPARE_METHODS)
#undef GRAFT_COMPARE_METHODS
GRAFT_BINARY_METHOD(add, double)
GRAFT_BINARY_METHOD(sub, double)
GRAFT_BINARY_METHOD(maximum, const Tensor&)
GRAFT_BINARY_METHOD(minimum, const Tensor&)
GRAFT_BINARY_METHOD(matmul, const Tensor&)
GRAFT_BINARY_METHOD(mm, const Tensor&)
GRAFT_BINARY_METHOD(bmm, const Tensor&)
#undef GRAFT_BINARY_METHODS
#undef GRAFT_BINARY_METHOD

Tensor Tensor::add(const Tensor& other, double alpha) const {
  return graft::add(*this, other, alpha);
}
Tensor Tensor::sub(const Tensor& other, double alpha) const {
  return graft::sub(*this, other, alpha);
}
Tensor Tensor::clamp(std::optional<double> min, std::optional<double> max) const {
  return graft::clamp(*this, min, max);
}

// In place: the free functions take a Tensor& handle; a copy of the handle
// shares this tensor's storage, so the change is visible through *this.
#define GRAFT_INPLACE_METHOD(name, params, args) \
  const Tensor& Tensor::name params const {      \
    Tensor self = *this;                         \
    graft::name args;                            \
    return *this;                                \
  }
GRAFT_INPLACE_METHOD(add_, (const Tensor& other, double alpha), (self, other, alpha))
GRAFT_INPLACE_METHOD(sub_, (const Tensor& other, double alpha), (self, other, alpha))
GRAFT_INPLACE_METHOD(mul_, (const Tensor& other), (self, other))
GRAFT_INPLACE_METHOD(div_, (const Tensor& other), (self, other))
GRAFT_INPLACE_METHOD(add_, (double other), (self, other))
GRAFT_INPLACE_METHOD(mul_, (double other), (self, other))
GRAFT_INPLACE_METHOD(clamp_, (std::optional<double> min, std::optional<double> max),
                     (self, min, max))
GRAFT_INPLACE_METHOD(relu_, (), (self))
GRAFT_INPLACE_METHOD(fill_, (double value), (self, value))
GRAFT_INPLACE_METHOD(zero_, (), (self))
GRAFT_INPLACE_METHOD(copy_, (const Tensor& src), (self, src))
#undef GRAFT_INPLACE_METHOD

#define GRAFT_REDUCE_METHOD(name)                                      \
  Tensor Tensor::name(std::vector<int64_t> dims, bool keepdim) const { \
    return graft::name(*this, std::move(dims), keepdim);               \
  }
GRAFT_REDUCE_METHOD(sum)
GRAFT_REDUCE_METHOD(mean)
GRAFT_REDUCE_METHOD(prod)
GRAFT_REDUCE_METHOD(amax)
GRAFT_REDUCE_METHOD(amin)
#undef GRAFT_REDUCE_METHOD
Tensor Tensor::sum(int64_t dim, bool keepdim) const { return graft::sum(*this, {dim}, keepdim); }
Tensor Tensor::mean(int64_t dim, bool keepdim) const { return graft::mean(*this, {dim}, keepdim); }
Tensor Tensor::var(std::vector<int64_t> dims, double correction, bool keepdim) const {
  return graft::var(*this, std::move(dims), correction, keepdim);
}
Tensor Tensor::std(std::vector<int64_t> dims, double correction, bool keepdim) const {
  return graft::std(*this, std::move(dims), correction, keepdim);
}
Tensor Tensor::argmax(std::optional<int64_t> dim, bool keepdim) const {
  return graft::argmax(*this, dim, keepdim);
}
Tensor Tensor::argmin(std::optional<int64_t> dim, bool keepdim) const {
  return graft::argmin(*this, dim, keepdim);
}

Tensor Tensor::index_select(int64_t dim, const Tensor& index) const {
  return graft::index_select(*this, dim, index);
}
Tensor Tensor::gather(int64_t dim, const Tensor& index) const {
  return graft::gather(*this, dim, index);
}
Tensor Tensor::softmax(int64_t dim) const { return F::softmax(*this, dim); }
Tensor Tensor::log_softmax(int64_t dim) const { return F::log_softmax(*this, dim); }

}  // namespace graft
