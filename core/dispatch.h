// Per-device kernel tables. Each op's kernel type is declared once (in
// core/kernels.h, or optim/kernels.h for the optimizer steps) with
// GRAFT_DECLARE_KERNEL, defined once (core/dispatch.cpp, optim/kernels.cpp)
// with GRAFT_DEFINE_KERNEL, and each backend registers its implementation from
// its own source file with GRAFT_REGISTER_KERNEL. The batched matrix product:
//
//   // core/kernels.h
//   using BmmFn = void (*)(const Tensor& a, const Tensor& b, const Tensor& out, bool accumulate);
//   GRAFT_DECLARE_KERNEL(bmm, BmmFn)
//   // core/dispatch.cpp
//   GRAFT_DEFINE_KERNEL(bmm, BmmFn)
//   // kernels/cpu/matmul.cpp (kernels/cuda/matmul.cu registers the CUDA one)
//   GRAFT_REGISTER_KERNEL(bmm, CPU, bmm_cpu);
//   // front end (core/ops_linalg.cpp)
//   kernel::bmm(a.device())(a, b, out, false);
//
// Every defined table lists itself in kernel_tables() (name, which devices
// have a kernel, how often each device's kernel was looked up), so tests and
// tools enumerate the tables instead of keeping their own list.
#pragma once

#include <atomic>
#include <cstdint>
#include <vector>

#include "core/device.h"
#include "core/error.h"

namespace graft {

// The device-independent part of a table: what kernel_tables() lists.
class KernelTableBase {
 public:
  constexpr explicit KernelTableBase(const char* name) : name_(name) {}
  KernelTableBase(const KernelTableBase&) = delete;
  KernelTableBase& operator=(const KernelTableBase&) = delete;
  const char* name() const { return name_; }
  bool has(DeviceType type) const { return has_[static_cast<int>(type)]; }
  // Lookups of `type`'s kernel since the process started. Every lookup is
  // followed by a call (kernel::name(device)(args...)), so this counts calls.
  uint64_t calls(DeviceType type) const {
    return calls_[static_cast<int>(type)].load(std::memory_order_relaxed);
  }

 protected:
  void count(DeviceType type) const {
    calls_[static_cast<int>(type)].fetch_add(1, std::memory_order_relaxed);
  }
  void mark(DeviceType type) { has_[static_cast<int>(type)] = true; }

 private:
  const char* name_;
  bool has_[kNumDeviceTypes] = {};
  mutable std::atomic<uint64_t> calls_[kNumDeviceTypes] = {};
};

template <typename Fn>
class KernelTable : public KernelTableBase {
 public:
  constexpr explicit KernelTable(const char* name) : KernelTableBase(name) {}
  Fn operator()(Device device) const {
    Fn fn = fns_[static_cast<int>(device.type)];
    GRAFT_CHECK(fn != nullptr, "op '", name(), "' has no kernel for device ", device.str(),
                device.is_cuda() ? " (CUDA backend not compiled in)" : "");
    count(device.type);
    return fn;
  }
  void set(DeviceType type, Fn fn) {
    fns_[static_cast<int>(type)] = fn;
    mark(type);
  }

 private:
  Fn fns_[kNumDeviceTypes] = {};
};

// Every table defined with GRAFT_DEFINE_KERNEL, in definition order. The list
// is complete once libgraft's static initialisation has run.
const std::vector<const KernelTableBase*>& kernel_tables();
// Called by GRAFT_DEFINE_KERNEL.
bool list_kernel_table(const KernelTableBase* table);

}  // namespace graft

#define GRAFT_DECLARE_KERNEL(name, FnType)  \
  namespace kernel {                        \
  extern ::graft::KernelTable<FnType> name; \
  }
#define GRAFT_DEFINE_KERNEL(name, FnType)                  \
  namespace kernel {                                       \
  constinit ::graft::KernelTable<FnType> name{#name};      \
  }                                                        \
  [[maybe_unused]] static const bool graft_listed_##name = \
      ::graft::list_kernel_table(&kernel::name);
#define GRAFT_REGISTER_KERNEL(name, DEV, fn)                 \
  static const bool graft_registered_##name##_##DEV = [] {   \
    ::graft::kernel::name.set(::graft::DeviceType::DEV, fn); \
    return true;                                             \
  }()
