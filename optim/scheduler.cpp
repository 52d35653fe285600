// Formulas are transcribed from torch/optim/lr_scheduler.py (1.13) with the
// same evaluation order, so the double results are identical, not just close.
#include "optim/scheduler.h"

// Python evaluates these formulas without fused multiply-adds; keep the
// compiler from contracting a*b+c so the lrs match torch to the last bit.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include <algorithm>
#include <cmath>
#include <numbers>

#include "core/ops.h"

namespace graft::optim {

namespace {
constexpr double kPi = std::numbers::pi;

const Tensor& entry(const FlatState& sd, const std::string& key) {
  auto it = sd.find(key);
  GRAFT_CHECK(it != sd.end(), "scheduler state: no entry '", key, "' (saved by another schedule?)");
  return it->second;
}

int64_t int_entry(const FlatState& sd, const std::string& key) {
  const Tensor& t = entry(sd, key);
  GRAFT_CHECK(t.numel() == 1, "scheduler state: '", key, "' must hold one value, got ",
              t.meta_str());
  return static_cast<int64_t>(t.to(DType::Int64).to_vector<int64_t>()[0]);
}

std::vector<double> lrs_entry(const FlatState& sd, const std::string& key, size_t groups) {
  const Tensor& t = entry(sd, key);
  GRAFT_CHECK(t.dim() == 1 && static_cast<size_t>(t.numel()) == groups, "scheduler state: '", key,
              "' holds ", t.meta_str(), " but the optimizer has ", groups, " parameter groups");
  return t.to(DType::Float64).to_vector<double>();
}

Tensor int_tensor(int64_t v) { return tensor<int64_t>(std::vector<int64_t>{v}, Shape{}); }

// Prefixes every key of `child` with "<index>." into `out`, and back.
void put_child(FlatState& out, size_t index, const FlatState& child) {
  for (const auto& [k, t] : child) out[std::to_string(index) + "." + k] = t;
}
FlatState get_child(const FlatState& sd, size_t index) {
  const std::string prefix = std::to_string(index) + ".";
  FlatState child;
  for (const auto& [k, t] : sd)
    if (k.rfind(prefix, 0) == 0) child[k.substr(prefix.size())] = t;
  return child;
}
}  // namespace

// ---------------------------------------------------------------- base

void LRScheduler::init() {
  base_lrs_.clear();
  for (ParamGroup& g : opt_.param_groups()) {
    if (!g.initial_lr) g.initial_lr = g.lr();  // torch: group.setdefault('initial_lr', lr)
    base_lrs_.push_back(*g.initial_lr);
  }
  step_count_ = 0;
  step();
}

std::vector<double> LRScheduler::current_lrs() const {
  std::vector<double> lrs;
  for (const ParamGroup& g : opt_.param_groups()) lrs.push_back(g.lr());
  return lrs;
}

void LRScheduler::apply(const std::vector<double>& lrs) {
  auto& groups = opt_.param_groups();
  GRAFT_CHECK(lrs.size() == groups.size(), "LR scheduler: optimizer has ", groups.size(),
              " parameter groups but the scheduler was built for ", lrs.size());
  // Assigned unchecked, as torch does: e.g. OneCycleLR's final step() (past
  // the last optimizer step) overshoots to a slightly negative lr in torch too.
  // An invalid lr is still caught by the next optimizer step().
  for (size_t i = 0; i < groups.size(); ++i) groups[i].options.lr = lrs[i];
  last_lr_ = lrs;
}

void LRScheduler::step() {
  ++step_count_;
  ++last_epoch_;
  apply(get_lr());
}

FlatState LRScheduler::state_dict() const {
  FlatState sd;
  sd["last_epoch"] = int_tensor(last_epoch_);
  sd["step_count"] = int_tensor(step_count_);
  sd["base_lrs"] = tensor<double>(base_lrs_);
  sd["last_lr"] = tensor<double>(last_lr_);
  return sd;
}

void LRScheduler::load_state_dict(const FlatState& sd) {
  const size_t groups = opt_.param_groups().size();
  // Parsed into locals first: a bad dict leaves the scheduler unchanged.
  const int64_t last_epoch = int_entry(sd, "last_epoch"), step_count = int_entry(sd, "step_count");
  std::vector<double> base = lrs_entry(sd, "base_lrs", groups);
  std::vector<double> last = lrs_entry(sd, "last_lr", groups);
  last_epoch_ = last_epoch;
  step_count_ = step_count;
  base_lrs_ = std::move(base);
  last_lr_ = std::move(last);
}

void LRScheduler::step_to(int64_t epoch) {
  ++step_count_;
  last_epoch_ = epoch;
  auto closed = closed_form_lr();
  apply(closed ? *closed : get_lr());
}

// ---------------------------------------------------------------- StepLR

StepLR::StepLR(Optimizer& opt, int64_t step_size, double gamma)
    : LRScheduler(opt), step_size_(step_size), gamma_(gamma) {
  GRAFT_CHECK(step_size > 0, "StepLR: step_size must be positive, got ", step_size);
  init();
}

std::vector<double> StepLR::get_lr() {
  std::vector<double> lrs = current_lrs();
  if (last_epoch_ == 0 || last_epoch_ % step_size_ != 0) return lrs;
  for (double& lr : lrs) lr = lr * gamma_;
  return lrs;
}

std::optional<std::vector<double>> StepLR::closed_form_lr() {
  std::vector<double> lrs;
  const double e = static_cast<double>(last_epoch_ / step_size_);
  for (double b : base_lrs_) lrs.push_back(b * std::pow(gamma_, e));
  return lrs;
}

// ---------------------------------------------------------------- MultiStepLR

MultiStepLR::MultiStepLR(Optimizer& opt, std::vector<int64_t> milestones, double gamma)
    : LRScheduler(opt), milestones_(std::move(milestones)), gamma_(gamma) {
  std::sort(milestones_.begin(), milestones_.end());
  init();
}

int64_t MultiStepLR::count(int64_t epoch) const {
  return std::count(milestones_.begin(), milestones_.end(), epoch);
}

std::vector<double> MultiStepLR::get_lr() {
  std::vector<double> lrs = current_lrs();
  const int64_t n = count(last_epoch_);
  if (n == 0) return lrs;
  for (double& lr : lrs) lr = lr * std::pow(gamma_, static_cast<double>(n));
  return lrs;
}

std::optional<std::vector<double>> MultiStepLR::closed_form_lr() {
  const auto passed =
      std::upper_bound(milestones_.begin(), milestones_.end(), last_epoch_) - milestones_.begin();
  std::vector<double> lrs;
  for (double b : base_lrs_) lrs.push_back(b * std::pow(gamma_, static_cast<double>(passed)));
  return lrs;
}

// ---------------------------------------------------------------- CosineAnnealingLR

CosineAnnealingLR::CosineAnnealingLR(Optimizer& opt, int64_t t_max, double eta_min)
    : LRScheduler(opt), t_max_(t_max), eta_min_(eta_min) {
  GRAFT_CHECK(t_max > 0, "CosineAnnealingLR: t_max must be positive, got ", t_max);
  init();
}

std::vector<double> CosineAnnealingLR::get_lr() {
  std::vector<double> lrs = current_lrs();
  const double e = static_cast<double>(last_epoch_);
  const double t = static_cast<double>(t_max_);
  if (last_epoch_ == 0) return lrs;
  if (step_count_ == 1 && last_epoch_ > 0) {
    for (size_t i = 0; i < lrs.size(); ++i)
      lrs[i] = eta_min_ + (base_lrs_[i] - eta_min_) * (1 + std::cos(e * kPi / t)) / 2;
  } else if ((last_epoch_ - 1 - t_max_) % (2 * t_max_) == 0) {
    for (size_t i = 0; i < lrs.size(); ++i)
      lrs[i] = lrs[i] + (base_lrs_[i] - eta_min_) * (1 - std::cos(kPi / t)) / 2;
  } else {
    for (double& lr : lrs)
      lr = (1 + std::cos(kPi * e / t)) / (1 + std::cos(kPi * (e - 1) / t)) * (lr - eta_min_) +
           eta_min_;
  }
  return lrs;
}

std::optional<std::vector<double>> CosineAnnealingLR::closed_form_lr() {
  const double e = static_cast<double>(last_epoch_);
  const double t = static_cast<double>(t_max_);
  std::vector<double> lrs;
  for (double b : base_lrs_)
    lrs.push_back(eta_min_ + (b - eta_min_) * (1 + std::cos(kPi * e / t)) / 2);
  return lrs;
}

// ---------------------------------------------------------------- LinearLR

LinearLR::LinearLR(Optimizer& opt, double start_factor, double end_factor, int64_t total_iters)
    : LRScheduler(opt),
      start_factor_(start_factor),
      end_factor_(end_factor),
      total_iters_(total_iters) {
  GRAFT_CHECK(start_factor > 0 && start_factor <= 1,
              "LinearLR: start_factor must be in (0, 1], got ", start_factor);
  GRAFT_CHECK(end_factor >= 0 && end_factor <= 1, "LinearLR: end_factor must be in [0, 1], got ",
              end_factor);
  GRAFT_CHECK(total_iters > 0, "LinearLR: total_iters must be positive, got ", total_iters);
  init();
}

std::vector<double> LinearLR::get_lr() {
  std::vector<double> lrs = current_lrs();
  if (last_epoch_ == 0) {
    for (double& lr : lrs) lr = lr * start_factor_;
    return lrs;
  }
  if (last_epoch_ > total_iters_) return lrs;
  const double diff = end_factor_ - start_factor_;
  for (double& lr : lrs)
    lr = lr * (1. + diff / (static_cast<double>(total_iters_) * start_factor_ +
                            static_cast<double>(last_epoch_ - 1) * diff));
  return lrs;
}

std::optional<std::vector<double>> LinearLR::closed_form_lr() {
  std::vector<double> lrs;
  const double done = static_cast<double>(std::min(total_iters_, last_epoch_));
  for (double b : base_lrs_)
    lrs.push_back(b * (start_factor_ +
                       (end_factor_ - start_factor_) * done / static_cast<double>(total_iters_)));
  return lrs;
}

// ---------------------------------------------------------------- OneCycleLR

namespace {
enum Value { kInitialLr = 0, kMaxLr, kMinLr, kMaxMomentum, kBaseMomentum };
}

OneCycleLR::OneCycleLR(Optimizer& opt, OneCycleOptions o) : LRScheduler(opt), o_(std::move(o)) {
  auto& groups = opt.param_groups();
  GRAFT_CHECK(o_.total_steps > 0, "OneCycleLR: total_steps must be positive, got ", o_.total_steps);
  GRAFT_CHECK(o_.pct_start >= 0 && o_.pct_start <= 1,
              "OneCycleLR: pct_start must be in [0, 1], got ", o_.pct_start);
  GRAFT_CHECK(o_.max_lr.size() == 1 || o_.max_lr.size() == groups.size(), "OneCycleLR: expected ",
              groups.size(), " values for max_lr (one per group) or one, got ", o_.max_lr.size());
  const double total = static_cast<double>(o_.total_steps);
  if (o_.three_phase) {
    phases_ = {{o_.pct_start * total - 1, kInitialLr, kMaxLr, kMaxMomentum, kBaseMomentum},
               {2 * o_.pct_start * total - 2, kMaxLr, kInitialLr, kBaseMomentum, kMaxMomentum},
               {total - 1, kInitialLr, kMinLr, kMaxMomentum, kMaxMomentum}};
  } else {
    phases_ = {{o_.pct_start * total - 1, kInitialLr, kMaxLr, kMaxMomentum, kBaseMomentum},
               {total - 1, kMaxLr, kMinLr, kBaseMomentum, kMaxMomentum}};
  }
  if (o_.cycle_momentum) {
    GRAFT_CHECK(opt.defaults().momentum || opt.defaults().betas, "OneCycleLR: optimizer ",
                opt.name(), " has no momentum to cycle (set cycle_momentum = false)");
    use_beta1_ = opt.defaults().betas.has_value();
  }
  for (size_t i = 0; i < groups.size(); ++i) {
    const double max_lr = o_.max_lr.size() == 1 ? o_.max_lr[0] : o_.max_lr[i];
    const double initial = max_lr / o_.div_factor;
    values_.push_back(
        {initial, max_lr, initial / o_.final_div_factor, o_.max_momentum, o_.base_momentum});
    groups[i].initial_lr = initial;
    if (o_.cycle_momentum) {
      if (use_beta1_) {
        (*groups[i].options.betas)[0] = o_.max_momentum;
      } else {
        groups[i].options.momentum = o_.max_momentum;
      }
    }
  }
  init();
}

double OneCycleLR::anneal(double start, double end, double pct) const {
  if (o_.anneal_cos) {
    const double cos_out = std::cos(kPi * pct) + 1;
    return end + (start - end) / 2.0 * cos_out;
  }
  return (end - start) * pct + start;
}

std::vector<double> OneCycleLR::get_lr() {
  const int64_t step_num = last_epoch_;
  GRAFT_CHECK(step_num <= o_.total_steps, "OneCycleLR: tried to step ", step_num + 1,
              " times; the specified number of total steps is ", o_.total_steps);
  auto& groups = opt_.param_groups();
  std::vector<double> lrs;
  for (size_t g = 0; g < groups.size(); ++g) {
    const auto& v = values_[g];
    double start_step = 0, lr = 0, momentum = 0;
    for (size_t i = 0; i < phases_.size(); ++i) {
      const Phase& ph = phases_[i];
      if (static_cast<double>(step_num) <= ph.end_step || i + 1 == phases_.size()) {
        const double pct =
            (static_cast<double>(step_num) - start_step) / (ph.end_step - start_step);
        lr = anneal(v[ph.start_lr], v[ph.end_lr], pct);
        momentum = anneal(v[ph.start_m], v[ph.end_m], pct);
        break;
      }
      start_step = ph.end_step;
    }
    lrs.push_back(lr);
    if (o_.cycle_momentum) {
      if (use_beta1_) {
        (*groups[g].options.betas)[0] = momentum;
      } else {
        groups[g].options.momentum = momentum;
      }
    }
  }
  return lrs;
}

// ---------------------------------------------------------------- composition

ChainedScheduler::ChainedScheduler(std::vector<std::shared_ptr<LRScheduler>> schedulers)
    : schedulers_(std::move(schedulers)) {
  GRAFT_CHECK(!schedulers_.empty(), "ChainedScheduler: no schedulers given");
  for (const auto& s : schedulers_)
    GRAFT_CHECK(&s->optimizer() == &schedulers_[0]->optimizer(),
                "ChainedScheduler: all schedulers must belong to the same optimizer");
}

void ChainedScheduler::step() {
  for (auto& s : schedulers_) s->step();
}

SequentialLR::SequentialLR(Optimizer& opt, std::vector<std::shared_ptr<LRScheduler>> schedulers,
                           std::vector<int64_t> milestones)
    : schedulers_(std::move(schedulers)), milestones_(std::move(milestones)) {
  GRAFT_CHECK(!schedulers_.empty(), "SequentialLR: no schedulers given");
  for (size_t i = 0; i < schedulers_.size(); ++i)
    GRAFT_CHECK(&schedulers_[i]->optimizer() == &opt, "SequentialLR: scheduler ", i,
                " belongs to a different optimizer");
  GRAFT_CHECK(milestones_.size() + 1 == schedulers_.size(),
              "SequentialLR: expected one milestone fewer than schedulers, got ",
              schedulers_.size(), " schedulers and ", milestones_.size(), " milestones");
  GRAFT_CHECK(std::is_sorted(milestones_.begin(), milestones_.end()),
              "SequentialLR: milestones must be increasing");
  // As torch: reset the lrs, undo the schedulers' initial steps, then redo
  // the first scheduler's initial step.
  for (ParamGroup& g : opt.param_groups()) g.set_lr(*g.initial_lr);
  for (auto& s : schedulers_) s->last_epoch_ -= 1;
  schedulers_[0]->step_count_ = 0;
  schedulers_[0]->step();
  last_lr_ = schedulers_[0]->last_lr();
}

FlatState SequentialLR::state_dict() const {
  FlatState sd;
  sd["last_epoch"] = int_tensor(last_epoch_);
  sd["last_lr"] = tensor<double>(last_lr_);
  for (size_t i = 0; i < schedulers_.size(); ++i) put_child(sd, i, schedulers_[i]->state_dict());
  return sd;
}

void SequentialLR::load_state_dict(const FlatState& sd) {
  const int64_t last_epoch = int_entry(sd, "last_epoch");
  std::vector<double> last = lrs_entry(sd, "last_lr", last_lr_.size());
  // A child that rejects its entries leaves every child as it was.
  std::vector<FlatState> before;
  for (const auto& s : schedulers_) before.push_back(s->state_dict());
  try {
    for (size_t i = 0; i < schedulers_.size(); ++i)
      schedulers_[i]->load_state_dict(get_child(sd, i));
  } catch (...) {
    for (size_t i = 0; i < schedulers_.size(); ++i) schedulers_[i]->load_state_dict(before[i]);
    throw;
  }
  last_epoch_ = last_epoch;
  last_lr_ = std::move(last);
}

void SequentialLR::step() {
  ++last_epoch_;
  const size_t idx =
      std::upper_bound(milestones_.begin(), milestones_.end(), last_epoch_) - milestones_.begin();
  LRScheduler& s = *schedulers_[idx];
  if (idx > 0 && milestones_[idx - 1] == last_epoch_) {
    s.step_to(0);
  } else {
    s.step();
  }
  last_lr_ = s.last_lr();
}

}  // namespace graft::optim
