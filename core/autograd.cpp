// The autograd engine: graph recording helpers and backward execution.
#include "core/autograd.h"

#include <algorithm>
#include <queue>
#include <unordered_map>
#include <unordered_set>

#include "core/ops.h"

namespace graft::autograd {

namespace {
thread_local bool t_grad_enabled = true;
std::atomic<uint64_t> g_sequence{0};

// Gradient capture for autograd::grad(): leaf impl -> slot, and for
// non-leaf inputs, their grad_fn -> slot.
thread_local std::unordered_map<const TensorImpl*, Tensor>* t_capture = nullptr;
thread_local std::unordered_map<const Node*, Tensor>* t_capture_nodes = nullptr;
thread_local NodeObserver t_node_observer;

// Runs hooks on `grad` in order; a defined result must keep the shape.
Tensor run_grad_hooks(const HookList<GradHook>* hooks, Tensor grad, const char* where) {
  if (!hooks) return grad;
  for (const GradHook& hook : hooks->snapshot()) {
    Tensor replaced = hook(grad);
    if (!replaced.defined()) continue;
    GRAFT_CHECK(replaced.sizes() == grad.sizes(), "a gradient hook on ", where, " returned shape ",
                shape_str(replaced.sizes()), " for a gradient of shape ", shape_str(grad.sizes()));
    grad = replaced;
  }
  return grad;
}

// Adds `g` into impl->grad, owning the buffer (the incoming gradient may alias
// other tensors).
void accumulate_into_grad(TensorImpl& impl, Tensor g) {
  if (g.dtype() != impl.dtype) g = g.to(impl.dtype);
  if (!impl.grad) {
    Tensor owned = g.contiguous();
    if (owned.is_same(g)) owned = g.clone();
    impl.grad = owned.impl_ptr();
  } else {
    Tensor acc(impl.grad);
    add_(acc, g);
  }
}
}  // namespace

bool grad_enabled() { return t_grad_enabled; }
void set_grad_enabled(bool enabled) { t_grad_enabled = enabled; }
void set_node_observer(NodeObserver observer) { t_node_observer = std::move(observer); }
uint64_t peek_sequence_nr() { return g_sequence.load(); }

SavedTensor::SavedTensor(const Tensor& t) : data_(t) {
  if (t.defined()) version_ = t.storage()->version();
}

Tensor SavedTensor::unpack(const char* node_name) const {
  GRAFT_CHECK(!released_, "Trying to backward through the graph a second time (in ", node_name,
              "): saved tensors were freed after the first backward. Pass retain_graph=true "
              "to the first backward call if you need to backward twice.");
  if (!data_.defined()) return data_;
  GRAFT_CHECK(
      data_.storage()->version() == version_, "one of the tensors needed by ", node_name,
      " for gradient computation has been modified by an in-place operation: ", data_.meta_str(),
      " is at version ", data_.storage()->version(), "; expected version ", version_);
  return data_;
}

std::vector<Tensor> FunctionNode::apply(const Tensor& grad_output) {
  GRAFT_CHECK(
      !released, "Trying to backward through the graph a second time (in ", name_,
      "). Pass retain_graph=true to the first backward call if you need to backward twice.");
  return fn_(*this, grad_output);
}

Tensor FunctionNode::saved(size_t i) const {
  GRAFT_CHECK(i < saved_tensors.size(), name_, ": saved tensor ", i, " out of range");
  return saved_tensors[i].unpack(name_.c_str());
}

void FunctionNode::release_saved() {
  for (auto& s : saved_tensors) s.release();
  released = true;
}

Tensor Node::call_pre_hooks(Tensor grad) {
  grad = run_grad_hooks(pre_hooks.get(), std::move(grad), "the output of an op");
  if (t_capture_nodes) {
    auto it = t_capture_nodes->find(this);
    if (it != t_capture_nodes->end()) it->second = grad;
  }
  return grad;
}

std::vector<Tensor> AccumulateGrad::apply(const Tensor& grad_output) {
  const Tensor g = run_grad_hooks(leaf->grad_hooks.get(), grad_output, "a leaf");
  if (t_capture) {
    auto it = t_capture->find(leaf.get());
    if (it != t_capture->end()) it->second = it->second.defined() ? add(it->second, g) : g;
    return {};  // autograd::grad() never touches .grad
  }
  accumulate_into_grad(*leaf, g);
  return {};
}

void check_no_create_graph(bool create_graph, const char* caller) {
  GRAFT_CHECK(!create_graph, caller,
              ": create_graph=true (double backward) is not supported: graft's backward "
              "formulas do not record a graph of their own");
}

Edge gradient_edge(const Tensor& t) {
  if (!t.defined() || !t.requires_grad()) return {};
  TensorImpl* impl = t.impl();
  if (impl->grad_fn) return {impl->grad_fn, impl->output_nr};
  auto acc = impl->grad_accumulator.lock();
  if (!acc) {
    acc = std::make_shared<AccumulateGrad>(t.impl_ptr());
    impl->grad_accumulator = acc;
  }
  return {acc, 0};
}

bool any_requires_grad(std::initializer_list<const Tensor*> inputs) {
  if (!t_grad_enabled) return false;
  for (const Tensor* t : inputs)
    if (t && t->defined() && t->requires_grad()) return true;
  return false;
}

bool any_requires_grad(const std::vector<Tensor>& inputs) {
  if (!t_grad_enabled) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

void set_history(const Tensor& output, const std::shared_ptr<Node>& node,
                 const std::vector<Tensor>& inputs) {
  node->sequence_nr = g_sequence.fetch_add(1);
  node->next_edges.clear();
  node->next_edges.reserve(inputs.size());
  for (const Tensor& in : inputs) node->next_edges.push_back(gradient_edge(in));
  TensorImpl* impl = output.impl();
  impl->grad_fn = node;
  impl->output_nr = 0;
  impl->requires_grad = true;
}

namespace {

void execute(const std::vector<Edge>& roots, const std::vector<Tensor>& grads, bool retain_graph) {
  // Count, for every node reachable from the roots, how many edges point at it.
  std::unordered_map<Node*, int> dependencies;
  std::vector<Node*> stack;
  std::unordered_set<Node*> seen;
  for (const Edge& e : roots) {
    if (e.valid() && seen.insert(e.fn.get()).second) stack.push_back(e.fn.get());
  }
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    for (const Edge& e : n->next_edges) {
      if (!e.valid()) continue;
      ++dependencies[e.fn.get()];
      if (seen.insert(e.fn.get()).second) stack.push_back(e.fn.get());
    }
  }

  // Ready queue ordered by sequence number: later-created nodes first.
  auto cmp = [](const std::shared_ptr<Node>& a, const std::shared_ptr<Node>& b) {
    return a->sequence_nr < b->sequence_nr;
  };
  std::priority_queue<std::shared_ptr<Node>, std::vector<std::shared_ptr<Node>>, decltype(cmp)>
      ready(cmp);
  std::unordered_map<Node*, Tensor> pending;  // accumulated grad per node input 0

  auto accumulate = [&](const Edge& e, const Tensor& g) {
    if (!e.valid() || !g.defined()) return;
    GRAFT_CHECK(e.input_nr == 0, "autograd: multi-output nodes are not supported");
    Tensor& slot = pending[e.fn.get()];
    slot = slot.defined() ? add(slot, g) : g;
  };

  for (size_t i = 0; i < roots.size(); ++i) accumulate(roots[i], grads[i]);
  for (const Edge& e : roots) {
    if (e.valid() && dependencies[e.fn.get()] == 0) {
      dependencies[e.fn.get()] = -1;  // queued
      ready.push(e.fn);
    }
  }

  while (!ready.empty()) {
    std::shared_ptr<Node> node = ready.top();
    ready.pop();
    Tensor grad = std::move(pending[node.get()]);
    pending.erase(node.get());
    std::vector<Tensor> input_grads;
    if (grad.defined()) {
      grad = node->call_pre_hooks(std::move(grad));
      if (t_node_observer) t_node_observer(*node, false);
      input_grads = node->apply(grad);
      if (t_node_observer) t_node_observer(*node, true);
    }
    if (!retain_graph) node->release_saved();
    GRAFT_CHECK(input_grads.empty() || input_grads.size() == node->next_edges.size(), node->name(),
                " returned ", input_grads.size(), " gradients for ", node->next_edges.size(),
                " inputs");
    for (size_t i = 0; i < node->next_edges.size(); ++i) {
      const Edge& e = node->next_edges[i];
      if (!e.valid()) continue;
      if (!input_grads.empty()) accumulate(e, input_grads[i]);
      if (--dependencies[e.fn.get()] == 0) {
        dependencies[e.fn.get()] = -1;
        ready.push(e.fn);
      }
    }
  }
}

Tensor root_grad(const Tensor& root, const Tensor& given) {
  if (given.defined()) {
    GRAFT_CHECK(given.sizes() == root.sizes(), "backward: gradient has shape ",
                shape_str(given.sizes()), " but the tensor has shape ", shape_str(root.sizes()));
    return given.to(root.dtype());
  }
  GRAFT_CHECK(root.numel() == 1,
              "backward: grad can be implicitly created only for scalar outputs; this tensor has "
              "shape ",
              shape_str(root.sizes()), ", so pass a gradient of that shape");
  return ones_like(root);
}

}  // namespace

void run_backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& grads,
                  bool retain_graph) {
  NoGradGuard no_grad;
  std::vector<Edge> edges;
  std::vector<Tensor> root_grads;
  for (size_t i = 0; i < roots.size(); ++i) {
    GRAFT_CHECK(roots[i].requires_grad(), "backward: element ", i,
                " of tensors does not require grad and has no grad_fn");
    edges.push_back(gradient_edge(roots[i]));
    root_grads.push_back(root_grad(roots[i], i < grads.size() ? grads[i] : Tensor()));
  }
  execute(edges, root_grads, retain_graph);
}

std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& grad_outputs, bool retain_graph,
                         bool create_graph) {
  check_no_create_graph(create_graph, "autograd::grad");
  std::unordered_map<const TensorImpl*, Tensor> capture;
  std::unordered_map<const Node*, Tensor> capture_nodes;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& in = inputs[i];
    GRAFT_CHECK(in.defined() && in.requires_grad(), "autograd::grad: input ", i,
                " does not require grad, so no gradient flows to it");
    if (in.is_leaf()) {
      capture[in.impl()] = Tensor();
    } else {
      capture_nodes[in.grad_fn().get()] = Tensor();
    }
  }
  t_capture = &capture;
  t_capture_nodes = &capture_nodes;
  try {
    run_backward(outputs, grad_outputs, retain_graph);
  } catch (...) {
    t_capture = nullptr;
    t_capture_nodes = nullptr;
    throw;
  }
  t_capture = nullptr;
  t_capture_nodes = nullptr;
  std::vector<Tensor> result;
  for (const Tensor& in : inputs) {
    const Tensor g = in.is_leaf() ? capture[in.impl()] : capture_nodes[in.grad_fn().get()];
    result.push_back(g.defined() ? g : zeros_like(in));
  }
  return result;
}

}  // namespace graft::autograd

namespace graft {

HookHandle Tensor::register_hook(autograd::GradHook hook) const {
  GRAFT_CHECK(requires_grad(),
              "register_hook: cannot register a hook on a tensor that does not require grad");
  if (is_leaf()) return add_hook(impl()->grad_hooks, std::move(hook));
  return add_hook(grad_fn()->pre_hooks, std::move(hook));
}

void Tensor::retain_grad() const {
  GRAFT_CHECK(requires_grad(), "retain_grad: the tensor does not require grad");
  if (is_leaf() || impl()->retains_grad) return;
  impl()->retains_grad = true;
  // Weak: the tensor owns its grad_fn, which owns this hook.
  std::weak_ptr<TensorImpl> weak = impl_ptr();
  register_hook([weak](const Tensor& g) {
    auto target = weak.lock();
    if (target && !autograd::t_capture) autograd::accumulate_into_grad(*target, g);
    return Tensor();
  });
}

bool Tensor::retains_grad() const { return defined() && impl()->retains_grad; }

}  // namespace graft
