// The standard layers (torch.nn): containers, convolution, normalisation,
// activations, pooling and the classifier head. Each prints the same repr as
// its PyTorch counterpart and registers the same parameter/buffer names.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>

#include "core/generator.h"
#include "core/ops.h"
#include "nn/module.h"

namespace graft::nn {

// Children named "0", "1", ...; forward chains them.
class Sequential : public Module {
 public:
  Sequential() : Module("Sequential") {}
  explicit Sequential(std::initializer_list<ModulePtr> modules);
  void push_back(ModulePtr module);
  ModulePtr operator[](size_t i) const;
  size_t size() const { return size_; }
  Tensor forward(const Tensor& input) override;

 protected:
  // For subclasses that print under their own name (torchvision's
  // Conv2dNormActivation is a Sequential).
  Sequential(std::string type_name, std::initializer_list<ModulePtr> modules);

 private:
  size_t size_ = 0;
};

class Conv2d : public Module {
 public:
  // Square kernel/stride/padding/dilation, as torchvision's models use.
  Conv2d(int64_t in_channels, int64_t out_channels, int64_t kernel_size, int64_t stride = 1,
         int64_t padding = 0, int64_t dilation = 1, int64_t groups = 1, bool bias = true,
         Generator* gen = nullptr);
  Tensor forward(const Tensor& input) override;
  std::string extra_repr() const override;
  void reset_parameters(Generator* gen = nullptr);

  int64_t in_channels, out_channels, kernel_size, stride, padding, dilation, groups;
  Tensor weight;  // [out, in/groups, k, k]
  Tensor bias;    // [out] or undefined
};

class BatchNorm2d : public Module {
 public:
  // momentum: nullopt selects the cumulative moving average (1/num_batches_tracked).
  explicit BatchNorm2d(int64_t num_features, double eps = 1e-5,
                       std::optional<double> momentum = 0.1, bool affine = true,
                       bool track_running_stats = true);
  Tensor forward(const Tensor& input) override;
  std::string extra_repr() const override;
  void reset_running_stats();
  void reset_parameters();

  int64_t num_features;
  double eps;
  std::optional<double> momentum;
  bool affine, track_running_stats;
  // When true the layer normalises with its running statistics and never
  // updates them, even while the model is in training mode (a "frozen" BN
  // policy for fine-tuning small batches).
  bool force_eval = false;
  // Training-mode normalisation with statistics over several processes
  // (dist::enable_sync_batch_norm, `graft train --sync-bn`): when set, it
  // replaces the local batch_norm in training mode. `factor` is the running
  // statistics' momentum for this step.
  std::function<Tensor(BatchNorm2d& bn, const Tensor& input, double factor)> training_forward;

  Tensor weight, bias;               // [C] when affine
  Tensor running_mean, running_var;  // [C] when track_running_stats
  Tensor num_batches_tracked;        // int64 0-d when track_running_stats
};

class Linear : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias = true, Generator* gen = nullptr);
  Tensor forward(const Tensor& input) override;
  std::string extra_repr() const override;
  void reset_parameters(Generator* gen = nullptr);

  int64_t in_features, out_features;
  Tensor weight;  // [out, in]
  Tensor bias;    // [out] or undefined
};

class ReLU : public Module {
 public:
  explicit ReLU(bool in_place = false) : Module("ReLU"), inplace(in_place) {}
  Tensor forward(const Tensor& input) override;
  std::string extra_repr() const override { return inplace ? "inplace=True" : ""; }
  bool inplace;
};

// min(max(x, 0), 6) (torch.nn.ReLU6). The gradient passes where 0 < x < 6
// and is zero at and beyond both bounds, as torch's hardtanh_backward (clamp's
// own gradient passes at the bounds).
class ReLU6 : public Module {
 public:
  explicit ReLU6(bool in_place = false) : Module("ReLU6"), inplace(in_place) {}
  Tensor forward(const Tensor& input) override;
  std::string extra_repr() const override { return inplace ? "inplace=True" : ""; }
  bool inplace;
};

namespace detail {
inline void check_gelu_approximate(const std::string& approximate) {
  GRAFT_CHECK(approximate == "none" || approximate == "tanh",
              "gelu: approximate must be 'none' or 'tanh', got '", approximate, "'");
}
}  // namespace detail

namespace functional {
// torch.nn.functional.gelu: x * Phi(x), Phi the standard normal CDF, computed
// with erf (approximate "none") or as 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715
// x^3))) (approximate "tanh"). Forward and backward run on every device.
inline Tensor gelu(const Tensor& input, const std::string& approximate = "none") {
  detail::check_gelu_approximate(approximate);
  return approximate == "tanh" ? graft::gelu_tanh(input) : graft::gelu(input);
}
}  // namespace functional

// torch.nn.GELU
class GELU : public Module {
 public:
  explicit GELU(std::string approximate_ = "none")
      : Module("GELU"), approximate(std::move(approximate_)) {
    detail::check_gelu_approximate(approximate);
  }
  Tensor forward(const Tensor& input) override { return functional::gelu(input, approximate); }
  std::string extra_repr() const override { return "approximate='" + approximate + "'"; }
  std::string approximate;
};

class MaxPool2d : public Module {
 public:
  // stride 0 means stride = kernel_size (PyTorch's stride=None).
  explicit MaxPool2d(int64_t kernel_size, int64_t stride = 0, int64_t padding = 0,
                     int64_t dilation = 1, bool ceil_mode = false);
  Tensor forward(const Tensor& input) override;
  std::string extra_repr() const override;
  int64_t kernel_size, stride, padding, dilation;
  bool ceil_mode;
};

class AdaptiveAvgPool2d : public Module {
 public:
  AdaptiveAvgPool2d(int64_t output_h, int64_t output_w)
      : Module("AdaptiveAvgPool2d"), out_h(output_h), out_w(output_w) {}
  Tensor forward(const Tensor& input) override;
  std::string extra_repr() const override { return "output_size=" + py_tuple(out_h, out_w); }
  int64_t out_h, out_w;
};

class Dropout : public Module {
 public:
  explicit Dropout(double p = 0.5, Generator* gen = nullptr);
  Tensor forward(const Tensor& input) override;
  std::string extra_repr() const override;
  double p;
  Generator* gen;  // null: the default generator
};

class Identity : public Module {
 public:
  Identity() : Module("Identity") {}
  Tensor forward(const Tensor& input) override { return input; }
};

class Flatten : public Module {
 public:
  explicit Flatten(int64_t start = 1, int64_t end = -1)
      : Module("Flatten"), start_dim(start), end_dim(end) {}
  Tensor forward(const Tensor& input) override { return input.flatten(start_dim, end_dim); }
  std::string extra_repr() const override;
  int64_t start_dim, end_dim;
};

}  // namespace graft::nn
