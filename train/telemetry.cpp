#include "train/telemetry.h"

#include <cmath>
#include <cstdio>
#include <map>

#include "core/autograd.h"
#include "core/ops.h"
#include "io/file.h"
#include "train/plot.h"

namespace graft::train {

// Every output a layer produced in the sampled step, merged: count, mean and
// sum of squared deviations (Chan et al.'s parallel update, stable when the
// mean is large against the spread).
struct Telemetry::LayerStats {
  std::string name;
  double count = 0, mean = 0, m2 = 0, zeros = 0;

  void add(const Tensor& out) {
    const auto n = static_cast<double>(out.numel());
    if (n == 0) return;
    const double m = out.mean().item();
    const double m2_out = out.var({}, /*correction=*/0).item() * n;
    const double delta = m - mean, total = count + n;
    mean += delta * n / total;
    m2 += m2_out + delta * delta * count * n / total;
    count = total;
    zeros += out.eq(0).sum().item();
  }
};

namespace {

// Sum of squares. CPU reductions accumulate in double, so float32 inputs need
// no conversion first.
double sum_sq(const Tensor& t) { return t.square().sum().item(); }

}  // namespace

Telemetry::Telemetry(nn::Module& model, optim::Optimizer& opt, TelemetryOptions options)
    : model_(model), opt_(opt), options_(options) {
  GRAFT_CHECK(options_.every > 0, "telemetry: every must be positive, got ", options_.every);
  if (options_.activations) {
    for (const auto& [name, module] : model_.named_modules()) {
      if (name.empty() || !module->children().empty()) continue;
      layers_.push_back(std::make_unique<LayerStats>(LayerStats{name}));
      LayerStats* stats = layers_.back().get();
      hooks_.push_back(module->register_forward_hook(
          [this, stats](nn::Module& m, const Tensor&, const Tensor& out) {
            if (!recording_ || !m.is_training()) return Tensor();
            NoGradGuard no_grad;
            stats->add(out.detach());
            return Tensor();
          }));
    }
  }
  recording_ = true;  // step 1 is always sampled
  snapshot_weights();
}

Telemetry::~Telemetry() {
  for (auto& h : hooks_) h.remove();
}

void Telemetry::snapshot_weights() {
  NoGradGuard no_grad;
  before_.clear();
  for (const auto& g : opt_.param_groups()) {
    std::vector<Tensor> ws;
    for (const auto& p : g.params) ws.push_back(p.second.detach().clone());
    before_.push_back(std::move(ws));
  }
}

void Telemetry::on_step(const StepRecord& step) {
  const int64_t s = step.global_step;
  if (sampled(s)) {
    NoGradGuard no_grad;
    const auto& groups = opt_.param_groups();
    GRAFT_CHECK(groups.size() == before_.size(),
                "telemetry: the optimizer's parameter groups changed during training");
    for (size_t gi = 0; gi < groups.size(); ++gi) {
      double grad2 = 0, w2 = 0, dw2 = 0;
      for (size_t pi = 0; pi < groups[gi].params.size(); ++pi) {
        const Tensor& p = groups[gi].params[pi].second;
        if (p.grad().defined()) grad2 += sum_sq(p.grad());
        w2 += sum_sq(before_[gi][pi]);
        dw2 += sum_sq(p.detach() - before_[gi][pi]);
      }
      const std::string name = "group" + std::to_string(gi);
      const double grad_norm = std::sqrt(grad2), dw = std::sqrt(dw2);
      rows_.push_back({s, "group", name, "lr", groups[gi].lr()});
      rows_.push_back({s, "group", name, "grad_norm", grad_norm});
      rows_.push_back({s, "group", name, "update_ratio", w2 > 0 ? dw / std::sqrt(w2) : NAN});
      rows_.push_back({s, "group", name, "effective_lr", grad_norm > 0 ? dw / grad_norm : NAN});
    }
    for (auto& l : layers_) {
      if (l->count == 0) continue;  // not called in this step's forward
      const double var = l->count > 1 ? l->m2 / (l->count - 1) : NAN;  // unbiased, as torch
      rows_.push_back({s, "layer", l->name, "act_mean", l->mean});
      rows_.push_back({s, "layer", l->name, "act_std", std::sqrt(var)});
      rows_.push_back({s, "layer", l->name, "act_zero_frac", l->zeros / l->count});
    }
  }
  // Start the next sampled step afresh (the first step seen may not be a
  // sampled one when fit() resumes a run mid-way).
  for (auto& l : layers_) *l = LayerStats{l->name};
  recording_ = sampled(s + 1);
  if (recording_) snapshot_weights();
}

std::string Telemetry::csv() const {
  std::string out = "step,kind,name,metric,value\n";
  char value[32];
  for (const auto& r : rows_) {
    std::snprintf(value, sizeof value, "%.9g", r.value);
    out +=
        std::to_string(r.step) + "," + r.kind + "," + r.name + "," + r.metric + "," + value + "\n";
  }
  return out;
}

void Telemetry::write_csv(const std::string& path) const {
  io::AtomicFileWriter w(path);
  w.write(csv());
  w.commit();
}

void Telemetry::write_svg(const std::string& path) const {
  Chart ratio{"update / weight ratio per group", "step", "||dw|| / ||w||", {}};
  Chart grad{"gradient norm per group", "step", "||g||", {}};
  Chart zeros{"activation zero fraction by layer (last sample)",
              "layer index (forward order)",
              "fraction of zeros",
              {}};
  std::map<std::string, Series> ratio_series, grad_series;
  Series last_zeros{"zero fraction", {}, {}};
  int64_t last_step = rows_.empty() ? 0 : rows_.back().step;
  for (const auto& r : rows_) {
    if (r.kind == "group" && (r.metric == "update_ratio" || r.metric == "grad_norm")) {
      Series& s = (r.metric == "update_ratio" ? ratio_series : grad_series)[r.name];
      s.label = r.name;
      s.x.push_back(static_cast<double>(r.step));
      s.y.push_back(r.value);
    } else if (r.kind == "layer" && r.metric == "act_zero_frac" && r.step == last_step) {
      last_zeros.x.push_back(static_cast<double>(last_zeros.x.size()));
      last_zeros.y.push_back(r.value);
    }
  }
  for (auto& [name, s] : ratio_series) ratio.series.push_back(s);
  for (auto& [name, s] : grad_series) grad.series.push_back(s);
  std::vector<Chart> charts{ratio, grad};
  if (!last_zeros.x.empty()) {
    zeros.series.push_back(last_zeros);
    charts.push_back(zeros);
  }
  train::write_svg(path, charts);
}

}  // namespace graft::train
