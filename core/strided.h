// Device-neutral shape arithmetic shared by the backends: dimension
// coalescing for the element-wise loops (kernels/cpu/loops.h,
// kernels/cuda/loops.cuh: the host half of their offset math) and a tensor
// split around one dim.
#pragma once

#include <array>
#include <cstddef>

#include "core/tensor.h"

namespace graft {

// `shape` walked over N operands: the sizes and each operand's strides (in
// elements), outermost dim first, with size-1 dims dropped and neighbouring
// dims merged wherever every operand is contiguous across the boundary
// (stride[d-1] == stride[d] * size[d]). Element (i0, i1, ...) of the merged
// dims is at sum_d i_d * strides[k][d] in operand k, as in the original shape.
template <size_t N>
struct CoalescedDims {
  Shape sizes;
  std::array<Shape, N> strides;
};

template <size_t N>
CoalescedDims<N> coalesce_dims(const Shape& shape, const std::array<const Tensor*, N>& ts) {
  CoalescedDims<N> c;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    bool merge = !c.sizes.empty();
    for (size_t k = 0; k < N && merge; ++k)
      merge = c.strides[k].back() == ts[k]->strides()[d] * shape[d];
    if (merge) {
      c.sizes.back() *= shape[d];
      for (size_t k = 0; k < N; ++k) c.strides[k].back() = ts[k]->strides()[d];
    } else {
      c.sizes.push_back(shape[d]);
      for (size_t k = 0; k < N; ++k) c.strides[k].push_back(ts[k]->strides()[d]);
    }
  }
  return c;
}

// A contiguous tensor of `shape` seen as [outer, len, inner] around `dim`
// (softmax lines, index_select blocks).
struct DimSplit {
  int64_t outer = 1, len = 1, inner = 1;
  DimSplit(const Shape& shape, int64_t dim) {
    for (int64_t d = 0; d < static_cast<int64_t>(shape.size()); ++d) {
      if (d < dim)
        outer *= shape[d];
      else if (d == dim)
        len = shape[d];
      else
        inner *= shape[d];
    }
  }
};

}  // namespace graft
