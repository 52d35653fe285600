// Fused CPU optimizer updates (contract in optim/kernels.h). Each parameter is
// updated in one parallel pass over its elements; the per-element arithmetic
// mirrors torch 1.13's single-tensor SGD/Adam/AdamW op by op (same operation
// order, scalars cast to the element type first), so float64 results agree
// with torch to rounding and float32 results to a few ulps.
#include <cmath>

#include "core/parallel.h"
#include "optim/kernels.h"

namespace graft::optim {
namespace {

// Elements per parallel chunk: large enough to amortise thread start-up for
// these memory-bound loops.
constexpr int64_t kGrain = 1 << 15;

template <typename T>
T* ptr(const Tensor& t) {
  return static_cast<T*>(t.raw_data());
}

template <typename T>
void sgd_one(const Tensor& param, const Tensor& grad, const Tensor* buffer, const SGDHyper& h) {
  T* p = ptr<T>(param);
  const T* g = ptr<T>(grad);
  T* buf = buffer ? ptr<T>(*buffer) : nullptr;
  const T wd = static_cast<T>(h.weight_decay);
  const T mom = static_cast<T>(h.momentum);
  const T one_minus_damp = static_cast<T>(1.0 - h.dampening);
  const T neg_lr = static_cast<T>(-h.lr);
  const bool use_wd = h.weight_decay != 0;
  parallel_for(0, param.numel(), kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      T d = h.maximize ? -g[i] : g[i];
      if (use_wd) d = d + wd * p[i];  // d_p.add(param, alpha=wd)
      if (buf) {
        if (h.init_buffers) {
          buf[i] = d;  // torch.clone(d_p)
        } else {
          buf[i] = buf[i] * mom;              // buf.mul_(momentum)
          buf[i] = buf[i] + one_minus_damp * d;  // .add_(d_p, alpha=1-dampening)
        }
        d = h.nesterov ? d + mom * buf[i] : buf[i];
      }
      p[i] = p[i] + neg_lr * d;  // param.add_(d_p, alpha=-lr)
    }
  });
}

void sgd_step_cpu(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                  const std::vector<Tensor>& bufs, const SGDHyper& h) {
  for (size_t k = 0; k < params.size(); ++k) {
    const Tensor* buf = bufs.empty() ? nullptr : &bufs[k];
    if (params[k].dtype() == DType::Float64) {
      sgd_one<double>(params[k], grads[k], buf, h);
    } else {
      sgd_one<float>(params[k], grads[k], buf, h);
    }
  }
}

template <typename T>
void adam_one(const Tensor& param, const Tensor& grad, const Tensor& exp_avg,
              const Tensor& exp_avg_sq, const Tensor* max_sq, int64_t step, const AdamHyper& h) {
  T* p = ptr<T>(param);
  const T* g = ptr<T>(grad);
  T* m = ptr<T>(exp_avg);
  T* v = ptr<T>(exp_avg_sq);
  T* vmax = max_sq ? ptr<T>(*max_sq) : nullptr;
  // Scalars exactly as torch computes them in Python doubles.
  const double bias_correction1 = 1 - std::pow(h.beta1, static_cast<double>(step));
  const double bias_correction2 = 1 - std::pow(h.beta2, static_cast<double>(step));
  const double step_size = h.lr / bias_correction1;
  const T bc2_sqrt = static_cast<T>(std::sqrt(bias_correction2));
  const T neg_step_size = static_cast<T>(-step_size);
  const T b1 = static_cast<T>(h.beta1), one_minus_b1 = static_cast<T>(1 - h.beta1);
  const T b2 = static_cast<T>(h.beta2), one_minus_b2 = static_cast<T>(1 - h.beta2);
  const T eps = static_cast<T>(h.eps);
  const T wd = static_cast<T>(h.weight_decay);
  const T decay = static_cast<T>(1 - h.lr * h.weight_decay);
  const bool l2 = !h.decoupled_weight_decay && h.weight_decay != 0;
  parallel_for(0, param.numel(), kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      T gi = h.maximize ? -g[i] : g[i];
      if (h.decoupled_weight_decay) {
        p[i] = p[i] * decay;  // param.mul_(1 - lr*wd)
      } else if (l2) {
        gi = gi + wd * p[i];  // grad.add(param, alpha=wd)
      }
      m[i] = m[i] * b1;
      m[i] = m[i] + one_minus_b1 * gi;  // exp_avg.mul_(b1).add_(g, alpha=1-b1)
      v[i] = v[i] * b2;
      v[i] = v[i] + one_minus_b2 * gi * gi;  // exp_avg_sq.mul_(b2).addcmul_(g, g, value=1-b2)
      T second = v[i];
      if (vmax) {
        // torch.maximum(max_sq, exp_avg_sq, out=max_sq), which propagates NaN
        if (std::isnan(v[i]) || v[i] > vmax[i]) vmax[i] = v[i];
        second = vmax[i];
      }
      const T denom = std::sqrt(second) / bc2_sqrt + eps;
      p[i] = p[i] + neg_step_size * m[i] / denom;  // param.addcdiv_(m, denom, value=-step_size)
    }
  });
}

void adam_step_cpu(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                   const std::vector<Tensor>& exp_avgs, const std::vector<Tensor>& exp_avg_sqs,
                   const std::vector<Tensor>& max_exp_avg_sqs, const std::vector<int64_t>& steps,
                   const AdamHyper& h) {
  for (size_t k = 0; k < params.size(); ++k) {
    const Tensor* max_sq = max_exp_avg_sqs.empty() ? nullptr : &max_exp_avg_sqs[k];
    if (params[k].dtype() == DType::Float64) {
      adam_one<double>(params[k], grads[k], exp_avgs[k], exp_avg_sqs[k], max_sq, steps[k], h);
    } else {
      adam_one<float>(params[k], grads[k], exp_avgs[k], exp_avg_sqs[k], max_sq, steps[k], h);
    }
  }
}

}  // namespace
}  // namespace graft::optim

namespace graft {
GRAFT_REGISTER_KERNEL(sgd_step, CPU, optim::sgd_step_cpu);
GRAFT_REGISTER_KERNEL(adam_step, CPU, optim::adam_step_cpu);
}  // namespace graft
