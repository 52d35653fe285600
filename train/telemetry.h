// Training telemetry for fine-tuning research: which layers move, and how much.
//
// Every `every` optimizer steps it records
//   per parameter group: lr, grad_norm = ||g||, update_ratio = ||dw|| / ||w||
//     (w before the step) and effective_lr = ||dw|| / ||g||, where g and w are
//     all the group's parameters taken as one vector and dw is the step's update
//     (for plain SGD effective_lr equals lr; momentum, Adam and weight decay
//     make it differ);
//   per layer (every module without children, named as in state_dict keys):
//     act_mean, act_std (unbiased) and act_zero_frac of its output in that
//     step's training forward pass (a module called several times, like a
//     ResNet block's shared ReLU, counts all its outputs together).
//
//   train::Telemetry tele(model, opt, {.every = 10});
//   fit_options.on_step = [&](const train::StepRecord& r) { tele.on_step(r); };
//   ... train ...
//   tele.write_csv(out + "/telemetry.csv");
//   tele.write_svg(out + "/telemetry.svg");
//
// Groups are named group0, group1, ... in the optimizer's order. A sampled step
// copies the trained parameters and runs four reductions over every layer's
// output, so for long runs sample every 10 or more steps.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/hooks.h"
#include "nn/module.h"
#include "optim/optimizer.h"
#include "train/fit.h"

namespace graft::train {

struct TelemetryOptions {
  int64_t every = 1;  // sample steps 1, 1+every, 1+2*every, ...
  bool activations = true;
};

struct TelemetryRow {
  int64_t step = 0;
  std::string kind;  // "group" or "layer"
  std::string name;  // "group0", "layer1.0.conv1"
  std::string
      metric;  // lr, grad_norm, update_ratio, effective_lr, act_mean, act_std, act_zero_frac
  double value = 0;
};

class Telemetry {
 public:
  // Registers forward hooks on `model`'s layers (removed by the destructor)
  // and snapshots the trained parameters for the first step's update.
  Telemetry(nn::Module& model, optim::Optimizer& opt, TelemetryOptions options = {});
  ~Telemetry();
  Telemetry(const Telemetry&) = delete;
  Telemetry& operator=(const Telemetry&) = delete;

  // Call after each optimizer step (FitOptions::on_step).
  void on_step(const StepRecord& step);

  const std::vector<TelemetryRow>& rows() const { return rows_; }
  // Long format: step,kind,name,metric,value.
  std::string csv() const;
  void write_csv(const std::string& path) const;
  // Per-group update_ratio and grad_norm over steps, and per-layer zero fraction.
  void write_svg(const std::string& path) const;

 private:
  struct LayerStats;
  bool sampled(int64_t step) const { return (step - 1) % options_.every == 0; }
  void snapshot_weights();

  nn::Module& model_;
  optim::Optimizer& opt_;
  TelemetryOptions options_;
  std::vector<HookHandle> hooks_;
  std::vector<std::unique_ptr<LayerStats>> layers_;
  std::vector<std::vector<Tensor>> before_;  // per group, per parameter: w before the step
  bool recording_ = false;                   // the next training forward is sampled
  std::vector<TelemetryRow> rows_;
};

}  // namespace graft::train
