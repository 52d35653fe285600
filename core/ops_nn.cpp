// Front ends of the nn ops (core/ops_nn.h): validation with torch-like error
// messages, output allocation, kernel dispatch and graph recording. Kernels
// receive contiguous tensors; the non-contiguous originals are what the graph
// records, so their gradients come back in their own shapes.
#include "core/ops_nn.h"

#include <cmath>

#include "core/autograd.h"
#include "core/derivatives.h"
#include "core/kernels.h"

namespace graft::F {

namespace {

void check_float(const Tensor& t, const char* op, const char* what) {
  GRAFT_CHECK(t.dtype() == DType::Float32 || t.dtype() == DType::Float64, op, ": ", what,
              " must be float32 or float64, got ", dtype_name(t.dtype()));
}

// An optional per-channel parameter: undefined, or [C] with input's dtype/device.
void check_param(const Tensor& t, const Tensor& input, int64_t C, const char* op,
                 const char* what) {
  if (!t.defined()) return;
  GRAFT_CHECK(t.dim() == 1 && t.size(0) == C, op, ": ", what, " must have shape [", C, "], got ",
              shape_str(t.sizes()));
  GRAFT_CHECK(t.dtype() == input.dtype(), op, ": ", what, " has dtype ", dtype_name(t.dtype()),
              " but input has ", dtype_name(input.dtype()));
  GRAFT_CHECK(t.device() == input.device(), op, ": ", what, " is on ", t.device().str(),
              " but input is on ", input.device().str());
}

// Contiguous copy made outside the graph (the caller records the original).
Tensor contig(const Tensor& t) {
  if (!t.defined()) return t;
  NoGradGuard g;
  return t.contiguous();
}

// Pooling/conv output size, torch's pooling_output_shape (floor or ceil mode).
int64_t pooled_size(int64_t in, int64_t k, int64_t pad, int64_t stride, int64_t dilation,
                    bool ceil_mode) {
  const int64_t span = in + 2 * pad - dilation * (k - 1) - 1;
  if (span < 0) return 0;
  int64_t out = (span + (ceil_mode ? stride - 1 : 0)) / stride + 1;
  // The last window must start inside the input or its left padding.
  if (ceil_mode && (out - 1) * stride >= in + pad) --out;
  return out;
}

int reduction_code(Reduction r) {
  switch (r) {
    case Reduction::None:
      return kReduceNone;
    case Reduction::Mean:
      return kReduceMean;
    case Reduction::Sum:
      return kReduceSum;
  }
  return kReduceMean;
}

void check_target(const Tensor& input, const Tensor& target, const char* op) {
  GRAFT_CHECK(input.dim() == 2, op, ": expected input of shape [N, C], got ",
              shape_str(input.sizes()));
  check_float(input, op, "input");
  GRAFT_CHECK(target.dtype() == DType::Int64, op, ": target must be int64 class indices, got ",
              dtype_name(target.dtype()));
  GRAFT_CHECK(target.dim() == 1 && target.size(0) == input.size(0), op,
              ": expected target of shape [", input.size(0), "], got ", shape_str(target.sizes()));
  GRAFT_CHECK(target.device() == input.device(), op, ": target is on ", target.device().str(),
              " but input is on ", input.device().str());
}

}  // namespace

Tensor conv2d(const Tensor& input, const Tensor& weight, const Tensor& bias,
              const Conv2dParams& p) {
  GRAFT_CHECK(input.defined() && weight.defined(), "conv2d: input and weight must be defined");
  GRAFT_CHECK(input.dim() == 4, "conv2d: expected a 4-D input [N, C, H, W], got ",
              shape_str(input.sizes()));
  GRAFT_CHECK(weight.dim() == 4, "conv2d: expected a 4-D weight [O, C/groups, kh, kw], got ",
              shape_str(weight.sizes()));
  check_float(input, "conv2d", "input");
  GRAFT_CHECK(weight.dtype() == input.dtype(), "conv2d: weight has dtype ",
              dtype_name(weight.dtype()), " but input has ", dtype_name(input.dtype()));
  GRAFT_CHECK(weight.device() == input.device(), "conv2d: weight is on ", weight.device().str(),
              " but input is on ", input.device().str());
  GRAFT_CHECK(p.stride_h >= 1 && p.stride_w >= 1, "conv2d: stride must be >= 1, got (", p.stride_h,
              ", ", p.stride_w, ")");
  GRAFT_CHECK(p.dilation_h >= 1 && p.dilation_w >= 1, "conv2d: dilation must be >= 1, got (",
              p.dilation_h, ", ", p.dilation_w, ")");
  GRAFT_CHECK(p.pad_h >= 0 && p.pad_w >= 0, "conv2d: padding must be >= 0, got (", p.pad_h, ", ",
              p.pad_w, ")");
  GRAFT_CHECK(p.groups >= 1, "conv2d: groups must be >= 1, got ", p.groups);
  const int64_t N = input.size(0), C = input.size(1), O = weight.size(0);
  const int64_t kh = weight.size(2), kw = weight.size(3);
  GRAFT_CHECK(kh >= 1 && kw >= 1 && weight.size(1) >= 1, "conv2d: weight ",
              shape_str(weight.sizes()), " has an empty dimension");
  GRAFT_CHECK(C == weight.size(1) * p.groups, "conv2d: input ", shape_str(input.sizes()), " has ",
              C, " channels but weight ", shape_str(weight.sizes()), " with groups=", p.groups,
              " expects ", weight.size(1) * p.groups);
  GRAFT_CHECK(O % p.groups == 0, "conv2d: ", O,
              " output channels are not divisible by groups=", p.groups);
  check_param(bias, input, O, "conv2d", "bias");
  const int64_t OH = pooled_size(input.size(2), kh, p.pad_h, p.stride_h, p.dilation_h, false);
  const int64_t OW = pooled_size(input.size(3), kw, p.pad_w, p.stride_w, p.dilation_w, false);
  GRAFT_CHECK(OH >= 1 && OW >= 1, "conv2d: padded input ", input.size(2) + 2 * p.pad_h, "x",
              input.size(3) + 2 * p.pad_w, " is smaller than the dilated kernel ",
              p.dilation_h * (kh - 1) + 1, "x", p.dilation_w * (kw - 1) + 1,
              " (output size would be < 1)");
  const Tensor x = contig(input), w = contig(weight), b = contig(bias);
  Tensor out = empty({N, O, OH, OW}, opts(input.dtype(), input.device()));
  if (out.numel() > 0) kernel::conv2d_forward(input.device())(x, w, b, p, out);
  if (autograd::any_requires_grad({&input, &weight, &bias}))
    derivatives::conv2d(input, weight, bias, x, w, p, out);
  return out;
}

Tensor batch_norm(const Tensor& input, const Tensor& weight, const Tensor& bias,
                  const Tensor& running_mean, const Tensor& running_var, bool training,
                  double momentum, double eps) {
  GRAFT_CHECK(input.defined() && input.dim() >= 2,
              "batch_norm: expected an input [N, C, ...] with at least 2 dims, got ",
              input.defined() ? shape_str(input.sizes()) : std::string("undefined"));
  check_float(input, "batch_norm", "input");
  const int64_t C = input.size(1);
  check_param(weight, input, C, "batch_norm", "weight");
  check_param(bias, input, C, "batch_norm", "bias");
  check_param(running_mean, input, C, "batch_norm", "running_mean");
  check_param(running_var, input, C, "batch_norm", "running_var");
  GRAFT_CHECK(running_mean.defined() == running_var.defined(),
              "batch_norm: running_mean and running_var must both be given or both omitted");
  GRAFT_CHECK(eps > 0, "batch_norm: eps must be > 0, got ", eps);
  GRAFT_CHECK(
      !running_mean.defined() || (!running_mean.requires_grad() && !running_var.requires_grad()),
      "batch_norm: running statistics must not require grad");
  const Tensor x = contig(input), w = contig(weight), b = contig(bias);
  Tensor out = empty(input.sizes(), opts(input.dtype(), input.device()));
  Tensor mean, invstd;
  if (training) {
    const int64_t per_channel = C > 0 ? input.numel() / C : 0;
    GRAFT_CHECK(per_channel > 1,
                "batch_norm: expected more than 1 value per channel when "
                "training, got input of shape ",
                shape_str(input.sizes()));
    mean = empty({C}, opts(input.dtype(), input.device()));
    invstd = empty({C}, opts(input.dtype(), input.device()));
    Tensor rm = contig(running_mean), rv = contig(running_var);
    kernel::batch_norm_forward_train(input.device())(x, w, b, rm, rv, momentum, eps, out, mean,
                                                     invstd);
    // Updated in place (or through a contiguous copy written back).
    for (auto [stat, updated] : {std::pair{running_mean, rm}, std::pair{running_var, rv}}) {
      if (!stat.defined()) continue;
      if (!updated.is_same(stat)) {
        NoGradGuard g;
        Tensor dst = stat;
        copy_(dst, updated);
      } else {
        stat.storage()->bump_version();
      }
    }
  } else {
    GRAFT_CHECK(running_mean.defined(), "batch_norm: eval mode needs running_mean and running_var");
    const Tensor rm = contig(running_mean), rv = contig(running_var);
    if (input.numel() > 0)
      kernel::batch_norm_forward_eval(input.device())(x, w, b, rm, rv, eps, out);
    if (autograd::any_requires_grad({&input, &weight, &bias})) {
      // Eval backward treats the statistics as constants; snapshot them so a
      // later training step's in-place update does not invalidate this graph.
      NoGradGuard g;
      mean = rm.clone();
      invstd = rsqrt(add(rv, eps));
    }
  }
  if (autograd::any_requires_grad({&input, &weight, &bias}))
    derivatives::batch_norm(input, weight, bias, x, w, mean, invstd, training, eps, out);
  return out;
}

Tensor conv2d_bn_eval(const Tensor& input, const Tensor& weight, const Tensor& conv_bias,
                      const Conv2dParams& p, const Tensor& bn_weight, const Tensor& bn_bias,
                      const Tensor& running_mean, const Tensor& running_var, double eps,
                      bool relu) {
  GRAFT_CHECK(running_mean.defined() && running_var.defined(),
              "conv2d_bn_eval: running_mean and running_var are required");
  if (autograd::any_requires_grad({&input, &weight, &conv_bias, &bn_weight, &bn_bias})) {
    Tensor y = batch_norm(conv2d(input, weight, conv_bias, p), bn_weight, bn_bias, running_mean,
                          running_var, false, 0.0, eps);
    return relu ? graft::relu(y) : y;
  }
  GRAFT_CHECK(weight.defined() && weight.dim() == 4,
              "conv2d_bn_eval: expected a 4-D weight [O, C/groups, kh, kw]");
  const int64_t O = weight.size(0);
  check_param(running_mean, weight, O, "conv2d_bn_eval", "running_mean");
  check_param(running_var, weight, O, "conv2d_bn_eval", "running_var");
  check_param(bn_weight, weight, O, "conv2d_bn_eval", "bn weight");
  check_param(bn_bias, weight, O, "conv2d_bn_eval", "bn bias");
  GRAFT_CHECK(eps > 0, "conv2d_bn_eval: eps must be > 0, got ", eps);
  // Fold in float64: scale = gamma / sqrt(var + eps), shift = beta - mean*scale.
  const DType f64 = DType::Float64;
  Tensor scale = rsqrt(add(running_var.to(f64), eps));
  if (bn_weight.defined()) scale = mul(scale, bn_weight.to(f64));
  Tensor shift = neg(mul(running_mean.to(f64), scale));
  if (conv_bias.defined()) shift = add(shift, mul(conv_bias.to(f64), scale));
  if (bn_bias.defined()) shift = add(shift, bn_bias.to(f64));
  const Tensor w = mul(weight.to(f64), scale.view({O, 1, 1, 1})).to(weight.dtype());
  Tensor out = conv2d(input, w, shift.to(weight.dtype()), p);
  if (relu) relu_(out);
  return out;
}

Tensor max_pool2d(const Tensor& input, int64_t kernel, int64_t stride, int64_t padding,
                  int64_t dilation, bool ceil_mode) {
  GRAFT_CHECK(input.defined() && input.dim() == 4,
              "max_pool2d: expected a 4-D input [N, C, H, W], got ",
              input.defined() ? shape_str(input.sizes()) : std::string("undefined"));
  check_float(input, "max_pool2d", "input");
  if (stride == 0) stride = kernel;
  GRAFT_CHECK(kernel >= 1, "max_pool2d: kernel size must be >= 1, got ", kernel);
  GRAFT_CHECK(stride >= 1, "max_pool2d: stride must be >= 1, got ", stride);
  GRAFT_CHECK(dilation >= 1, "max_pool2d: dilation must be >= 1, got ", dilation);
  GRAFT_CHECK(padding >= 0 && padding <= kernel / 2,
              "max_pool2d: padding must be between 0 and half the kernel size (", kernel / 2,
              "), got ", padding);
  const int64_t H = input.size(2), W = input.size(3);
  const int64_t OH = pooled_size(H, kernel, padding, stride, dilation, ceil_mode);
  const int64_t OW = pooled_size(W, kernel, padding, stride, dilation, ceil_mode);
  GRAFT_CHECK(OH >= 1 && OW >= 1, "max_pool2d: input ", shape_str(input.sizes()),
              " is too small for kernel ", kernel, " (dilation ", dilation, ", padding ", padding,
              "): output size would be ", OH, "x", OW);
  const Pool2dParams p{kernel, kernel, stride, stride, padding, padding, dilation, dilation};
  const Tensor x = contig(input);
  Tensor out = empty({input.size(0), input.size(1), OH, OW}, opts(input.dtype(), input.device()));
  // The argmax indices only serve backward: without a tape they are not
  // computed (at the ResNet stem they are twice the output's bytes).
  const bool grad = autograd::any_requires_grad({&input});
  const Tensor indices = grad ? empty(out.sizes(), opts(DType::Int64, input.device())) : Tensor();
  if (out.numel() > 0) kernel::max_pool2d_forward(input.device())(x, p, out, indices);
  if (grad) derivatives::max_pool2d(input, indices, out);
  return out;
}

Tensor adaptive_avg_pool2d(const Tensor& input, int64_t out_h, int64_t out_w) {
  GRAFT_CHECK(input.defined() && input.dim() == 4,
              "adaptive_avg_pool2d: expected a 4-D input [N, C, H, W], got ",
              input.defined() ? shape_str(input.sizes()) : std::string("undefined"));
  check_float(input, "adaptive_avg_pool2d", "input");
  GRAFT_CHECK(out_h >= 1 && out_w >= 1, "adaptive_avg_pool2d: output size must be >= 1, got ",
              out_h, "x", out_w);
  GRAFT_CHECK(input.size(2) >= 1 && input.size(3) >= 1, "adaptive_avg_pool2d: input ",
              shape_str(input.sizes()), " has an empty spatial dimension");
  const Tensor x = contig(input);
  Tensor out =
      empty({input.size(0), input.size(1), out_h, out_w}, opts(input.dtype(), input.device()));
  if (out.numel() > 0) kernel::adaptive_avg_pool2d_forward(input.device())(x, out);
  if (autograd::any_requires_grad({&input})) derivatives::adaptive_avg_pool2d(input, out);
  return out;
}

Tensor linear(const Tensor& input, const Tensor& weight, const Tensor& bias) {
  GRAFT_CHECK(input.defined() && weight.defined(), "linear: input and weight must be defined");
  GRAFT_CHECK(input.dim() >= 1, "linear: input must have at least 1 dim");
  GRAFT_CHECK(weight.dim() == 2, "linear: expected a 2-D weight [out, in], got ",
              shape_str(weight.sizes()));
  check_float(input, "linear", "input");
  GRAFT_CHECK(weight.dtype() == input.dtype(), "linear: weight has dtype ",
              dtype_name(weight.dtype()), " but input has ", dtype_name(input.dtype()));
  const int64_t K = weight.size(1), O = weight.size(0);
  GRAFT_CHECK(input.size(-1) == K, "linear: input ", shape_str(input.sizes()), " has last dim ",
              input.size(-1), " but weight ", shape_str(weight.sizes()), " expects ", K);
  check_param(bias, input, O, "linear", "bias");
  // [*, K] -> [M, K] (a differentiable reshape), GEMM, then back to [*, O].
  Shape out_shape = input.sizes();
  out_shape.back() = O;
  const Tensor x2 = input.reshape({-1, K});
  const Tensor x = contig(x2), w = contig(weight), b = contig(bias);
  Tensor out = empty({x2.size(0), O}, opts(input.dtype(), input.device()));
  kernel::linear_forward(input.device())(x, w, b, out);
  if (autograd::any_requires_grad({&x2, &weight, &bias}))
    derivatives::linear(x2, weight, bias, x, w, out);
  return out.reshape(out_shape);
}

Tensor dropout(const Tensor& input, double p, bool training, Generator* gen) {
  GRAFT_CHECK(p >= 0 && p <= 1, "dropout: probability must be in [0, 1], got ", p);
  if (!training || p == 0) return input;
  check_float(input, "dropout", "input");
  if (p == 1) return mul(input, 0.0);
  // Mask drawn on the CPU from the generator (same numbers on every device),
  // holding 0 or 1/(1-p); mul records the backward (grad * mask).
  Tensor mask = empty(input.sizes(), opts(input.dtype()));
  const double keep_scale = 1.0 / (1.0 - p);
  Generator& g = gen ? *gen : default_generator();
  GRAFT_DISPATCH_FLOAT(input.dtype(), "dropout", [&] {
    scalar_t* m = mask.data_ptr<scalar_t>();
    std::lock_guard<std::mutex> lock(g.mutex());
    for (int64_t i = 0, n = mask.numel(); i < n; ++i)
      m[i] = g.next_double() >= p ? static_cast<scalar_t>(keep_scale) : scalar_t(0);
  });
  return mul(input, mask.to(input.device()));
}

namespace {
Tensor softmax_impl(const Tensor& input, int64_t dim, bool log) {
  const char* op = log ? "log_softmax" : "softmax";
  GRAFT_CHECK(input.defined(), op, ": input is undefined");
  check_float(input, op, "input");
  if (input.dim() == 0) {
    // A scalar is its own single-element row.
    return softmax_impl(input.reshape({1}), 0, log).reshape({});
  }
  dim = wrap_dim(dim, input.dim(), op);
  const Tensor x = contig(input);
  Tensor out = empty(input.sizes(), opts(input.dtype(), input.device()));
  if (out.numel() > 0) kernel::softmax_forward(input.device())(x, dim, log, out);
  if (autograd::any_requires_grad({&input})) derivatives::softmax(input, dim, log, out);
  return out;
}
}  // namespace

Tensor softmax(const Tensor& input, int64_t dim) { return softmax_impl(input, dim, false); }
Tensor log_softmax(const Tensor& input, int64_t dim) { return softmax_impl(input, dim, true); }

Tensor nll_loss(const Tensor& log_probs, const Tensor& target, Reduction reduction,
                int64_t ignore_index) {
  check_target(log_probs, target, "nll_loss");
  const Tensor x = contig(log_probs), t = contig(target);
  const int code = reduction_code(reduction);
  Tensor out = empty(reduction == Reduction::None ? Shape{log_probs.size(0)} : Shape{},
                     opts(log_probs.dtype(), log_probs.device()));
  kernel::nll_loss_forward(log_probs.device())(x, t, code, ignore_index, out);
  if (autograd::any_requires_grad({&log_probs}))
    derivatives::nll_loss(log_probs, t, code, ignore_index, out);
  return out;
}

Tensor cross_entropy(const Tensor& logits, const Tensor& target, Reduction reduction,
                     int64_t ignore_index, double label_smoothing) {
  check_target(logits, target, "cross_entropy");
  GRAFT_CHECK(label_smoothing >= 0 && label_smoothing <= 1,
              "cross_entropy: label_smoothing must be in [0, 1], got ", label_smoothing);
  GRAFT_CHECK(logits.size(1) >= 1, "cross_entropy: need at least one class, got ",
              shape_str(logits.sizes()));
  const Tensor x = contig(logits), t = contig(target);
  const int code = reduction_code(reduction);
  Tensor out = empty(reduction == Reduction::None ? Shape{logits.size(0)} : Shape{},
                     opts(logits.dtype(), logits.device()));
  Tensor log_probs = empty(logits.sizes(), opts(logits.dtype(), logits.device()));
  kernel::cross_entropy_forward(logits.device())(x, t, code, ignore_index, label_smoothing, out,
                                                 log_probs);
  if (autograd::any_requires_grad({&logits}))
    derivatives::cross_entropy(logits, t, code, ignore_index, label_smoothing, log_probs, out);
  return out;
}

}  // namespace graft::F
