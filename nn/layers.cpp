#include "nn/layers.h"

#include <cmath>

#include "core/autograd.h"
#include "core/derivatives.h"
#include "core/ops.h"
#include "core/ops_nn.h"
#include "nn/init.h"

namespace graft::nn {

// ---------------------------------------------------------------- Sequential

Sequential::Sequential(std::initializer_list<ModulePtr> modules) : Sequential() {
  for (const auto& m : modules) push_back(m);
}

Sequential::Sequential(std::string type_name, std::initializer_list<ModulePtr> modules)
    : Module(std::move(type_name)) {
  for (const auto& m : modules) push_back(m);
}

void Sequential::push_back(ModulePtr module) {
  GRAFT_CHECK(module != nullptr, "Sequential: cannot append a null module");
  register_module(std::to_string(size_), std::move(module));
  ++size_;
}

ModulePtr Sequential::operator[](size_t i) const {
  GRAFT_CHECK(i < size_, "Sequential: index ", i, " out of range for ", size_, " modules");
  return child(std::to_string(i));
}

Tensor Sequential::forward(const Tensor& input) {
  Tensor x = input;
  for (const auto& m : children()) x = (*m)(x);
  return x;
}

// ---------------------------------------------------------------- Conv2d

Conv2d::Conv2d(int64_t in_ch, int64_t out_ch, int64_t k, int64_t s, int64_t pad, int64_t dil,
               int64_t grp, bool with_bias, Generator* gen)
    : Module("Conv2d"),
      in_channels(in_ch),
      out_channels(out_ch),
      kernel_size(k),
      stride(s),
      padding(pad),
      dilation(dil),
      groups(grp) {
  GRAFT_CHECK(in_ch > 0 && out_ch > 0 && k > 0 && s > 0 && pad >= 0 && dil > 0 && grp > 0,
              "Conv2d(", in_ch, ", ", out_ch, ", kernel_size=", k, ", stride=", s,
              ", padding=", pad, ", dilation=", dil, ", groups=", grp, "): invalid configuration");
  GRAFT_CHECK(in_ch % grp == 0 && out_ch % grp == 0, "Conv2d: in_channels (", in_ch,
              ") and out_channels (", out_ch, ") must be divisible by groups (", grp, ")");
  weight = empty({out_ch, in_ch / grp, k, k});
  if (with_bias) bias = empty({out_ch});
  register_parameter("weight", &weight);
  register_parameter("bias", &bias);
  reset_parameters(gen);
}

void Conv2d::reset_parameters(Generator* gen) { init::default_reset(weight, bias, gen); }

Tensor Conv2d::forward(const Tensor& input) {
  GRAFT_CHECK(input.dim() == 4 && input.size(1) == in_channels, "Conv2d(", in_channels, ", ",
              out_channels, "): expected input [N, ", in_channels, ", H, W], got ",
              shape_str(input.sizes()));
  F::Conv2dParams p;
  p.stride_h = p.stride_w = stride;
  p.pad_h = p.pad_w = padding;
  p.dilation_h = p.dilation_w = dilation;
  p.groups = groups;
  return F::conv2d(input, weight, bias, p);
}

std::string Conv2d::extra_repr() const {
  std::string s = std::to_string(in_channels) + ", " + std::to_string(out_channels) +
                  ", kernel_size=" + py_tuple(kernel_size, kernel_size) +
                  ", stride=" + py_tuple(stride, stride);
  if (padding != 0) s += ", padding=" + py_tuple(padding, padding);
  if (dilation != 1) s += ", dilation=" + py_tuple(dilation, dilation);
  if (groups != 1) s += ", groups=" + std::to_string(groups);
  if (!bias.defined()) s += ", bias=False";
  return s;
}

// ---------------------------------------------------------------- BatchNorm2d

BatchNorm2d::BatchNorm2d(int64_t features, double epsilon, std::optional<double> mom,
                         bool is_affine, bool track)
    : Module("BatchNorm2d"),
      num_features(features),
      eps(epsilon),
      momentum(mom),
      affine(is_affine),
      track_running_stats(track) {
  GRAFT_CHECK(features > 0, "BatchNorm2d: num_features must be positive, got ", features);
  if (affine) {
    weight = empty({features});
    bias = empty({features});
  }
  if (track) {
    running_mean = zeros({features});
    running_var = ones({features});
    num_batches_tracked = zeros({}, opts(DType::Int64));
  }
  register_parameter("weight", &weight);
  register_parameter("bias", &bias);
  register_buffer("running_mean", &running_mean);
  register_buffer("running_var", &running_var);
  register_buffer("num_batches_tracked", &num_batches_tracked);
  reset_parameters();
}

void BatchNorm2d::reset_running_stats() {
  if (!track_running_stats) return;
  NoGradGuard g;
  zero_(running_mean);
  fill_(running_var, 1.0);
  zero_(num_batches_tracked);
}

void BatchNorm2d::reset_parameters() {
  reset_running_stats();
  if (affine) {
    init::ones_(weight);
    init::zeros_(bias);
  }
}

Tensor BatchNorm2d::forward(const Tensor& input) {
  GRAFT_CHECK(input.dim() == 4, "BatchNorm2d: expected 4D input (got ", input.dim(),
              "D input of shape ", shape_str(input.sizes()), ")");
  GRAFT_CHECK(input.size(1) == num_features, "BatchNorm2d(", num_features, "): input has ",
              input.size(1), " channels, shape ", shape_str(input.sizes()));
  const bool training = is_training() && !force_eval;
  // Same rules as torch's _BatchNorm.forward: the counter advances in
  // training mode, and momentum=None averages over all batches seen.
  double factor = momentum.value_or(0.0);
  if (training && track_running_stats) {
    {
      NoGradGuard g;
      add_(num_batches_tracked, 1.0);
    }
    if (!momentum) factor = 1.0 / num_batches_tracked.item();
  }
  if (training && training_forward) return training_forward(*this, input, factor);
  const bool use_batch_stats = training || !track_running_stats;
  // In training mode without tracking, no running stats are passed (nothing is updated).
  const bool pass_running = !training || track_running_stats;
  return F::batch_norm(input, weight, bias, pass_running ? running_mean : Tensor(),
                       pass_running ? running_var : Tensor(), use_batch_stats, factor, eps);
}

std::string BatchNorm2d::extra_repr() const {
  return std::to_string(num_features) + ", eps=" + py_float(eps) +
         ", momentum=" + (momentum ? py_float(*momentum) : std::string("None")) +
         ", affine=" + py_bool(affine) + ", track_running_stats=" + py_bool(track_running_stats);
}

// ---------------------------------------------------------------- Linear

Linear::Linear(int64_t in_f, int64_t out_f, bool with_bias, Generator* gen)
    : Module("Linear"), in_features(in_f), out_features(out_f) {
  GRAFT_CHECK(in_f > 0 && out_f > 0, "Linear(in_features=", in_f, ", out_features=", out_f,
              "): sizes must be positive");
  weight = empty({out_f, in_f});
  if (with_bias) bias = empty({out_f});
  register_parameter("weight", &weight);
  register_parameter("bias", &bias);
  reset_parameters(gen);
}

void Linear::reset_parameters(Generator* gen) { init::default_reset(weight, bias, gen); }

Tensor Linear::forward(const Tensor& input) {
  GRAFT_CHECK(input.dim() >= 1 && input.size(-1) == in_features, "Linear(in_features=", in_features,
              ", out_features=", out_features, "): input shape ", shape_str(input.sizes()),
              " does not end in ", in_features);
  return F::linear(input, weight, bias);
}

std::string Linear::extra_repr() const {
  return "in_features=" + std::to_string(in_features) +
         ", out_features=" + std::to_string(out_features) + ", bias=" + py_bool(bias.defined());
}

// ---------------------------------------------------------------- activations, pooling

Tensor ReLU::forward(const Tensor& input) {
  // In place only when no graph is being recorded through the input: the
  // out-of-place form keeps autograd's saved tensors valid.
  if (inplace && !autograd::any_requires_grad({&input})) {
    Tensor x = input;
    relu_(x);
    return x;
  }
  return relu(input);
}

Tensor ReLU6::forward(const Tensor& input) {
  if (!autograd::any_requires_grad({&input})) {
    if (!inplace) return clamp(input, 0.0, 6.0);
    Tensor x = input;
    clamp_(x, 0.0, 6.0);
    return x;
  }
  Tensor out;
  {
    NoGradGuard no_grad;
    out = clamp(input, 0.0, 6.0);
  }
  // torch's HardtanhBackward: the mask is strict, so an input exactly at 0 or
  // 6 gets no gradient (clamp's backward would pass it there).
  derivatives::record("HardtanhBackward", out, {input}, {input},
                      [](autograd::FunctionNode& n, const Tensor& g) {
                        const Tensor x = n.saved(0);
                        const Tensor pass = logical_and(gt(x, 0.0), lt(x, 6.0));
                        return std::vector<Tensor>{where(pass, g, zeros_like(g))};
                      });
  return out;
}

MaxPool2d::MaxPool2d(int64_t k, int64_t s, int64_t pad, int64_t dil, bool ceil)
    : Module("MaxPool2d"),
      kernel_size(k),
      stride(s == 0 ? k : s),
      padding(pad),
      dilation(dil),
      ceil_mode(ceil) {
  GRAFT_CHECK(k > 0 && stride > 0 && pad >= 0 && dil > 0, "MaxPool2d(kernel_size=", k,
              ", stride=", s, ", padding=", pad, ", dilation=", dil, "): invalid configuration");
  GRAFT_CHECK(2 * pad <= k, "MaxPool2d: padding (", pad,
              ") should be at most half of kernel size (", k, ")");
}

Tensor MaxPool2d::forward(const Tensor& input) {
  return F::max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode);
}

std::string MaxPool2d::extra_repr() const {
  return "kernel_size=" + std::to_string(kernel_size) + ", stride=" + std::to_string(stride) +
         ", padding=" + std::to_string(padding) + ", dilation=" + std::to_string(dilation) +
         ", ceil_mode=" + py_bool(ceil_mode);
}

Tensor AdaptiveAvgPool2d::forward(const Tensor& input) {
  return F::adaptive_avg_pool2d(input, out_h, out_w);
}

Dropout::Dropout(double prob, Generator* generator) : Module("Dropout"), p(prob), gen(generator) {
  GRAFT_CHECK(prob >= 0 && prob <= 1, "Dropout: probability has to be between 0 and 1, but got ",
              prob);
}

Tensor Dropout::forward(const Tensor& input) { return F::dropout(input, p, is_training(), gen); }

std::string Dropout::extra_repr() const { return "p=" + py_float(p) + ", inplace=False"; }

std::string Flatten::extra_repr() const {
  return "start_dim=" + std::to_string(start_dim) + ", end_dim=" + std::to_string(end_dim);
}

}  // namespace graft::nn
