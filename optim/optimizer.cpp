#include "optim/optimizer.h"

#include <cmath>
#include <set>
#include <sstream>

#include "core/autograd.h"
#include "core/ops.h"
#include "optim/kernels.h"

namespace graft::optim {

namespace {

// lr/momentum/... must be >= 0; written so NaN fails too.
void check_non_negative(const char* opt, const char* what, double v) {
  GRAFT_CHECK(v >= 0 && std::isfinite(v), opt, ": invalid ", what, " ", v,
              " (must be finite and >= 0)");
}

template <typename T>
void fill_default(std::optional<T>& field, const std::optional<T>& dflt) {
  if (!field && dflt) field = dflt;
}

// The gradient of `p` as the fused kernels need it: same dtype and device, contiguous.
Tensor kernel_grad(const std::string& name, const Tensor& p) {
  Tensor g = p.grad();
  GRAFT_CHECK(g.dtype() == p.dtype(), "optimizer step: gradient of '", name, "' has dtype ",
              dtype_name(g.dtype()), " but the parameter is ", dtype_name(p.dtype()));
  GRAFT_CHECK(g.device() == p.device(), "optimizer step: gradient of '", name, "' is on ",
              g.device().str(), " but the parameter is on ", p.device().str());
  GRAFT_CHECK(g.sizes() == p.sizes(), "optimizer step: gradient of '", name, "' has shape ",
              shape_str(g.sizes()), " but the parameter has shape ", shape_str(p.sizes()));
  return g.is_contiguous() ? g : g.contiguous();
}

void bump(const Tensor& t) { t.storage()->bump_version(); }

// Tensors of one fused kernel call (one device).
struct Bucket {
  Device device;
  bool init = false;  // SGD: buffers created this step
  std::vector<Tensor> params, grads, s1, s2, s3;
  std::vector<int64_t> steps;
};

Bucket& bucket_for(std::vector<Bucket>& buckets, Device device, bool init) {
  for (Bucket& b : buckets)
    if (b.device == device && b.init == init) return b;
  buckets.push_back(Bucket{device, init, {}, {}, {}, {}, {}, {}});
  return buckets.back();
}

// A group option as state_dict() saves it: 0-d float64, 0-d bool, or betas
// as float64 [2].
Tensor option_tensor(double v) { return scalar_tensor(v, opts(DType::Float64)); }
Tensor option_tensor(bool v) { return scalar_tensor(v ? 1 : 0, opts(DType::Bool)); }
Tensor option_tensor(const Betas& b) { return tensor<double>({b[0], b[1]}); }

// The option of type T that load_state_dict() reads from `value` (saved as
// option_tensor() writes it); `key` names it in errors.
template <class T>
T option_value(const Tensor& value, const char* opt, const std::string& key) {
  if constexpr (std::is_same_v<T, Betas>) {
    GRAFT_CHECK(value.numel() == 2, opt, ".load_state_dict: '", key, "' must hold two values, got ",
                value.meta_str());
    const auto b = value.to(DType::Float64).to_vector<double>();
    return Betas{b[0], b[1]};
  } else {
    GRAFT_CHECK(value.numel() == 1, opt, ".load_state_dict: '", key, "' must hold one value, got ",
                value.meta_str());
    if constexpr (std::is_same_v<T, bool>)
      return value.item() != 0;
    else
      return value.item();
  }
}

}  // namespace

// ---------------------------------------------------------------- ParamGroup

ParamGroup::ParamGroup(const std::vector<Tensor>& tensors, ParamGroupOptions o)
    : options(std::move(o)) {
  params.reserve(tensors.size());
  for (size_t k = 0; k < tensors.size(); ++k)
    params.emplace_back("param" + std::to_string(k), tensors[k]);
}

double ParamGroup::lr() const {
  GRAFT_CHECK(options.lr.has_value(), "param group has no lr yet (add it to an optimizer first)");
  return *options.lr;
}

void ParamGroup::set_lr(double value) {
  check_non_negative("set_lr", "learning rate", value);
  options.lr = value;
}

// ---------------------------------------------------------------- Optimizer

void Optimizer::init_groups(std::vector<ParamGroup> groups) {
  GRAFT_CHECK(!groups.empty(), name(), ": optimizer got an empty parameter list");
  for (ParamGroup& g : groups) add_param_group(std::move(g));
}

void Optimizer::add_param_group(ParamGroup group) {
  GRAFT_CHECK(!group.params.empty(), name(), ": parameter group ", groups_.size(),
              " has no parameters");
  ParamGroupOptions& o = group.options;
  for_each_group_option([&](const char*, auto field) { fill_default(o.*field, defaults_.*field); });
  validate(o);

  std::set<const TensorImpl*> seen;
  for (const auto& [pname, p] : group.params) {
    GRAFT_CHECK(p.defined(), name(), ": parameter '", pname, "' is an undefined tensor");
    GRAFT_CHECK(
        is_floating(p.dtype()) && (p.dtype() == DType::Float32 || p.dtype() == DType::Float64),
        name(), ": parameter '", pname, "' has dtype ", dtype_name(p.dtype()),
        "; only float32 and float64 parameters can be optimized");
    GRAFT_CHECK(p.is_leaf(), name(), ": parameter '", pname,
                "' is not a leaf tensor (it was computed by an op); optimize leaves only");
    GRAFT_CHECK(p.requires_grad(), name(), ": parameter '", pname,
                "' does not require grad (it is frozen); pass only trainable parameters "
                "(see optim::trainable())");
    GRAFT_CHECK(p.is_contiguous(), name(), ": parameter '", pname, "' ", p.meta_str(),
                " is not contiguous");
    GRAFT_CHECK(seen.insert(p.impl()).second, name(), ": parameter '", pname,
                "' appears twice in parameter group ", groups_.size());
    for (size_t gi = 0; gi < groups_.size(); ++gi)
      for (const auto& [other, q] : groups_[gi].params)
        GRAFT_CHECK(!q.is_same(p), name(), ": parameter '", pname,
                    "' is already in parameter group ", gi, " (as '", other,
                    "'); a parameter may appear in at most one group");
  }
  state_.emplace_back(group.params.size());
  groups_.push_back(std::move(group));
}

void Optimizer::zero_grad() {
  for (ParamGroup& g : groups_)
    for (auto& [pname, p] : g.params) p.zero_grad();
}

const ParamState& Optimizer::state(size_t group, size_t index) const {
  GRAFT_CHECK(group < state_.size() && index < state_[group].size(), name(), ": no parameter ",
              index, " in group ", group);
  return state_[group][index];
}

FlatState Optimizer::state_dict() const {
  FlatState sd;
  int64_t global = 0;
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    const ParamGroup& g = groups_[gi];
    const std::string gp = "param_groups." + std::to_string(gi) + ".";
    const ParamGroupOptions& o = g.options;
    for_each_group_option([&](const char* key, auto field) {
      if (o.*field) sd[gp + key] = option_tensor(*(o.*field));
    });
    if (g.initial_lr) sd[gp + "initial_lr"] = option_tensor(*g.initial_lr);
    std::vector<int64_t> idx;
    for (size_t k = 0; k < g.params.size(); ++k, ++global) {
      idx.push_back(global);
      const ParamState& st = state_[gi][k];
      const std::string sp = "state." + std::to_string(global) + ".";
      // Copies, so later steps do not change a saved dict.
      if (st.momentum_buffer.defined()) sd[sp + "momentum_buffer"] = st.momentum_buffer.clone();
      if (st.exp_avg.defined()) {
        sd[sp + "step"] = scalar_tensor(static_cast<double>(st.step), opts(DType::Float32));
        sd[sp + "exp_avg"] = st.exp_avg.clone();
        sd[sp + "exp_avg_sq"] = st.exp_avg_sq.clone();
      }
      if (st.max_exp_avg_sq.defined()) sd[sp + "max_exp_avg_sq"] = st.max_exp_avg_sq.clone();
    }
    sd[gp + "params"] = tensor<int64_t>(idx);
  }
  return sd;
}

void Optimizer::load_state_dict(const FlatState& sd) {
  // Everything is parsed and checked into copies first, so a bad dict leaves
  // the optimizer unchanged.
  std::vector<ParamGroupOptions> options;
  std::vector<std::optional<double>> initial_lrs;
  std::vector<std::vector<ParamState>> state = state_;
  std::vector<const Tensor*> flat;  // global index -> parameter
  std::vector<std::pair<size_t, size_t>> where;
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    options.push_back(groups_[gi].options);
    initial_lrs.push_back(groups_[gi].initial_lr);
    for (size_t k = 0; k < groups_[gi].params.size(); ++k) {
      flat.push_back(&groups_[gi].params[k].second);
      where.emplace_back(gi, k);
      state[gi][k] = ParamState{};
    }
  }

  std::set<size_t> groups_seen;
  for (const auto& [key, value] : sd) {
    GRAFT_CHECK(value.defined(), name(), ".load_state_dict: entry '", key, "' is undefined");
    const size_t dot1 = key.find('.');
    const size_t dot2 = dot1 == std::string::npos ? dot1 : key.find('.', dot1 + 1);
    GRAFT_CHECK(dot2 != std::string::npos, name(), ".load_state_dict: malformed key '", key, "'");
    const std::string section = key.substr(0, dot1);
    const std::string index_str = key.substr(dot1 + 1, dot2 - dot1 - 1);
    const std::string field = key.substr(dot2 + 1);
    GRAFT_CHECK(
        !index_str.empty() && index_str.find_first_not_of("0123456789") == std::string::npos,
        name(), ".load_state_dict: malformed index in key '", key, "'");
    const size_t index = std::stoul(index_str);
    if (section == "param_groups") {
      GRAFT_CHECK(index < groups_.size(), name(), ".load_state_dict: the dict has parameter group ",
                  index, " but the optimizer has ", groups_.size(), " groups");
      groups_seen.insert(index);
      ParamGroupOptions& o = options[index];
      bool is_option = false;
      // Explicit captures: clang 14 cannot capture structured bindings.
      for_each_group_option([&, &value = value, &key = key](const char* option, auto member) {
        if (field != option) return;
        o.*member = option_value<GroupOptionType<decltype(member)>>(value, name(), key);
        is_option = true;
      });
      if (is_option) continue;
      if (field == "params") {
        const auto ids = value.to(DType::Int64).to_vector<int64_t>();
        GRAFT_CHECK(ids.size() == groups_[index].params.size(), name(),
                    ".load_state_dict: saved group ", index, " has ", ids.size(),
                    " parameters but this optimizer's group has ", groups_[index].params.size());
        for (size_t k = 0; k < ids.size(); ++k)
          GRAFT_CHECK(ids[k] >= 0 && static_cast<size_t>(ids[k]) < flat.size() &&
                          where[ids[k]] == std::make_pair(index, k),
                      name(), ".load_state_dict: group ", index,
                      " parameter indices do not match this optimizer's layout");
      } else if (field == "initial_lr") {
        initial_lrs[index] = option_value<double>(value, name(), key);
      } else {
        GRAFT_FAIL(name(), ".load_state_dict: unknown key '", key, "'");
      }
    } else if (section == "state") {
      GRAFT_CHECK(index < flat.size(), name(), ".load_state_dict: state for parameter ", index,
                  " but the optimizer has ", flat.size(), " parameters");
      const Tensor& p = *flat[index];
      ParamState& st = state[where[index].first][where[index].second];
      if (field == "step") {
        const double s = value.item();
        GRAFT_CHECK(s >= 0 && s == std::floor(s), name(), ".load_state_dict: '", key,
                    "' is not a step count: ", s);
        st.step = static_cast<int64_t>(s);
        continue;
      }
      Tensor* slot = field == "momentum_buffer"  ? &st.momentum_buffer
                     : field == "exp_avg"        ? &st.exp_avg
                     : field == "exp_avg_sq"     ? &st.exp_avg_sq
                     : field == "max_exp_avg_sq" ? &st.max_exp_avg_sq
                                                 : nullptr;
      GRAFT_CHECK(slot != nullptr, name(), ".load_state_dict: unknown key '", key, "'");
      GRAFT_CHECK(value.sizes() == p.sizes(), name(), ".load_state_dict: '", key, "' has shape ",
                  shape_str(value.sizes()), " but parameter ", index, " ('",
                  groups_[where[index].first].params[where[index].second].first, "') has shape ",
                  shape_str(p.sizes()));
      // Like torch: state follows the parameter's dtype and device; a private copy.
      *slot = value.to(p.dtype()).to(p.device()).contiguous().clone();
    } else {
      GRAFT_FAIL(name(), ".load_state_dict: unknown key '", key, "'");
    }
  }
  GRAFT_CHECK(groups_seen.size() == groups_.size(), name(), ".load_state_dict: the dict has ",
              groups_seen.size(), " parameter groups but the optimizer has ", groups_.size());
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    validate(options[gi]);
    for (size_t k = 0; k < state[gi].size(); ++k) {
      const ParamState& st = state[gi][k];
      GRAFT_CHECK(
          st.exp_avg.defined() == st.exp_avg_sq.defined() && (st.exp_avg.defined() || st.step == 0),
          name(), ".load_state_dict: incomplete Adam state for parameter '",
          groups_[gi].params[k].first, "'");
    }
  }
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    groups_[gi].options = options[gi];
    groups_[gi].initial_lr = initial_lrs[gi];
  }
  state_ = std::move(state);
}

// ---------------------------------------------------------------- SGD

SGD::SGD(std::vector<ParamGroup> groups, SGDOptions d)
    : Optimizer(ParamGroupOptions{.lr = d.lr,
                                  .momentum = d.momentum,
                                  .dampening = d.dampening,
                                  .nesterov = d.nesterov,
                                  .weight_decay = d.weight_decay,
                                  .maximize = d.maximize}) {
  init_groups(std::move(groups));
}

void SGD::validate(const ParamGroupOptions& o) const {
  GRAFT_CHECK(o.lr && *o.lr >= 0 && std::isfinite(*o.lr), "SGD: invalid learning rate ",
              o.lr.value_or(-1), " (lr is required and must be finite and >= 0)");
  check_non_negative("SGD", "momentum", *o.momentum);
  check_non_negative("SGD", "dampening", *o.dampening);
  check_non_negative("SGD", "weight_decay", *o.weight_decay);
  GRAFT_CHECK(!*o.nesterov || (*o.momentum > 0 && *o.dampening == 0),
              "SGD: nesterov momentum requires a momentum and zero dampening");
}

void SGD::step() {
  NoGradGuard no_grad;
  auto& groups = param_groups();
  for (size_t gi = 0; gi < groups.size(); ++gi) {
    ParamGroup& group = groups[gi];
    const ParamGroupOptions& o = group.options;
    validate(o);
    const bool use_momentum = *o.momentum != 0;
    std::vector<Bucket> buckets;
    for (size_t k = 0; k < group.params.size(); ++k) {
      const auto& [pname, p] = group.params[k];
      if (!p.grad().defined()) continue;
      ParamState& st = mutable_state(gi, k);
      bool init = false;
      if (use_momentum && !st.momentum_buffer.defined()) {
        st.momentum_buffer = empty_like(p);
        init = true;
      }
      Bucket& b = bucket_for(buckets, p.device(), init);
      b.params.push_back(p);
      b.grads.push_back(kernel_grad(pname, p));
      if (use_momentum) b.s1.push_back(st.momentum_buffer);
    }
    for (Bucket& b : buckets) {
      const SGDHyper h{*o.lr,       *o.momentum, *o.dampening, *o.weight_decay,
                       *o.nesterov, *o.maximize, b.init};
      kernel::sgd_step(b.device)(b.params, b.grads, b.s1, h);
      for (const Tensor& t : b.params) bump(t);
      for (const Tensor& t : b.s1) bump(t);
    }
  }
}

// ---------------------------------------------------------------- Adam / AdamW

AdamBase::AdamBase(std::vector<ParamGroup> groups, ParamGroupOptions defaults, bool decoupled)
    : Optimizer(std::move(defaults)), decoupled_(decoupled) {
  init_groups(std::move(groups));
}

namespace {
// Adam and AdamW take the same options; AdamW differs in its weight decay
// default and in decoupling it.
template <class Options>
ParamGroupOptions adam_group_defaults(const Options& d) {
  return {.lr = d.lr,
          .weight_decay = d.weight_decay,
          .betas = d.betas,
          .eps = d.eps,
          .amsgrad = d.amsgrad,
          .maximize = d.maximize};
}
}  // namespace

Adam::Adam(std::vector<ParamGroup> groups, AdamOptions d)
    : AdamBase(std::move(groups), adam_group_defaults(d), false) {}

AdamW::AdamW(std::vector<ParamGroup> groups, AdamWOptions d)
    : AdamBase(std::move(groups), adam_group_defaults(d), true) {}

void AdamBase::validate(const ParamGroupOptions& o) const {
  const char* opt = decoupled_ ? "AdamW" : "Adam";
  check_non_negative(opt, "learning rate", *o.lr);
  check_non_negative(opt, "epsilon", *o.eps);
  check_non_negative(opt, "weight_decay", *o.weight_decay);
  for (int i = 0; i < 2; ++i)
    GRAFT_CHECK((*o.betas)[i] >= 0 && (*o.betas)[i] < 1, opt, ": invalid beta parameter at index ",
                i, ": ", (*o.betas)[i], " (must be in [0, 1))");
}

void AdamBase::step() {
  NoGradGuard no_grad;
  auto& groups = param_groups();
  for (size_t gi = 0; gi < groups.size(); ++gi) {
    ParamGroup& group = groups[gi];
    const ParamGroupOptions& o = group.options;
    validate(o);
    std::vector<Bucket> buckets;
    for (size_t k = 0; k < group.params.size(); ++k) {
      const auto& [pname, p] = group.params[k];
      if (!p.grad().defined()) continue;
      ParamState& st = mutable_state(gi, k);
      if (!st.exp_avg.defined()) {  // torch: len(state) == 0
        st.step = 0;
        st.exp_avg = zeros_like(p);
        st.exp_avg_sq = zeros_like(p);
      }
      if (*o.amsgrad && !st.max_exp_avg_sq.defined()) st.max_exp_avg_sq = zeros_like(p);
      st.step += 1;
      Bucket& b = bucket_for(buckets, p.device(), false);
      b.params.push_back(p);
      b.grads.push_back(kernel_grad(pname, p));
      b.s1.push_back(st.exp_avg);
      b.s2.push_back(st.exp_avg_sq);
      if (*o.amsgrad) b.s3.push_back(st.max_exp_avg_sq);
      b.steps.push_back(st.step);
    }
    for (Bucket& b : buckets) {
      const AdamHyper h{*o.lr,           (*o.betas)[0], (*o.betas)[1], *o.eps,
                        *o.weight_decay, *o.amsgrad,    *o.maximize,   decoupled_};
      kernel::adam_step(b.device)(b.params, b.grads, b.s1, b.s2, b.s3, b.steps, h);
      for (const auto* list : {&b.params, &b.s1, &b.s2, &b.s3})
        for (const Tensor& t : *list) bump(t);
    }
  }
}

}  // namespace graft::optim
