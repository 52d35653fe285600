#include "dist/sync_bn.h"

#include "core/autograd.h"
#include "core/derivatives.h"
#include "core/ops.h"
#include "nn/layers.h"

namespace graft::dist {

namespace {

Tensor host_sum(ProcessGroup& pg, const Tensor& x) {
  Tensor h = x.to(Device::cpu()).contiguous().clone();
  pg.all_reduce(h, ReduceOp::Sum);
  return h.to(x.device());
}

}  // namespace

Tensor all_reduce_sum(ProcessGroup& pg, const Tensor& x) {
  Tensor out;
  {
    NoGradGuard ng;
    out = host_sum(pg, x.detach());
  }
  if (autograd::any_requires_grad({&x})) {
    ProcessGroup* g = &pg;
    derivatives::record("AllReduceSumBackward", out, {x}, {},
                        [g](autograd::FunctionNode&, const Tensor& grad) {
                          NoGradGuard ng;
                          return std::vector<Tensor>{host_sum(*g, grad)};
                        });
  }
  return out;
}

namespace {

Tensor sync_forward(ProcessGroup& pg, nn::BatchNorm2d& bn, const Tensor& x, double factor) {
  const int64_t c = x.size(1);
  const std::vector<int64_t> dims = {0, 2, 3};
  const Shape bshape = {1, c, 1, 1};
  // [sum over the batch per channel..., this rank's count per channel]
  const double local_count = static_cast<double>(x.numel() / c);
  Tensor count = full({1}, local_count, TensorOptions{x.dtype(), x.device()});
  Tensor stats = all_reduce_sum(pg, cat({sum(x, dims), count}));
  Tensor n = stats.narrow(0, c, 1);
  Tensor mean = div(stats.narrow(0, 0, c), n).view(bshape);
  // Two passes (mean, then the centred squares), as stable as torch's
  // per-rank Welford merge in float32.
  Tensor xc = sub(x, mean);
  Tensor var = div(all_reduce_sum(pg, sum(mul(xc, xc), dims)), n).view(bshape);
  Tensor y = mul(xc, rsqrt(add(var, bn.eps)));
  if (bn.affine) y = add(mul(y, bn.weight.view(bshape)), bn.bias.view(bshape));
  if (bn.track_running_stats) {
    NoGradGuard ng;
    const double total = n.item();
    const Tensor m = mean.view({c}).to(bn.running_mean.dtype());
    const Tensor v =
        mul(var.view({c}), total / std::max(total - 1, 1.0)).to(bn.running_var.dtype());
    bn.running_mean.mul_(1 - factor).add_(mul(m, factor));
    bn.running_var.mul_(1 - factor).add_(mul(v, factor));
  }
  return y;
}

}  // namespace

int64_t enable_sync_batch_norm(ProcessGroup& pg, nn::Module& model) {
  int64_t n = 0;
  ProcessGroup* g = &pg;
  for (const auto& [name, m] : model.named_modules())
    if (auto* bn = dynamic_cast<nn::BatchNorm2d*>(m.get())) {
      bn->training_forward = [g](nn::BatchNorm2d& b, const Tensor& x, double factor) {
        return sync_forward(*g, b, x, factor);
      };
      ++n;
    }
  return n;
}

}  // namespace graft::dist
