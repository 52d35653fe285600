// Gradient clipping (torch.nn.utils.clip_grad_norm_ / clip_grad_value_).
#pragma once

#include <limits>
#include <vector>

#include "core/tensor.h"
#include "optim/optimizer.h"

namespace graft::optim {

constexpr double kInfNorm = std::numeric_limits<double>::infinity();

// Scales the gradients of `params` in place so that their combined norm (the
// norm of the per-tensor norms) is at most max_norm: every gradient is
// multiplied by min(1, max_norm / (total_norm + 1e-6)). Parameters without a
// gradient are skipped. norm_type may be any p > 0 or kInfNorm. Returns the
// total norm before clipping (0 when no parameter has a gradient). With
// error_if_nonfinite a NaN/inf total norm is an error and nothing is scaled.
double clip_grad_norm_(const std::vector<Tensor>& params, double max_norm, double norm_type = 2,
                       bool error_if_nonfinite = false);
double clip_grad_norm_(const NamedParams& params, double max_norm, double norm_type = 2,
                       bool error_if_nonfinite = false);

// Clamps every gradient element into [-clip_value, clip_value].
void clip_grad_value_(const std::vector<Tensor>& params, double clip_value);

}  // namespace graft::optim
