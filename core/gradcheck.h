// Finite-difference check of autograd gradients (used by the tests).
//
// gradcheck runs `fn` on float64 copies of the floating-point inputs and
// compares, for a fixed random projection v of the output, the autograd
// vector-Jacobian product (autograd::grad with grad_output v) against central
// differences of <v, fn(x)> for every input element.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace graft {

struct GradcheckOptions {
  double eps = 1e-6;   // finite-difference step
  double atol = 1e-5;  // |analytic - numeric| <= atol + rtol * |numeric|
  double rtol = 1e-3;
  uint64_t seed = 0;  // for the projection vector
};

struct GradcheckResult {
  bool ok = true;
  double max_abs_error = 0;  // over all checked elements
  double max_rel_error = 0;  // |a - n| / max(|n|, atol)
  std::string message;       // first failing element, or empty
};

using GradcheckFn = std::function<Tensor(const std::vector<Tensor>&)>;

// Inputs that are floating point are checked (they are copied to float64
// leaves requiring grad); the others are passed through unchanged.
GradcheckResult gradcheck(const GradcheckFn& fn, const std::vector<Tensor>& inputs,
                          const GradcheckOptions& options = {});

}  // namespace graft
