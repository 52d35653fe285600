// Allocation without autograd: TensorOptions and empty(). Kernels include this
// (through core/kernels.h) for scratch tensors; the op API (core/ops.h)
// re-exports it with the other factories.
#pragma once

#include "core/tensor.h"

namespace graft {

struct TensorOptions {
  DType dtype = DType::Float32;
  Device device = Device::cpu();
  bool requires_grad = false;
  TensorOptions& with_dtype(DType d) {
    dtype = d;
    return *this;
  }
  TensorOptions& with_device(Device d) {
    device = d;
    return *this;
  }
};
inline TensorOptions opts(DType dtype, Device device = Device::cpu()) {
  return {dtype, device, false};
}

// A contiguous tensor of `shape` with uninitialised contents (core/ops.cpp).
Tensor empty(const Shape& shape, TensorOptions o = {});

}  // namespace graft
