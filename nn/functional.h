// graft::nn::functional: every functional op a model needs, in one namespace
// (torch::nn::functional). The ops are declared once in core/ops.h and
// core/ops_nn.h; this header only gathers them, so
//
//   namespace F = graft::nn::functional;
//   auto loss = F::cross_entropy(F::relu(F::linear(x, w, b)), labels);
#pragma once

#include "core/ops.h"
#include "core/ops_nn.h"

namespace graft::nn::functional {

// torch.nn.functional's ops (core/ops_nn.h)
using F::adaptive_avg_pool2d;
using F::batch_norm;
using F::conv2d;
using F::Conv2dParams;
using F::cross_entropy;
using F::dropout;
using F::linear;
using F::log_softmax;
using F::max_pool2d;
using F::nll_loss;
using F::Reduction;
using F::softmax;

// activations and element-wise functions that torch also exposes there (core/ops.h)
using graft::clamp;
using graft::one_hot;
using graft::relu;
using graft::relu_;
using graft::sigmoid;
using graft::tanh;

}  // namespace graft::nn::functional
