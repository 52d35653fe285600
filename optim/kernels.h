// Fused optimizer update kernels: one pass over each parameter's memory per
// step instead of a chain of element-wise ops. The tables are defined in
// optim/kernels.cpp; backends register implementations with
// GRAFT_REGISTER_KERNEL (the CPU one lives in kernels/cpu/optim.cpp, a CUDA
// backend may register a multi-tensor kernel over the same lists).
//
// Contract for every kernel below:
//  - all tensors of one call live on one device;
//  - the lists have one entry per parameter (state lists may be empty when the
//    update does not use them, see each kernel);
//  - params[i], grads[i] and the state tensors of index i are contiguous and
//    have the same shape and floating dtype (float32 or float64);
//  - params and state tensors are updated in place; grads are read only;
//  - scalars are computed in double by the caller and cast to the tensor dtype
//    inside the kernel, as torch does with Python scalars, and every element is
//    updated with the same operation order as torch 1.13's single-tensor path.
#pragma once

#include <vector>

#include "core/dispatch.h"
#include "core/tensor.h"

namespace graft::optim {

struct SGDHyper {
  double lr = 0;
  double momentum = 0;
  double dampening = 0;
  double weight_decay = 0;
  bool nesterov = false;
  bool maximize = false;
  // First step with momentum: buffers are uninitialised and become d = g + wd*p.
  bool init_buffers = false;
};
// momentum_buffers is empty when momentum == 0.
using SGDStepFn = void (*)(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                           const std::vector<Tensor>& momentum_buffers, const SGDHyper& h);

struct AdamHyper {
  double lr = 0;
  double beta1 = 0;
  double beta2 = 0;
  double eps = 0;
  double weight_decay = 0;
  bool amsgrad = false;
  bool maximize = false;
  bool decoupled_weight_decay = false;  // AdamW
};
// steps[i] is parameter i's step count after this step's increment (>= 1);
// max_exp_avg_sqs is empty unless amsgrad.
using AdamStepFn = void (*)(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                            const std::vector<Tensor>& exp_avgs,
                            const std::vector<Tensor>& exp_avg_sqs,
                            const std::vector<Tensor>& max_exp_avg_sqs,
                            const std::vector<int64_t>& steps, const AdamHyper& h);

}  // namespace graft::optim

namespace graft {
GRAFT_DECLARE_KERNEL(sgd_step, optim::SGDStepFn)
GRAFT_DECLARE_KERNEL(adam_step, optim::AdamStepFn)
}  // namespace graft
