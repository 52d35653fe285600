// Per-thread scratch memory for CPU kernels (im2col columns, partial sums,
// cropped kernels).
// Each thread owns a few grow-only, 64-byte aligned slots that are reused
// across calls, so steady-state training allocates nothing in the conv path.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <memory>
#include <new>

namespace graft::cpu {

enum class WorkspaceSlot : int { Columns = 0, Partial = 1, Gather = 2, Kernel = 3, Count = 4 };

// Returns at least `count` elements of T for the calling thread in `slot`.
// Contents are unspecified; the pointer stays valid until the same thread asks
// the same slot for more memory.
template <typename T>
T* thread_workspace(WorkspaceSlot slot, size_t count) {
  struct Buffer {
    struct Free {
      void operator()(void* p) const { std::free(p); }
    };
    std::unique_ptr<void, Free> data;
    size_t bytes = 0;
  };
  thread_local Buffer buffers[static_cast<int>(WorkspaceSlot::Count)];
  Buffer& b = buffers[static_cast<int>(slot)];
  const size_t need = (count * sizeof(T) + 63) / 64 * 64;
  if (need > b.bytes) {
    b.data.reset();  // free first: peak memory is the new size, not old + new
    void* p = std::aligned_alloc(64, need);
    if (!p) throw std::bad_alloc();
    b.data.reset(p);
    b.bytes = need;
  }
  return static_cast<T*>(b.data.get());
}

}  // namespace graft::cpu
