// Learning-rate schedulers matching torch.optim.lr_scheduler (1.13) value for
// value: the same chainable (recursive) formulas, so a sequence of step()
// calls produces torch's exact lr sequence. Each scheduler acts on every
// parameter group of its optimizer, from that group's initial_lr.
//
// Construction performs torch's initial step (last_epoch 0), which already
// applies e.g. LinearLR's start factor. Call step() once per epoch/iteration,
// after optimizer.step().
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "optim/optimizer.h"

namespace graft::optim {

// What a training loop needs from a schedule: one step per epoch, and its
// state for an exact resume (torch's scheduler.state_dict(): the counters and
// lrs, not the constructor arguments). Restore it after building the same
// schedule and loading the optimizer's state: the continuation is then
// bit-identical to an uninterrupted run, with no replay of past steps.
class Schedule {
 public:
  virtual ~Schedule() = default;
  virtual void step() = 0;
  // Flat, like optim::FlatState: "last_epoch" int64 0-d, "base_lrs" and
  // "last_lr" float64 [groups], ...; composite schedules prefix each child's
  // keys with "<index>.".
  virtual FlatState state_dict() const = 0;
  // Errors (naming the key) on a dict from another schedule or group count.
  virtual void load_state_dict(const FlatState& sd) = 0;
};

class LRScheduler : public Schedule {
 public:
  virtual ~LRScheduler() = default;
  LRScheduler(const LRScheduler&) = delete;
  LRScheduler& operator=(const LRScheduler&) = delete;

  // Advances one epoch and writes the new lr into every group.
  void step() override;
  // Jumps to `epoch` with the closed form where the scheduler has one (torch's
  // deprecated step(epoch); SequentialLR uses step_to(0) at milestones).
  void step_to(int64_t epoch);

  const std::vector<double>& last_lr() const { return last_lr_; }
  int64_t last_epoch() const { return last_epoch_; }
  const std::vector<double>& base_lrs() const { return base_lrs_; }
  Optimizer& optimizer() const { return opt_; }

  FlatState state_dict() const override;
  void load_state_dict(const FlatState& sd) override;

 protected:
  explicit LRScheduler(Optimizer& opt) : opt_(opt) {}
  // Sets each group's initial_lr when absent, records base_lrs and performs
  // the initial step. Derived constructors call it last.
  void init();
  // The chainable form: new lrs from the groups' current lrs.
  virtual std::vector<double> get_lr() = 0;
  // The closed form at last_epoch_, when the scheduler has one.
  virtual std::optional<std::vector<double>> closed_form_lr() { return std::nullopt; }
  std::vector<double> current_lrs() const;
  void apply(const std::vector<double>& lrs);

  Optimizer& opt_;
  std::vector<double> base_lrs_;
  std::vector<double> last_lr_;
  int64_t last_epoch_ = -1;
  int64_t step_count_ = 0;

  friend class SequentialLR;
};

// lr *= gamma every step_size epochs.
class StepLR final : public LRScheduler {
 public:
  StepLR(Optimizer& opt, int64_t step_size, double gamma = 0.1);

 protected:
  std::vector<double> get_lr() override;
  std::optional<std::vector<double>> closed_form_lr() override;

 private:
  int64_t step_size_;
  double gamma_;
};

// lr *= gamma at each milestone (a milestone listed twice multiplies by gamma^2).
class MultiStepLR final : public LRScheduler {
 public:
  MultiStepLR(Optimizer& opt, std::vector<int64_t> milestones, double gamma = 0.1);

 protected:
  std::vector<double> get_lr() override;
  std::optional<std::vector<double>> closed_form_lr() override;

 private:
  std::vector<int64_t> milestones_;  // sorted, repeats kept
  double gamma_;
  int64_t count(int64_t epoch) const;
};

// Cosine annealing from the base lr to eta_min over t_max epochs, continuing
// past t_max as torch's recursive form does (the lr rises again).
class CosineAnnealingLR final : public LRScheduler {
 public:
  CosineAnnealingLR(Optimizer& opt, int64_t t_max, double eta_min = 0);

 protected:
  std::vector<double> get_lr() override;
  std::optional<std::vector<double>> closed_form_lr() override;

 private:
  int64_t t_max_;
  double eta_min_;
};

// Linear warmup: factor goes from start_factor to end_factor over total_iters epochs.
class LinearLR final : public LRScheduler {
 public:
  LinearLR(Optimizer& opt, double start_factor = 1.0 / 3, double end_factor = 1.0,
           int64_t total_iters = 5);

 protected:
  std::vector<double> get_lr() override;
  std::optional<std::vector<double>> closed_form_lr() override;

 private:
  double start_factor_, end_factor_;
  int64_t total_iters_;
};

struct OneCycleOptions {
  std::vector<double> max_lr = {};  // one value for all groups, or one per group
  int64_t total_steps = 0;
  double pct_start = 0.3;
  bool anneal_cos = true;  // false: linear annealing
  bool cycle_momentum = true;
  double base_momentum = 0.85;
  double max_momentum = 0.95;
  double div_factor = 25;
  double final_div_factor = 1e4;
  bool three_phase = false;
};

// The 1cycle policy (torch.optim.lr_scheduler.OneCycleLR): lr rises from
// max_lr/div_factor to max_lr over pct_start of total_steps, then anneals to
// initial_lr/final_div_factor; momentum (or Adam's beta1) cycles inversely.
// Stepping more than total_steps times is an error, as in torch.
class OneCycleLR final : public LRScheduler {
 public:
  OneCycleLR(Optimizer& opt, OneCycleOptions o);

 protected:
  std::vector<double> get_lr() override;

 private:
  struct Phase {
    double end_step;
    int start_lr, end_lr, start_m, end_m;  // indices into the per-group value table
  };
  OneCycleOptions o_;
  std::vector<Phase> phases_;
  bool use_beta1_ = false;
  // Per group: [initial_lr, max_lr, min_lr, max_momentum, base_momentum].
  std::vector<std::array<double, 5>> values_;
  double anneal(double start, double end, double pct) const;
};

// Calls every scheduler's step() in order (torch's ChainedScheduler).
class ChainedScheduler {
 public:
  explicit ChainedScheduler(std::vector<std::shared_ptr<LRScheduler>> schedulers);
  void step();
  const std::vector<double>& last_lr() const { return schedulers_.back()->last_lr(); }

 private:
  std::vector<std::shared_ptr<LRScheduler>> schedulers_;
};

// Runs schedulers one after another, switching at the milestones (torch's
// SequentialLR), e.g. LinearLR warmup for 5 epochs then cosine annealing.
class SequentialLR final : public Schedule {
 public:
  SequentialLR(Optimizer& opt, std::vector<std::shared_ptr<LRScheduler>> schedulers,
               std::vector<int64_t> milestones);
  void step() override;
  const std::vector<double>& last_lr() const { return last_lr_; }
  FlatState state_dict() const override;
  void load_state_dict(const FlatState& sd) override;

 private:
  std::vector<std::shared_ptr<LRScheduler>> schedulers_;
  std::vector<int64_t> milestones_;
  int64_t last_epoch_ = 0;
  std::vector<double> last_lr_;
};

}  // namespace graft::optim
