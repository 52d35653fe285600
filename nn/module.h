// Module: the base of every layer and model (torch.nn.Module).
//
// A module registers its parameters, buffers and children by name, in order.
// Registration binds a *slot*: the member variable (a Tensor or a
// std::shared_ptr<SomeModule>) that the module's forward() uses. The registry
// reads through the slot, so assigning the member (`model->fc =
// std::make_shared<Linear>(512, 10)`) and replace_module("fc", ...) are the
// same operation and names stay right either way. Because registries point
// into the object, modules are neither copyable nor movable; they live in
// std::shared_ptr.
//
// Recursive names are joined with "." exactly as PyTorch does, so
// state_dict() keys are byte-identical to torchvision's ("layer1.0.conv1.weight",
// "bn1.num_batches_tracked"): per module, parameters then buffers in
// registration order, then each child recursively.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"

namespace graft::nn {

class Module;
using ModulePtr = std::shared_ptr<Module>;

template <typename T>
using Named = std::vector<std::pair<std::string, T>>;
// A module's parameters and buffers by dotted name, in registration order:
// the module's own tensors, not copies (io::load_state_dict writes into them).
// What Module::state_dict() returns; the same type as io::NamedTensors.
using ModuleState = Named<Tensor>;

class Module : public std::enable_shared_from_this<Module> {
 public:
  explicit Module(std::string type_name) : type_name_(std::move(type_name)) {}
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;
  Module(Module&&) = delete;
  Module& operator=(Module&&) = delete;

  // The class name printed in the repr ("Conv2d", "ResNet").
  const std::string& type_name() const { return type_name_; }

  virtual Tensor forward(const Tensor& input);
  // forward() with the hooks around it. Models call their children this way
  // (`(*conv1)(x)`), so hooks on any submodule fire.
  Tensor operator()(const Tensor& input);

  // ---- hooks (torch's register_forward_pre_hook / register_forward_hook) ----
  // A pre-hook sees the input before forward(); a defined return value
  // replaces it. A forward hook sees input and output after forward(); a
  // defined return value replaces the output. Hooks run in registration order;
  // HookHandle::remove() unregisters one.
  using ForwardPreHook = std::function<Tensor(Module& module, const Tensor& input)>;
  using ForwardHook =
      std::function<Tensor(Module& module, const Tensor& input, const Tensor& output)>;
  HookHandle register_forward_pre_hook(ForwardPreHook hook);
  HookHandle register_forward_hook(ForwardHook hook);
  // Whether this module (not its children) has a forward or pre-forward hook.
  bool has_hooks() const {
    return (forward_pre_hooks_ && !forward_pre_hooks_->empty()) ||
           (forward_hooks_ && !forward_hooks_->empty());
  }

  // ---- registries (direct members only) ----
  // Parameters and buffers whose slot holds an undefined tensor (a conv
  // without bias) are skipped by every listing, like PyTorch's None entries.
  Named<Tensor> named_parameters(bool recurse = true) const;
  Named<Tensor> named_buffers(bool recurse = true) const;
  std::vector<Tensor> parameters(bool recurse = true) const;
  std::vector<Tensor> buffers(bool recurse = true) const;
  // Pre-order: ("", this) first, then every descendant with its dotted name.
  Named<ModulePtr> named_modules() const;
  Named<ModulePtr> named_children() const;
  std::vector<ModulePtr> children() const;
  std::vector<ModulePtr> modules() const;

  // Calls fn on this module and then every descendant, pre-order (torch's
  // Module.apply order aside: parents first here). Works during construction,
  // before the module is owned by a shared_ptr.
  void apply(const std::function<void(Module&)>& fn);

  // Parameters then buffers per module, in registration order, recursively.
  ModuleState state_dict() const;

  // Direct child by name (throws when absent) and dotted-path lookup
  // ("layer1.0.bn2"); null when absent.
  ModulePtr child(const std::string& name) const;
  ModulePtr find_module(const std::string& dotted_name) const;
  // Parameter or buffer by dotted name; undefined tensor when absent.
  Tensor find_tensor(const std::string& dotted_name) const;

  // Replaces the direct child `name` (or a dotted path "layer4.1.bn2"). The
  // slot's static type must accept the new module; a mismatch is an error
  // naming both types. Returns the previous child.
  ModulePtr replace_module(const std::string& name, ModulePtr module);

  // ---- modes ----
  // Sets training mode on this module and every descendant.
  virtual void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

  // Moves (or converts) every parameter and buffer in place: existing Tensor
  // handles, including those an optimizer holds, see the new data.
  // Gradients move along. to(DType) converts floating-point tensors only
  // (num_batches_tracked stays int64).
  void to(Device device);
  void to(DType dtype);

  int64_t num_parameters(bool trainable_only = false) const;
  // Sets requires_grad on every parameter (freezing when false).
  void requires_grad_(bool on);
  // Drops every parameter's .grad (set_to_none semantics).
  void zero_grad();

  // PyTorch's module repr: "Name(extra)" or a multi-line tree of children.
  std::string repr() const;
  // The text between the parentheses for leaf layers ("3, 64, kernel_size=(7, 7), ...").
  virtual std::string extra_repr() const { return {}; }

 protected:
  // Binds a member slot. The tensor in the slot (if defined) gets
  // requires_grad = true for parameters.
  void register_parameter(const std::string& name, Tensor* slot, bool requires_grad = true);
  void register_buffer(const std::string& name, Tensor* slot);
  // Binds a member std::shared_ptr<M> slot; replace_module() assigns it
  // through a checked downcast.
  template <typename M>
  void register_module(const std::string& name, std::shared_ptr<M>* slot) {
    check_new_name(name);
    ChildEntry e;
    e.name = name;
    e.get = [slot]() -> ModulePtr { return *slot; };
    e.set = [slot, name](const ModulePtr& m) {
      auto typed = std::dynamic_pointer_cast<M>(m);
      GRAFT_CHECK(typed != nullptr || m == nullptr, "replace_module: child '", name,
                  "' must stay compatible with its slot type; got ", m->type_name());
      *slot = std::move(typed);
    };
    children_.push_back(std::move(e));
  }
  // Registers a child owned by the registry itself (Sequential's "0", "1", ...).
  ModulePtr register_module(const std::string& name, ModulePtr module);

  bool training_ = true;

 private:
  struct TensorEntry {
    std::string name;
    Tensor* slot;
  };
  struct ChildEntry {
    std::string name;
    std::function<ModulePtr()> get;
    std::function<void(const ModulePtr&)> set;
    std::shared_ptr<ModulePtr> owned;  // set for registry-owned children
  };
  void check_new_name(const std::string& name) const;
  void collect(const std::string& prefix, bool params, bool buffers, Named<Tensor>& out,
               bool recurse) const;
  template <typename Fn>
  void for_each_tensor(Fn&& fn);

  std::string type_name_;
  std::shared_ptr<HookList<ForwardPreHook>> forward_pre_hooks_;
  std::shared_ptr<HookList<ForwardHook>> forward_hooks_;
  std::vector<TensorEntry> params_;
  std::vector<TensorEntry> buffers_;
  std::vector<ChildEntry> children_;
};

std::ostream& operator<<(std::ostream& os, const Module& m);

// Python's repr() of a float ("1e-05", "0.1", "1.0"), for extra_repr().
std::string py_float(double v);
// "(7, 7)" from a pair of ints.
std::string py_tuple(int64_t a, int64_t b);
inline const char* py_bool(bool b) { return b ? "True" : "False"; }

}  // namespace graft::nn
