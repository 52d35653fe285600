// Dimension coalescing for strided loops over N operands of one shape, shared
// by the backends' element-wise loops (kernels/cpu/loops.h,
// kernels/cuda/loops.cuh): the device-neutral half of their offset math.
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

}  // namespace graft
