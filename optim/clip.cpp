#include "optim/clip.h"

#include <cmath>

#include "core/autograd.h"
#include "core/ops.h"

namespace graft::optim {

double clip_grad_norm_(const std::vector<Tensor>& params, double max_norm, double norm_type,
                       bool error_if_nonfinite) {
  GRAFT_CHECK(norm_type > 0, "clip_grad_norm_: norm_type must be positive, got ", norm_type);
  GRAFT_CHECK(!std::isnan(max_norm), "clip_grad_norm_: max_norm is NaN");
  NoGradGuard no_grad;
  std::vector<Tensor> grads;
  for (const Tensor& p : params)
    if (p.grad().defined()) grads.push_back(p.grad());
  if (grads.empty()) return 0.0;

  // torch.norm(x, norm_type) of a whole tensor.
  const bool inf = std::isinf(norm_type);
  auto norm_of = [&](const Tensor& x) -> Tensor {
    Tensor a = abs(x);
    if (inf) return amax(a);
    if (norm_type == 1) return sum(a);
    if (norm_type == 2) return sqrt(sum(square(a)));
    return pow(sum(pow(a, norm_type)), 1.0 / norm_type);
  };
  // As torch: total = norm(stack(per-tensor norms)), on the gradients' device
  // in the first gradient's dtype.
  Tensor norms =
      empty({static_cast<int64_t>(grads.size())}, opts(grads[0].dtype(), grads[0].device()));
  for (size_t i = 0; i < grads.size(); ++i) {
    Tensor slot = norms.select(0, static_cast<int64_t>(i));
    copy_(slot, norm_of(grads[i]));
  }
  Tensor total = norm_of(norms);
  const double total_norm = total.item();
  GRAFT_CHECK(!error_if_nonfinite || std::isfinite(total_norm),
              "clip_grad_norm_: the total norm of order ", norm_type, " of the gradients is ",
              total_norm, "; gradients were not clipped");
  // clip_coef in the gradients' dtype, as torch computes it on the norm tensor.
  Tensor coef = clamp(rdiv(add(total, 1e-6), max_norm), std::nullopt, 1.0);
  const double c = coef.item();
  for (Tensor& g : grads) mul_(g, c);
  return total_norm;
}

double clip_grad_norm_(const NamedParams& params, double max_norm, double norm_type,
                       bool error_if_nonfinite) {
  std::vector<Tensor> tensors;
  for (const auto& [name, p] : params) tensors.push_back(p);
  return clip_grad_norm_(tensors, max_norm, norm_type, error_if_nonfinite);
}

void clip_grad_value_(const std::vector<Tensor>& params, double clip_value) {
  GRAFT_CHECK(clip_value >= 0, "clip_grad_value_: clip_value must be >= 0, got ", clip_value);
  NoGradGuard no_grad;
  for (const Tensor& p : params) {
    Tensor g = p.grad();
    if (g.defined()) clamp_(g, -clip_value, clip_value);
  }
}

}  // namespace graft::optim
