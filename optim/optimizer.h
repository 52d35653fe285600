// Optimizers with parameter groups, following torch.optim (1.13) semantics.
//
//   SGD opt({ParamGroup{backbone, {.lr = 0.001}}, ParamGroup{head}},
//           SGDOptions{.lr = 0.01, .momentum = 0.9, .weight_decay = 5e-4});
//   opt.zero_grad(); loss.backward(); opt.step(); sched.step();
//
// Each group lists (name, tensor) parameters plus option overrides; options a
// group leaves unset take the optimizer's defaults when the group is added
// (torch's param_group.setdefault). Per-parameter state (momentum buffers,
// Adam moments, step counts) lives in the optimizer, indexed like torch's
// state_dict: parameters are numbered in group order.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace graft::optim {

using NamedParams = std::vector<std::pair<std::string, Tensor>>;

using Betas = std::array<double, 2>;

// Every per-group hyperparameter, once, under torch's name: X(type, name).
// ParamGroupOptions' fields, the defaults a group takes, the param_groups
// entries of Optimizer::state_dict()/load_state_dict() and the keys of
// train::parse_group_spec (the double-valued ones) all come from this list.
#define GRAFT_PARAM_GROUP_OPTIONS(X) \
  X(double, lr)                      \
  X(double, momentum)                \
  X(double, dampening)               \
  X(bool, nesterov)                  \
  X(double, weight_decay)            \
  X(Betas, betas)                    \
  X(double, eps)                     \
  X(bool, amsgrad)                   \
  X(bool, maximize)

// Hyperparameters of one group. Unset fields take the optimizer's defaults;
// fields an optimizer does not use stay unset (SGD has no betas, Adam no momentum).
// (Default member initializers keep `{.lr = 0.01}` free of -Wmissing-field-initializers.)
struct ParamGroupOptions {
#define GRAFT_OPTION_FIELD(type, name) std::optional<type> name = std::nullopt;
  GRAFT_PARAM_GROUP_OPTIONS(GRAFT_OPTION_FIELD)
#undef GRAFT_OPTION_FIELD
};

// The type of the option behind a `&ParamGroupOptions::name` (double for lr).
template <class Member>
using GroupOptionType =
    typename std::remove_reference_t<decltype(std::declval<ParamGroupOptions&>().*
                                              std::declval<Member>())>::value_type;

// Calls f("name", &ParamGroupOptions::name) for every option, in list order.
template <class F>
void for_each_group_option(F&& f) {
#define GRAFT_OPTION_VISIT(type, name) f(#name, &ParamGroupOptions::name);
  GRAFT_PARAM_GROUP_OPTIONS(GRAFT_OPTION_VISIT)
#undef GRAFT_OPTION_VISIT
}

struct ParamGroup {
  NamedParams params;
  ParamGroupOptions options;
  // Set by the first LR scheduler attached to the optimizer (torch's group['initial_lr']).
  std::optional<double> initial_lr = std::nullopt;

  ParamGroup() = default;
  ParamGroup(NamedParams named, ParamGroupOptions o = {})
      : params(std::move(named)), options(std::move(o)) {}
  // Unnamed parameters are called "param<k>" (k = position in the group) in messages.
  ParamGroup(const std::vector<Tensor>& tensors, ParamGroupOptions o = {});

  double lr() const;       // throws when unset (group not added to an optimizer yet)
  void set_lr(double lr);  // validates: finite and >= 0
};

// Per-parameter state; tensors stay undefined until the first step that uses them.
struct ParamState {
  Tensor momentum_buffer;  // SGD with momentum != 0
  Tensor exp_avg;          // Adam/AdamW
  Tensor exp_avg_sq;
  Tensor max_exp_avg_sq;  // amsgrad
  int64_t step = 0;       // Adam/AdamW steps taken (torch keeps a float32 tensor)
};

// Flat, ordered form of torch's optimizer.state_dict() (and, in
// optim/scheduler.h, of a scheduler's) that a .pth writer can
// emit as nested dicts:
//   "state.<i>.momentum_buffer" / ".exp_avg" / ".exp_avg_sq" / ".max_exp_avg_sq"
//       tensors like the parameter; "state.<i>.step" 0-d float32 (as torch)
//   "param_groups.<g>.<option>" 0-d float64 (bool options: 0-d bool),
//   "param_groups.<g>.betas" float64 [2], "param_groups.<g>.params" int64 [n]
// where <i> numbers parameters across groups in order, as torch does.
using FlatState = std::map<std::string, Tensor>;

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // Adds a group; unset options take the defaults. Errors (naming the parameter)
  // on a parameter already in a group, a frozen (requires_grad=false), non-leaf,
  // non-contiguous or non-floating parameter, and on invalid hyperparameters.
  void add_param_group(ParamGroup group);

  // Sets every parameter's .grad to none (torch's set_to_none=True).
  void zero_grad();
  // One update of every parameter that has a gradient; others are skipped.
  virtual void step() = 0;

  std::vector<ParamGroup>& param_groups() { return groups_; }
  const std::vector<ParamGroup>& param_groups() const { return groups_; }
  const ParamGroupOptions& defaults() const { return defaults_; }
  // State of parameter `index` in `group` (index within that group).
  const ParamState& state(size_t group, size_t index) const;
  virtual const char* name() const = 0;

  FlatState state_dict() const;
  // Restores state and group hyperparameters saved by state_dict() of an
  // optimizer built over the same parameter layout (same group sizes and
  // shapes); the continuation is bit-identical to an uninterrupted run.
  void load_state_dict(const FlatState& sd);

 protected:
  explicit Optimizer(ParamGroupOptions defaults) : defaults_(std::move(defaults)) {}
  void init_groups(std::vector<ParamGroup> groups);
  // Checks a fully resolved group's hyperparameters (torch's ValueErrors).
  virtual void validate(const ParamGroupOptions& o) const = 0;
  ParamState& mutable_state(size_t group, size_t index) { return state_[group][index]; }

 private:
  ParamGroupOptions defaults_;
  std::vector<ParamGroup> groups_;
  std::vector<std::vector<ParamState>> state_;  // [group][param]
};

// ---- SGD ----
struct SGDOptions {
  double lr = -1;  // required, as in torch (no default learning rate)
  double momentum = 0;
  double dampening = 0;
  double weight_decay = 0;
  bool nesterov = false;
  bool maximize = false;
};

// torch.optim.SGD: d = g + wd*p; buf = d on the first step, then
// buf = momentum*buf + (1-dampening)*d; d = nesterov ? d + momentum*buf : buf; p -= lr*d.
class SGD final : public Optimizer {
 public:
  SGD(std::vector<ParamGroup> groups, SGDOptions defaults);
  SGD(const NamedParams& params, SGDOptions defaults)
      : SGD(std::vector<ParamGroup>{ParamGroup(params)}, defaults) {}
  void step() override;
  const char* name() const override { return "SGD"; }

 protected:
  void validate(const ParamGroupOptions& o) const override;
};

// ---- Adam / AdamW ----
struct AdamOptions {
  double lr = 1e-3;
  std::array<double, 2> betas = {0.9, 0.999};
  double eps = 1e-8;
  double weight_decay = 0;
  bool amsgrad = false;
  bool maximize = false;
};
struct AdamWOptions {
  double lr = 1e-3;
  std::array<double, 2> betas = {0.9, 0.999};
  double eps = 1e-8;
  double weight_decay = 1e-2;  // torch's AdamW default
  bool amsgrad = false;
  bool maximize = false;
};

// torch.optim.Adam (L2 penalty added to the gradient) and, with `decoupled`,
// torch.optim.AdamW (p *= 1 - lr*wd before the moment update).
class AdamBase : public Optimizer {
 public:
  void step() override;

 protected:
  AdamBase(std::vector<ParamGroup> groups, ParamGroupOptions defaults, bool decoupled);
  void validate(const ParamGroupOptions& o) const override;

 private:
  bool decoupled_;
};

class Adam final : public AdamBase {
 public:
  Adam(std::vector<ParamGroup> groups, AdamOptions defaults = {});
  Adam(const NamedParams& params, AdamOptions defaults = {})
      : Adam(std::vector<ParamGroup>{ParamGroup(params)}, defaults) {}
  const char* name() const override { return "Adam"; }
};

class AdamW final : public AdamBase {
 public:
  AdamW(std::vector<ParamGroup> groups, AdamWOptions defaults = {});
  AdamW(const NamedParams& params, AdamWOptions defaults = {})
      : AdamW(std::vector<ParamGroup>{ParamGroup(params)}, defaults) {}
  const char* name() const override { return "AdamW"; }
};

}  // namespace graft::optim
