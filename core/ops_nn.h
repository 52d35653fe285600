// Neural-network ops (torch.nn.functional). Declared once here; front ends in
// core/ops_nn.cpp, kernels in kernels/cpu/ and kernels/cuda/, backward
// formulas in core/derivatives.cpp. All take NCHW tensors.
#pragma once

#include <cstdint>
#include <optional>

#include "core/conv_params.h"
#include "core/ops.h"

namespace graft::F {

// input [N,C,H,W], weight [O,C/groups,kh,kw], bias [O] or undefined.
Tensor conv2d(const Tensor& input, const Tensor& weight, const Tensor& bias, const Conv2dParams& p);

// Batch norm over dim 1. In training mode the batch statistics normalise the
// input and running_mean/var (when defined) are updated in place as PyTorch
// does: running = (1-momentum)*running + momentum*batch, with the unbiased
// batch variance. weight/bias may be undefined (affine=false).
Tensor batch_norm(const Tensor& input, const Tensor& weight, const Tensor& bias,
                  const Tensor& running_mean, const Tensor& running_var, bool training,
                  double momentum, double eps);

// Eval-mode conv2d -> batch_norm (-> relu) with the batch norm folded into
// the conv weights and bias (w*gamma/sqrt(var+eps), per output channel), so
// inference runs one conv pass. conv_bias and bn_weight/bn_bias may be
// undefined. Falls back to the unfused ops when a gradient is needed.
Tensor conv2d_bn_eval(const Tensor& input, const Tensor& weight, const Tensor& conv_bias,
                      const Conv2dParams& p, const Tensor& bn_weight, const Tensor& bn_bias,
                      const Tensor& running_mean, const Tensor& running_var, double eps, bool relu);

// stride 0 means stride = kernel (torch's default).
Tensor max_pool2d(const Tensor& input, int64_t kernel, int64_t stride, int64_t padding,
                  int64_t dilation = 1, bool ceil_mode = false);
Tensor adaptive_avg_pool2d(const Tensor& input, int64_t out_h, int64_t out_w);
// x @ weight^T + bias; weight [out,in], bias [out] or undefined.
Tensor linear(const Tensor& input, const Tensor& weight, const Tensor& bias);
Tensor dropout(const Tensor& input, double p, bool training, Generator* gen = nullptr);
Tensor softmax(const Tensor& input, int64_t dim);
Tensor log_softmax(const Tensor& input, int64_t dim);

enum class Reduction { None, Mean, Sum };
// input [N,C] logits, target [N] int64 class indices.
Tensor nll_loss(const Tensor& log_probs, const Tensor& target,
                Reduction reduction = Reduction::Mean, int64_t ignore_index = -100);
Tensor cross_entropy(const Tensor& logits, const Tensor& target,
                     Reduction reduction = Reduction::Mean, int64_t ignore_index = -100,
                     double label_smoothing = 0.0);

}  // namespace graft::F
