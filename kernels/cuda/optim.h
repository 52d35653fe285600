// Fused multi-tensor optimizer steps on CUDA: every parameter of a list is
// updated by ONE kernel launch (up to kMaxTensorsPerLaunch tensors per launch;
// longer lists take several launches). The element-wise formulas and their
// operation order are those of the CPU kernels (kernels/cpu/optim.cpp, torch
// 1.13's single-tensor path). No CUDA types here.
//
// When optim/kernels.h (the optimizer kernel tables) is part of the build,
// kernels/cuda/optim.cu also registers these as the CUDA entries of the
// sgd_step / adam_step tables, so optimizers use them without further wiring.
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace graft::cuda {

struct SgdStepParams {
  double lr = 0, momentum = 0, dampening = 0, weight_decay = 0;
  bool nesterov = false, maximize = false;
  bool init_buffers = false;  // first momentum step: buf = d
};
struct AdamStepParams {
  double lr = 0, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0;
  bool amsgrad = false, maximize = false;
  bool decoupled_weight_decay = false;  // AdamW
};

// All tensors on one CUDA device, contiguous, one floating dtype (float32 or
// float64) per list; momentum_buffers empty when momentum == 0.
void sgd_step(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
              const std::vector<Tensor>& momentum_buffers, const SgdStepParams& h);
// steps[i]: parameter i's step count after this step's increment (>= 1);
// max_exp_avg_sqs empty unless amsgrad.
void adam_step(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
               const std::vector<Tensor>& exp_avgs, const std::vector<Tensor>& exp_avg_sqs,
               const std::vector<Tensor>& max_exp_avg_sqs, const std::vector<int64_t>& steps,
               const AdamStepParams& h);

}  // namespace graft::cuda
