// Hook lists with removable handles, shared by tensor gradient hooks
// (core/autograd.h) and module forward hooks (nn/module.h):
//
//   HookHandle h = x.register_hook([](const Tensor& g) { return g * 2; });
//   ...
//   h.remove();  // idempotent; the list may already be gone
#pragma once

#include <cstdint>
#include <algorithm>
#include <functional>
#include <memory>
#include <utility>
#include <vector>

namespace graft {

// Removes one hook from the list it was added to. Default-constructed or
// already-removed handles do nothing.
class HookHandle {
 public:
  HookHandle() = default;
  explicit HookHandle(std::function<void()> remover) : remover_(std::move(remover)) {}
  void remove() {
    if (remover_) std::exchange(remover_, nullptr)();
  }

 private:
  std::function<void()> remover_;
};

// Hooks in registration order.
template <typename Fn>
class HookList : public std::enable_shared_from_this<HookList<Fn>> {
 public:
  // The list must be owned by a shared_ptr: the handle holds it weakly.
  HookHandle add(Fn fn) {
    const uint64_t id = next_id_++;
    hooks_.emplace_back(id, std::move(fn));
    std::weak_ptr<HookList> self = this->shared_from_this();
    return HookHandle([self, id] {
      // erase/remove_if rather than std::erase_if: nvcc compiles the CUDA
      // kernels, which include this header, as C++17.
      if (auto list = self.lock()) {
        auto& hooks = list->hooks_;
        hooks.erase(std::remove_if(hooks.begin(), hooks.end(),
                                   [id](const auto& h) { return h.first == id; }),
                    hooks.end());
      }
    });
  }
  bool empty() const { return hooks_.empty(); }
  // A copy, so a hook may remove itself (or add others) while the list runs.
  std::vector<Fn> snapshot() const {
    std::vector<Fn> fns;
    for (const auto& h : hooks_) fns.push_back(h.second);
    return fns;
  }

 private:
  std::vector<std::pair<uint64_t, Fn>> hooks_;
  uint64_t next_id_ = 0;
};

// Adds `fn` to the list in `slot`, creating the list on first use.
template <typename Fn>
HookHandle add_hook(std::shared_ptr<HookList<Fn>>& slot, Fn fn) {
  if (!slot) slot = std::make_shared<HookList<Fn>>();
  return slot->add(std::move(fn));
}

}  // namespace graft
