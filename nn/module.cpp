#include "nn/module.h"

#include <charconv>
#include <cmath>
#include <ostream>
#include <sstream>

#include "core/autograd.h"
#include "core/ops.h"

namespace graft::nn {

Tensor Module::forward(const Tensor&) {
  GRAFT_FAIL(type_name_, " has no forward(Tensor); call its children instead");
}

Tensor Module::operator()(const Tensor& input) {
  if (!forward_pre_hooks_ && !forward_hooks_) return forward(input);
  Tensor x = input;
  if (forward_pre_hooks_) {
    for (const auto& hook : forward_pre_hooks_->snapshot()) {
      Tensor replaced = hook(*this, x);
      if (replaced.defined()) x = replaced;
    }
  }
  Tensor y = forward(x);
  if (forward_hooks_) {
    for (const auto& hook : forward_hooks_->snapshot()) {
      Tensor replaced = hook(*this, x, y);
      if (replaced.defined()) y = replaced;
    }
  }
  return y;
}

HookHandle Module::register_forward_pre_hook(ForwardPreHook hook) {
  return add_hook(forward_pre_hooks_, std::move(hook));
}

HookHandle Module::register_forward_hook(ForwardHook hook) {
  return add_hook(forward_hooks_, std::move(hook));
}

void Module::check_new_name(const std::string& name) const {
  GRAFT_CHECK(!name.empty() && name.find('.') == std::string::npos, type_name_,
              ": invalid member name '", name, "' (must be non-empty and contain no '.')");
  auto taken = [&](const auto& list) {
    for (const auto& e : list)
      if (e.name == name) return true;
    return false;
  };
  GRAFT_CHECK(!taken(params_) && !taken(buffers_) && !taken(children_), type_name_, ": member '",
              name, "' is already registered");
}

void Module::register_parameter(const std::string& name, Tensor* slot, bool requires_grad) {
  check_new_name(name);
  if (slot->defined()) slot->set_requires_grad(requires_grad);
  params_.push_back({name, slot});
}

void Module::register_buffer(const std::string& name, Tensor* slot) {
  check_new_name(name);
  buffers_.push_back({name, slot});
}

ModulePtr Module::register_module(const std::string& name, ModulePtr module) {
  check_new_name(name);
  ChildEntry e;
  e.name = name;
  e.owned = std::make_shared<ModulePtr>(std::move(module));
  auto cell = e.owned;
  e.get = [cell]() -> ModulePtr { return *cell; };
  e.set = [cell](const ModulePtr& m) { *cell = m; };
  children_.push_back(std::move(e));
  return *children_.back().owned;
}

// ---------------------------------------------------------------- listings

void Module::collect(const std::string& prefix, bool params, bool buffers, Named<Tensor>& out,
                     bool recurse) const {
  if (params)
    for (const auto& e : params_)
      if (e.slot->defined()) out.emplace_back(prefix + e.name, *e.slot);
  if (buffers)
    for (const auto& e : buffers_)
      if (e.slot->defined()) out.emplace_back(prefix + e.name, *e.slot);
  if (!recurse) return;
  for (const auto& c : children_)
    if (ModulePtr m = c.get()) m->collect(prefix + c.name + ".", params, buffers, out, true);
}

Named<Tensor> Module::named_parameters(bool recurse) const {
  Named<Tensor> out;
  collect("", true, false, out, recurse);
  return out;
}

Named<Tensor> Module::named_buffers(bool recurse) const {
  Named<Tensor> out;
  collect("", false, true, out, recurse);
  return out;
}

std::vector<Tensor> Module::parameters(bool recurse) const {
  std::vector<Tensor> out;
  for (auto& [n, t] : named_parameters(recurse)) out.push_back(t);
  return out;
}

std::vector<Tensor> Module::buffers(bool recurse) const {
  std::vector<Tensor> out;
  for (auto& [n, t] : named_buffers(recurse)) out.push_back(t);
  return out;
}

ModuleState Module::state_dict() const {
  ModuleState out;
  collect("", true, true, out, true);
  return out;
}

Named<ModulePtr> Module::named_children() const {
  Named<ModulePtr> out;
  for (const auto& c : children_)
    if (ModulePtr m = c.get()) out.emplace_back(c.name, std::move(m));
  return out;
}

std::vector<ModulePtr> Module::children() const {
  std::vector<ModulePtr> out;
  for (auto& [n, m] : named_children()) out.push_back(m);
  return out;
}

Named<ModulePtr> Module::named_modules() const {
  Named<ModulePtr> out;
  // const_cast: shared_from_this on a const object still yields the owning
  // pointer; listings never modify the module.
  ModulePtr self;
  try {
    self = const_cast<Module*>(this)->shared_from_this();
  } catch (const std::bad_weak_ptr&) {
    GRAFT_FAIL(type_name_, ": named_modules() needs the module to be held by a std::shared_ptr");
  }
  out.emplace_back("", self);
  for (auto& [name, m] : named_children())
    for (auto& [sub, d] : m->named_modules())
      out.emplace_back(sub.empty() ? name : name + "." + sub, d);
  return out;
}

void Module::apply(const std::function<void(Module&)>& fn) {
  fn(*this);
  for (auto& m : children()) m->apply(fn);
}

std::vector<ModulePtr> Module::modules() const {
  std::vector<ModulePtr> out;
  for (auto& [n, m] : named_modules()) out.push_back(m);
  return out;
}

ModulePtr Module::child(const std::string& name) const {
  for (const auto& c : children_)
    if (c.name == name) return c.get();
  GRAFT_FAIL(type_name_, " has no child module '", name, "'");
}

ModulePtr Module::find_module(const std::string& dotted_name) const {
  const Module* cur = this;
  ModulePtr holder;
  size_t pos = 0;
  while (pos <= dotted_name.size()) {
    size_t dot = dotted_name.find('.', pos);
    std::string part =
        dotted_name.substr(pos, dot == std::string::npos ? std::string::npos : dot - pos);
    ModulePtr next;
    for (const auto& c : cur->children_)
      if (c.name == part) next = c.get();
    if (!next) return nullptr;
    holder = next;
    cur = holder.get();
    if (dot == std::string::npos) break;
    pos = dot + 1;
  }
  return holder;
}

Tensor Module::find_tensor(const std::string& dotted_name) const {
  const size_t dot = dotted_name.rfind('.');
  const Module* owner = this;
  ModulePtr holder;
  if (dot != std::string::npos) {
    holder = find_module(dotted_name.substr(0, dot));
    if (!holder) return Tensor();
    owner = holder.get();
  }
  const std::string leaf = dot == std::string::npos ? dotted_name : dotted_name.substr(dot + 1);
  for (const auto& e : owner->params_)
    if (e.name == leaf) return *e.slot;
  for (const auto& e : owner->buffers_)
    if (e.name == leaf) return *e.slot;
  return Tensor();
}

ModulePtr Module::replace_module(const std::string& name, ModulePtr module) {
  GRAFT_CHECK(module != nullptr, "replace_module('", name, "'): the new module is null");
  const size_t dot = name.rfind('.');
  if (dot != std::string::npos) {
    ModulePtr parent = find_module(name.substr(0, dot));
    GRAFT_CHECK(parent != nullptr, type_name_, ": replace_module: no module '", name.substr(0, dot),
                "'");
    return parent->replace_module(name.substr(dot + 1), std::move(module));
  }
  for (auto& c : children_) {
    if (c.name != name) continue;
    ModulePtr old = c.get();
    c.set(module);
    return old;
  }
  GRAFT_FAIL(type_name_, ": replace_module: no child module '", name, "'");
}

// ---------------------------------------------------------------- modes

void Module::train(bool on) {
  training_ = on;
  for (auto& m : children()) m->train(on);
}

template <typename Fn>
void Module::for_each_tensor(Fn&& fn) {
  for (auto& e : params_)
    if (e.slot->defined()) fn(*e.slot);
  for (auto& e : buffers_)
    if (e.slot->defined()) fn(*e.slot);
  for (auto& m : children()) m->for_each_tensor(fn);
}

namespace {

// Points `dst`'s TensorImpl at `src`'s data (torch's `param.data = ...`), so
// every handle sharing dst's impl, an optimizer's included, sees the change.
void set_data(const Tensor& dst, const Tensor& src) {
  TensorImpl* d = dst.impl();
  TensorImpl* s = src.impl();
  d->storage = s->storage;
  d->sizes = s->sizes;
  d->strides = s->strides;
  d->offset = s->offset;
  d->dtype = s->dtype;
}

}  // namespace

void Module::to(Device device) {
  NoGradGuard g;
  for_each_tensor([&](Tensor& t) {
    if (t.device() == device) return;
    set_data(t, t.detach().to(device));
    if (Tensor gr = t.grad(); gr.defined()) set_data(gr, gr.to(device));
  });
}

void Module::to(DType dtype) {
  GRAFT_CHECK(is_floating(dtype), type_name_, ".to(", dtype_name(dtype),
              "): only floating-point dtypes are allowed");
  NoGradGuard g;
  for_each_tensor([&](Tensor& t) {
    if (!is_floating(t.dtype()) || t.dtype() == dtype) return;
    set_data(t, t.detach().to(dtype));
    if (Tensor gr = t.grad(); gr.defined()) set_data(gr, gr.to(dtype));
  });
}

int64_t Module::num_parameters(bool trainable_only) const {
  int64_t n = 0;
  for (const auto& t : parameters())
    if (!trainable_only || t.requires_grad()) n += t.numel();
  return n;
}

void Module::requires_grad_(bool on) {
  for (auto& t : parameters()) t.set_requires_grad(on);
}

void Module::zero_grad() {
  for (auto& t : parameters()) t.zero_grad();
}

// ---------------------------------------------------------------- repr

namespace {

// Python's _addindent: indents every line but the first.
std::string add_indent(const std::string& s, int spaces) {
  std::string out;
  const std::string pad(static_cast<size_t>(spaces), ' ');
  for (char c : s) {
    out += c;
    if (c == '\n') out += pad;
  }
  return out;
}

}  // namespace

std::string Module::repr() const {
  std::vector<std::string> extra_lines;
  const std::string extra = extra_repr();
  if (!extra.empty()) {
    std::istringstream is(extra);
    for (std::string line; std::getline(is, line);) extra_lines.push_back(line);
  }
  std::vector<std::string> child_lines;
  for (auto& [name, m] : named_children())
    child_lines.push_back("(" + name + "): " + add_indent(m->repr(), 2));
  std::string s = type_name_ + "(";
  if (extra_lines.size() == 1 && child_lines.empty()) {
    s += extra_lines[0];
  } else if (!extra_lines.empty() || !child_lines.empty()) {
    for (const auto& l : extra_lines) s += "\n  " + l;
    for (const auto& l : child_lines) s += "\n  " + l;
    s += "\n";
  }
  return s + ")";
}

std::ostream& operator<<(std::ostream& os, const Module& m) { return os << m.repr(); }

std::string py_float(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  // Shortest round-trip digits, then Python's repr layout: positional for
  // exponents in [-4, 16), scientific otherwise with a 2-digit exponent.
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);
  std::string sci(buf, res.ptr);
  const size_t e = sci.find('e');
  std::string mant = sci.substr(0, e);
  const int exp10 = std::stoi(sci.substr(e + 1));
  std::string sign;
  if (mant[0] == '-') {
    sign = "-";
    mant.erase(0, 1);
  }
  std::string digits;
  for (char c : mant)
    if (c != '.') digits += c;
  if (exp10 < -4 || exp10 >= 16) {
    std::string m = digits.substr(0, 1);
    if (digits.size() > 1) m += "." + digits.substr(1);
    const int ae = exp10 < 0 ? -exp10 : exp10;
    return sign + m + "e" + (exp10 < 0 ? "-" : "+") + (ae < 10 ? "0" : "") + std::to_string(ae);
  }
  std::string out;
  if (exp10 < 0) {
    out = "0." + std::string(static_cast<size_t>(-exp10 - 1), '0') + digits;
  } else {
    const size_t int_len = static_cast<size_t>(exp10) + 1;
    if (digits.size() <= int_len) {
      out = digits + std::string(int_len - digits.size(), '0') + ".0";
    } else {
      out = digits.substr(0, int_len) + "." + digits.substr(int_len);
    }
  }
  return sign + out;
}

std::string py_tuple(int64_t a, int64_t b) {
  return "(" + std::to_string(a) + ", " + std::to_string(b) + ")";
}

}  // namespace graft::nn
