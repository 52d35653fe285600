// Fused CPU optimizer updates (contract in optim/kernels.h). Each parameter is
// updated in one parallel pass over its elements; the per-element arithmetic
// mirrors torch 1.13's single-tensor SGD/Adam/AdamW op by op (same operation
// order, scalars cast to the element type first), so float64 results agree
// with torch to rounding and float32 results to a few ulps.
#include <algorithm>
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

enum class Momentum { None, Init, Update };

// Flags are template parameters, so the loop body is branch-free and vectorizes.
template <typename T, bool kWeightDecay, Momentum kMomentum, bool kNesterov, bool kMaximize>
void sgd_range(T* __restrict p, const T* __restrict g, T* __restrict buf, int64_t n, T wd, T mom,
               T one_minus_damp, T neg_lr) {
  for (int64_t i = 0; i < n; ++i) {
    T d = kMaximize ? -g[i] : g[i];
    if constexpr (kWeightDecay) d = d + wd * p[i];  // d_p.add(param, alpha=wd)
    if constexpr (kMomentum != Momentum::None) {
      T b;
      if constexpr (kMomentum == Momentum::Init) {
        b = d;  // torch.clone(d_p)
      } else {
        b = buf[i] * mom;            // buf.mul_(momentum)
        b = b + one_minus_damp * d;  // .add_(d_p, alpha=1-dampening)
      }
      buf[i] = b;
      d = kNesterov ? d + mom * b : b;
    }
    p[i] = p[i] + neg_lr * d;  // param.add_(d_p, alpha=-lr)
  }
}

template <typename T>
using SGDRange = void (*)(T*, const T*, T*, int64_t, T, T, T, T);

template <typename T, bool kWeightDecay, Momentum kMomentum>
SGDRange<T> sgd_range_for(bool nesterov, bool maximize) {
  if (nesterov)
    return maximize ? &sgd_range<T, kWeightDecay, kMomentum, true, true>
                    : &sgd_range<T, kWeightDecay, kMomentum, true, false>;
  return maximize ? &sgd_range<T, kWeightDecay, kMomentum, false, true>
                  : &sgd_range<T, kWeightDecay, kMomentum, false, false>;
}

template <typename T, bool kWeightDecay>
SGDRange<T> sgd_range_for(Momentum momentum, bool nesterov, bool maximize) {
  switch (momentum) {
    case Momentum::None:
      return sgd_range_for<T, kWeightDecay, Momentum::None>(nesterov, maximize);
    case Momentum::Init:
      return sgd_range_for<T, kWeightDecay, Momentum::Init>(nesterov, maximize);
    case Momentum::Update:
      break;
  }
  return sgd_range_for<T, kWeightDecay, Momentum::Update>(nesterov, maximize);
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
  const Momentum mode = buf == nullptr   ? Momentum::None
                        : h.init_buffers ? Momentum::Init
                                         : Momentum::Update;
  const SGDRange<T> range = h.weight_decay != 0
                                ? sgd_range_for<T, true>(mode, h.nesterov, h.maximize)
                                : sgd_range_for<T, false>(mode, h.nesterov, h.maximize);
  parallel_for(0, param.numel(), kGrain, [=](int64_t begin, int64_t end) {
    range(p + begin, g + begin, buf ? buf + begin : nullptr, end - begin, wd, mom, one_minus_damp,
          neg_lr);
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

enum class Decay { None, L2, Decoupled };

// Flags are template parameters, so the loops are branch-free. Each block runs
// the moment update, then the square roots, then the parameter update. The
// square root is std::sqrt, correctly rounded as torch's and CUDA's are; this
// file is compiled with -fno-math-errno, so it vectorizes to vsqrtps/vsqrtpd.
// (Eigen's array sqrt is not an option: under EIGEN_FAST_MATH, its default, it
// is rsqrt plus a Newton step, 1-2 ulps off, and differs by SIMD width.)
template <typename T, Decay kDecay, bool kAmsgrad, bool kMaximize>
void adam_range(T* __restrict p, const T* __restrict g, T* __restrict m, T* __restrict v,
                T* __restrict vmax, int64_t n, T b1, T one_minus_b1, T b2, T one_minus_b2,
                T bc2_sqrt, T neg_step_size, T eps, T wd, T decay) {
  constexpr int64_t kBlock = 256;
  alignas(64) T root[kBlock];
  for (int64_t i0 = 0; i0 < n; i0 += kBlock) {
    const int64_t len = std::min(kBlock, n - i0);
    for (int64_t k = 0; k < len; ++k) {
      const int64_t i = i0 + k;
      T gi = kMaximize ? -g[i] : g[i];
      if constexpr (kDecay == Decay::L2) gi = gi + wd * p[i];  // grad.add(param, alpha=wd)
      T mi = m[i] * b1;
      mi = mi + one_minus_b1 * gi;  // exp_avg.mul_(b1).add_(g, alpha=1-b1)
      T vi = v[i] * b2;
      vi = vi + one_minus_b2 * gi * gi;  // exp_avg_sq.mul_(b2).addcmul_(g, g, value=1-b2)
      m[i] = mi;
      v[i] = vi;
      if constexpr (kAmsgrad) {
        // torch.maximum(max_sq, exp_avg_sq, out=max_sq), which propagates NaN
        const T mx = vmax[i];
        vi = (vi != vi || vi > mx) ? vi : mx;
        vmax[i] = vi;
      }
      root[k] = vi;
    }
    for (int64_t k = 0; k < len; ++k) root[k] = std::sqrt(root[k]);
    for (int64_t k = 0; k < len; ++k) {
      const int64_t i = i0 + k;
      T pi = p[i];
      if constexpr (kDecay == Decay::Decoupled) pi = pi * decay;  // param.mul_(1 - lr*wd)
      const T denom = root[k] / bc2_sqrt + eps;
      p[i] = pi + neg_step_size * m[i] / denom;  // param.addcdiv_(m, denom, value=-step_size)
    }
  }
}

template <typename T, Decay kDecay, bool kAmsgrad>
auto adam_range_for(bool maximize) {
  return maximize ? &adam_range<T, kDecay, kAmsgrad, true>
                  : &adam_range<T, kDecay, kAmsgrad, false>;
}

template <typename T, Decay kDecay>
auto adam_range_for(bool amsgrad, bool maximize) {
  return amsgrad ? adam_range_for<T, kDecay, true>(maximize)
                 : adam_range_for<T, kDecay, false>(maximize);
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
  const Decay mode = h.decoupled_weight_decay ? Decay::Decoupled
                     : h.weight_decay != 0    ? Decay::L2
                                              : Decay::None;
  const auto range = mode == Decay::Decoupled
                         ? adam_range_for<T, Decay::Decoupled>(h.amsgrad, h.maximize)
                     : mode == Decay::L2 ? adam_range_for<T, Decay::L2>(h.amsgrad, h.maximize)
                                         : adam_range_for<T, Decay::None>(h.amsgrad, h.maximize);
  GRAFT_CHECK(!h.amsgrad || vmax != nullptr, "adam_step: amsgrad needs max_exp_avg_sqs");
  parallel_for(0, param.numel(), kGrain, [=](int64_t begin, int64_t end) {
    range(p + begin, g + begin, m + begin, v + begin, vmax ? vmax + begin : nullptr, end - begin,
          b1, one_minus_b1, b2, one_minus_b2, bc2_sqrt, neg_step_size, eps, wd, decay);
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
