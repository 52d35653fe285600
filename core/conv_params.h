// Conv2dParams: the geometry of a 2-D convolution, shared by the op API
// (core/ops_nn.h) and the kernel contract (core/kernels.h).
#pragma once

#include <cstdint>

namespace graft::F {

struct Conv2dParams {
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;
  int64_t dilation_h = 1, dilation_w = 1;
  int64_t groups = 1;
};

}  // namespace graft::F
