// Storage: a reference-counted block of bytes on one device. Views of a tensor
// share one Storage, and with it the version counter that autograd uses to
// detect in-place changes to saved tensors.
#pragma once

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>

#include "core/device.h"

namespace graft {

class StorageImpl {
 public:
  // Allocates `nbytes` on `device` (64-byte aligned on the CPU).
  StorageImpl(size_t nbytes, Device device);
  // Wraps memory owned elsewhere (an mmap'ed file, a caller's buffer); `deleter`
  // runs when the last reference goes away. A null deleter borrows the memory.
  StorageImpl(void* data, size_t nbytes, Device device, std::function<void(void*)> deleter);
  ~StorageImpl();
  StorageImpl(const StorageImpl&) = delete;
  StorageImpl& operator=(const StorageImpl&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }

  uint64_t version() const { return version_.load(std::memory_order_relaxed); }
  void bump_version() { version_.fetch_add(1, std::memory_order_relaxed); }

 private:
  void* data_ = nullptr;
  size_t nbytes_ = 0;
  Device device_;
  bool owned_ = false;
  std::function<void(void*)> deleter_;
  std::atomic<uint64_t> version_{0};
};

using Storage = std::shared_ptr<StorageImpl>;

}  // namespace graft
