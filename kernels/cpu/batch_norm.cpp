// CPU batch norm over dim 1 of a contiguous [N,C,*] tensor, viewed as
// [N,C,S]. Channels run in parallel; each channel's statistics are
// accumulated in double (two passes: mean, then centred sum of squares) so
// float32 results match PyTorch to rounding. The sums run in kLanes
// interleaved partial sums (lane_sums): one running double sum is a chain of
// dependent adds the compiler may not reorder, which made the statistics
// passes over a 224² activation slower than the convolution before it; lanes
// vectorize, and their fixed order gives the same bits on every machine.
#include <cmath>
#include <vector>

#include "core/kernels.h"
#include "core/parallel.h"

namespace graft::cpu {

namespace {

struct BnShape {
  int64_t N, C, S;
  explicit BnShape(const Tensor& t)
      : N(t.size(0)), C(t.size(1)), S(t.numel() / std::max<int64_t>(t.size(0) * t.size(1), 1)) {}
};

template <typename T, typename Fn>
void for_channel(const BnShape& s, Fn&& fn) {
  parallel_for(0, s.C, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) fn(c);
  });
}

constexpr int kLanes = 8;

// Adds f(i) for i in [0, n) into `sums` (Sums: arrays of kLanes doubles,
// one per quantity): term i goes to lane i % kLanes.
template <typename F, typename... Sums>
void lane_sums(int64_t n, F&& f, Sums&... sums) {
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) f(i + j, j, sums...);
  for (int j = 0; i < n; ++i, ++j) f(i, j, sums...);
}

// The lanes added in a fixed tree order.
double total(const double (&lanes)[kLanes]) {
  return ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) +
         ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
}

// out = (x - mean) * invstd * w + b, as scale/shift per channel.
template <typename T>
void normalize(const T* x, T* y, const BnShape& s, int64_t c, double scale, double shift) {
  const T a = static_cast<T>(scale), b = static_cast<T>(shift);
  for (int64_t n = 0; n < s.N; ++n) {
    const T* xs = x + (n * s.C + c) * s.S;
    T* ys = y + (n * s.C + c) * s.S;
    for (int64_t i = 0; i < s.S; ++i) ys[i] = xs[i] * a + b;
  }
}

template <typename T>
void forward_train(const Tensor& input, const Tensor& weight, const Tensor& bias,
                   const Tensor& running_mean, const Tensor& running_var, double momentum,
                   double eps, const Tensor& out, const Tensor& save_mean,
                   const Tensor& save_invstd) {
  const BnShape s(input);
  const T* x = input.data_ptr<T>();
  T* y = out.data_ptr<T>();
  const T* w = weight.defined() ? weight.data_ptr<T>() : nullptr;
  const T* b = bias.defined() ? bias.data_ptr<T>() : nullptr;
  T* rm = running_mean.defined() ? running_mean.data_ptr<T>() : nullptr;
  T* rv = running_var.defined() ? running_var.data_ptr<T>() : nullptr;
  T* sm = save_mean.data_ptr<T>();
  T* si = save_invstd.data_ptr<T>();
  const double count = static_cast<double>(s.N * s.S);
  for_channel<T>(s, [&](int64_t c) {
    double sums[kLanes] = {};
    for (int64_t n = 0; n < s.N; ++n) {
      const T* xs = x + (n * s.C + c) * s.S;
      lane_sums(
          s.S, [&](int64_t i, int j, double(&a)[kLanes]) { a[j] += static_cast<double>(xs[i]); },
          sums);
    }
    const double mean = total(sums) / count;
    double sqs[kLanes] = {};
    for (int64_t n = 0; n < s.N; ++n) {
      const T* xs = x + (n * s.C + c) * s.S;
      lane_sums(
          s.S,
          [&](int64_t i, int j, double(&a)[kLanes]) {
            const double d = static_cast<double>(xs[i]) - mean;
            a[j] += d * d;
          },
          sqs);
    }
    const double sq = total(sqs);
    const double invstd = 1.0 / std::sqrt(sq / count + eps);
    sm[c] = static_cast<T>(mean);
    si[c] = static_cast<T>(invstd);
    if (rm) rm[c] = static_cast<T>((1 - momentum) * rm[c] + momentum * mean);
    if (rv) rv[c] = static_cast<T>((1 - momentum) * rv[c] + momentum * sq / (count - 1));
    const double wc = w ? static_cast<double>(w[c]) : 1.0;
    const double bc = b ? static_cast<double>(b[c]) : 0.0;
    normalize(x, y, s, c, invstd * wc, bc - mean * invstd * wc);
  });
}

template <typename T>
void forward_eval(const Tensor& input, const Tensor& weight, const Tensor& bias,
                  const Tensor& running_mean, const Tensor& running_var, double eps,
                  const Tensor& out) {
  const BnShape s(input);
  const T* x = input.data_ptr<T>();
  T* y = out.data_ptr<T>();
  const T* w = weight.defined() ? weight.data_ptr<T>() : nullptr;
  const T* b = bias.defined() ? bias.data_ptr<T>() : nullptr;
  const T* rm = running_mean.data_ptr<T>();
  const T* rv = running_var.data_ptr<T>();
  for_channel<T>(s, [&](int64_t c) {
    const double invstd = 1.0 / std::sqrt(static_cast<double>(rv[c]) + eps);
    const double wc = w ? static_cast<double>(w[c]) : 1.0;
    const double bc = b ? static_cast<double>(b[c]) : 0.0;
    normalize(x, y, s, c, invstd * wc, bc - static_cast<double>(rm[c]) * invstd * wc);
  });
}

template <typename T>
void backward(const Tensor& grad_out, const Tensor& input, const Tensor& weight,
              const Tensor& mean_t, const Tensor& invstd_t, bool training, const Tensor& grad_input,
              const Tensor& grad_weight, const Tensor& grad_bias) {
  const BnShape s(input);
  const T* g = grad_out.data_ptr<T>();
  const T* x = input.data_ptr<T>();
  const T* w = weight.defined() ? weight.data_ptr<T>() : nullptr;
  const T* mean = mean_t.data_ptr<T>();
  const T* invstd = invstd_t.data_ptr<T>();
  T* gi = grad_input.defined() ? grad_input.data_ptr<T>() : nullptr;
  T* gw = grad_weight.defined() ? grad_weight.data_ptr<T>() : nullptr;
  T* gb = grad_bias.defined() ? grad_bias.data_ptr<T>() : nullptr;
  const double count = static_cast<double>(s.N * s.S);
  for_channel<T>(s, [&](int64_t c) {
    const double mu = static_cast<double>(mean[c]), is = static_cast<double>(invstd[c]);
    // sum(g) and sum(g * (x - mean)); xhat = (x - mean) * invstd.
    double gs_lanes[kLanes] = {}, gx_lanes[kLanes] = {};
    for (int64_t n = 0; n < s.N; ++n) {
      const T* gs = g + (n * s.C + c) * s.S;
      const T* xs = x + (n * s.C + c) * s.S;
      lane_sums(
          s.S,
          [&](int64_t i, int j, double(&sg)[kLanes], double(&sgx)[kLanes]) {
            const double gv = static_cast<double>(gs[i]);
            sg[j] += gv;
            sgx[j] += gv * (static_cast<double>(xs[i]) - mu);
          },
          gs_lanes, gx_lanes);
    }
    const double sum_g = total(gs_lanes), sum_gx = total(gx_lanes);
    if (gw) gw[c] = static_cast<T>(sum_gx * is);
    if (gb) gb[c] = static_cast<T>(sum_g);
    if (!gi) return;
    const double wc = w ? static_cast<double>(w[c]) : 1.0;
    for (int64_t n = 0; n < s.N; ++n) {
      const T* gs = g + (n * s.C + c) * s.S;
      const T* xs = x + (n * s.C + c) * s.S;
      T* out = gi + (n * s.C + c) * s.S;
      if (training) {
        // dx = w*invstd * (g - mean(g) - xhat * mean(g*xhat))
        const T k = static_cast<T>(wc * is);
        const T mg = static_cast<T>(sum_g / count);
        const T proj = static_cast<T>(sum_gx * is * is / count);
        const T m = static_cast<T>(mu);
        for (int64_t i = 0; i < s.S; ++i) out[i] = k * (gs[i] - mg - (xs[i] - m) * proj);
      } else {
        const T k = static_cast<T>(wc * is);
        for (int64_t i = 0; i < s.S; ++i) out[i] = gs[i] * k;
      }
    }
  });
}

void forward_train_cpu(const Tensor& input, const Tensor& weight, const Tensor& bias,
                       const Tensor& running_mean, const Tensor& running_var, double momentum,
                       double eps, const Tensor& out, const Tensor& save_mean,
                       const Tensor& save_invstd) {
  GRAFT_DISPATCH_FLOAT(input.dtype(), "batch_norm", [&] {
    forward_train<scalar_t>(input, weight, bias, running_mean, running_var, momentum, eps, out,
                            save_mean, save_invstd);
  });
}

void forward_eval_cpu(const Tensor& input, const Tensor& weight, const Tensor& bias,
                      const Tensor& running_mean, const Tensor& running_var, double eps,
                      const Tensor& out) {
  GRAFT_DISPATCH_FLOAT(input.dtype(), "batch_norm", [&] {
    forward_eval<scalar_t>(input, weight, bias, running_mean, running_var, eps, out);
  });
}

void backward_cpu(const Tensor& grad_out, const Tensor& input, const Tensor& weight,
                  const Tensor& mean, const Tensor& invstd, bool training, double /*eps*/,
                  const Tensor& grad_input, const Tensor& grad_weight, const Tensor& grad_bias) {
  GRAFT_DISPATCH_FLOAT(input.dtype(), "batch_norm_backward", [&] {
    backward<scalar_t>(grad_out, input, weight, mean, invstd, training, grad_input, grad_weight,
                       grad_bias);
  });
}

}  // namespace

GRAFT_REGISTER_KERNEL(batch_norm_forward_train, CPU, forward_train_cpu);
GRAFT_REGISTER_KERNEL(batch_norm_forward_eval, CPU, forward_eval_cpu);
GRAFT_REGISTER_KERNEL(batch_norm_backward, CPU, backward_cpu);

}  // namespace graft::cpu
