#include "core/gradcheck.h"

#include <cmath>
#include <sstream>

#include "core/autograd.h"
#include "core/ops.h"

namespace graft {

namespace {

double project(const GradcheckFn& fn, const std::vector<Tensor>& xs, const Tensor& v) {
  NoGradGuard g;
  Tensor y = fn(xs);
  GRAFT_CHECK(y.sizes() == v.sizes(), "gradcheck: fn changed its output shape from ",
              shape_str(v.sizes()), " to ", shape_str(y.sizes()));
  return sum(mul(y.to(DType::Float64), v)).item();
}

}  // namespace

GradcheckResult gradcheck(const GradcheckFn& fn, const std::vector<Tensor>& inputs,
                          const GradcheckOptions& options) {
  std::vector<Tensor> xs;
  std::vector<size_t> checked;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (inputs[i].defined() && is_floating(inputs[i].dtype())) {
      xs.push_back(inputs[i].detach().to(Device::cpu()).to(DType::Float64).clone());
      xs.back().set_requires_grad(true);
      checked.push_back(i);
    } else {
      xs.push_back(inputs[i]);
    }
  }
  GRAFT_CHECK(!checked.empty(), "gradcheck: no floating point input to check");

  Tensor y = fn(xs);
  GRAFT_CHECK(y.defined() && is_floating(y.dtype()),
              "gradcheck: fn must return a floating "
              "point tensor");
  GRAFT_CHECK(y.requires_grad(), "gradcheck: the output does not depend on any checked input");
  Generator gen(options.seed);
  const Tensor v = randn(y.sizes(), opts(DType::Float64), &gen);
  std::vector<Tensor> leaves;
  for (size_t i : checked) leaves.push_back(xs[i]);
  const std::vector<Tensor> analytic =
      autograd::grad({y}, leaves, {v.to(y.dtype()).to(y.device())});

  GradcheckResult r;
  for (size_t k = 0; k < checked.size(); ++k) {
    Tensor x = xs[checked[k]];
    double* p = x.data_ptr<double>();
    const std::vector<double> a = analytic[k].to_vector<double>();
    for (int64_t e = 0; e < x.numel(); ++e) {
      const double orig = p[e];
      p[e] = orig + options.eps;
      const double fp = project(fn, xs, v);
      p[e] = orig - options.eps;
      const double fm = project(fn, xs, v);
      p[e] = orig;
      const double numeric = (fp - fm) / (2 * options.eps);
      const double err = std::fabs(a[e] - numeric);
      r.max_abs_error = std::max(r.max_abs_error, err);
      r.max_rel_error = std::max(r.max_rel_error, err / std::max(std::fabs(numeric), options.atol));
      if (!(err <= options.atol + options.rtol * std::fabs(numeric)) && r.ok) {
        r.ok = false;
        std::ostringstream msg;
        msg << "input " << checked[k] << " element " << e << ": analytic " << a[e] << " vs numeric "
            << numeric;
        r.message = msg.str();
      }
    }
  }
  return r;
}

}  // namespace graft
