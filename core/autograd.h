// Reverse-mode autograd: a dynamic tape of Nodes recorded by op front ends.
//
// Each differentiable op output holds `grad_fn`, a Node with one edge per
// differentiable input. Leaves that require grad are reached through an
// AccumulateGrad node that adds into `.grad`. backward() sorts the graph
// topologically from the root and runs each node once all its consumers
// have contributed their gradients. No node is created under NoGradGuard or
// when no input requires grad, so frozen sub-graphs cost nothing in backward.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace graft::autograd {

struct Node;

struct Edge {
  std::shared_ptr<Node> fn;  // null: this input needs no gradient
  uint32_t input_nr = 0;
  bool valid() const { return fn != nullptr; }
};

// A tensor saved for backward. Unpacking checks that nothing modified it in
// place since it was saved (version counter) and that the graph was not freed.
class SavedTensor {
 public:
  SavedTensor() = default;
  explicit SavedTensor(const Tensor& t);
  Tensor unpack(const char* node_name) const;
  void release() {
    data_ = Tensor();
    released_ = true;
  }
  bool defined() const { return data_.defined(); }

 private:
  Tensor data_;
  uint64_t version_ = 0;
  bool released_ = false;
};

struct Node : std::enable_shared_from_this<Node> {
  virtual ~Node() = default;
  // Gradients w.r.t. each input (one per edge; undefined = zero).
  virtual std::vector<Tensor> apply(const Tensor& grad_output) = 0;
  virtual std::string name() const = 0;
  // Frees saved tensors after a backward pass without retain_graph.
  virtual void release_saved() {}

  std::vector<Edge> next_edges;
  uint64_t sequence_nr = 0;  // creation order; larger runs earlier on ties

  // Gradient hooks of the tensor this node produced (Tensor::register_hook on
  // a non-leaf), run on the incoming gradient before apply(). A retain_grad()
  // registers one of them.
  std::shared_ptr<HookList<GradHook>> pre_hooks;
  Tensor call_pre_hooks(Tensor grad);
};

// Node whose formula is a lambda over its saved tensors; this is what
// core/derivatives.cpp builds for every op.
struct FunctionNode final : Node {
  using Backward = std::function<std::vector<Tensor>(FunctionNode& self, const Tensor& grad)>;
  FunctionNode(std::string name, Backward fn) : name_(std::move(name)), fn_(std::move(fn)) {}
  std::vector<Tensor> apply(const Tensor& grad_output) override;
  std::string name() const override { return name_; }
  void release_saved() override;

  // Saved tensor i, checked against in-place modification.
  Tensor saved(size_t i) const;
  // Whether input i needs a gradient (formulas skip the others).
  bool needs_grad(size_t i) const { return i < next_edges.size() && next_edges[i].valid(); }

  std::vector<SavedTensor> saved_tensors;
  bool released = false;

 private:
  std::string name_;
  Backward fn_;
};

struct AccumulateGrad final : Node {
  // Runs as soon as it is ready (torch gives AccumulateGrad the highest
  // sequence number too): a leaf's .grad and its hooks come right after its
  // last contribution, which is what lets data-parallel training start a
  // gradient bucket's all-reduce while the rest of backward still runs.
  explicit AccumulateGrad(std::shared_ptr<TensorImpl> leaf_impl) : leaf(std::move(leaf_impl)) {
    sequence_nr = UINT64_MAX;
  }
  std::vector<Tensor> apply(const Tensor& grad_output) override;
  std::string name() const override { return "AccumulateGrad"; }
  std::shared_ptr<TensorImpl> leaf;
};

// ---- grad mode ----
bool grad_enabled();
void set_grad_enabled(bool enabled);

// The edge through which gradient flows into `t` (invalid if t needs none).
Edge gradient_edge(const Tensor& t);
// True when grad mode is on and any input requires grad.
bool any_requires_grad(std::initializer_list<const Tensor*> inputs);
bool any_requires_grad(const std::vector<Tensor>& inputs);

// Records `node` as the grad_fn of `output`, with one edge per input.
// Inputs that need no gradient get an invalid edge (their grad slot is skipped).
void set_history(const Tensor& output, const std::shared_ptr<Node>& node,
                 const std::vector<Tensor>& inputs);

// Runs backward from `roots` with the given gradients.
void run_backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& grads,
                  bool retain_graph);

// Computes d(outputs)/d(inputs) without touching any .grad (used by gradcheck).
// Inputs are any tensors of the graph that require grad: leaves or
// intermediate results. An input the outputs do not depend on gets zeros.
// create_graph (double backward) is not supported: true is an error.
std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& grad_outputs = {}, bool retain_graph = false,
                         bool create_graph = false);

// Profiling (graft bench --profile): when set, called on this thread before
// (done=false) and after (done=true) each node's apply() in backward.
// nullptr turns it off.
using NodeObserver = std::function<void(const Node& node, bool done)>;
void set_node_observer(NodeObserver observer);
// The sequence number the next recorded node will get: the nodes recorded
// between two reads belong to the code that ran in between.
uint64_t peek_sequence_nr();

// Throws the "double backward is not supported" error when create_graph is set.
void check_no_create_graph(bool create_graph, const char* caller);

}  // namespace graft::autograd

namespace graft {

// RAII: disables graph recording in this scope (torch.no_grad()).
class NoGradGuard {
 public:
  NoGradGuard() : prev_(autograd::grad_enabled()) { autograd::set_grad_enabled(false); }
  ~NoGradGuard() { autograd::set_grad_enabled(prev_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};

class EnableGradGuard {
 public:
  EnableGradGuard() : prev_(autograd::grad_enabled()) { autograd::set_grad_enabled(true); }
  ~EnableGradGuard() { autograd::set_grad_enabled(prev_); }
  EnableGradGuard(const EnableGradGuard&) = delete;
  EnableGradGuard& operator=(const EnableGradGuard&) = delete;

 private:
  bool prev_;
};

}  // namespace graft
