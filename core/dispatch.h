// Per-device kernel tables. Each op's kernel type is declared once (in
// core/kernels.h) with GRAFT_DECLARE_KERNEL, defined once in core/dispatch.cpp
// with GRAFT_DEFINE_KERNEL, and each backend registers its implementation from
// its own source file with GRAFT_REGISTER_KERNEL:
//
//   // core/kernels.h
//   using ReluFn = void (*)(const Tensor& in, const Tensor& out);
//   GRAFT_DECLARE_KERNEL(relu, ReluFn);
//   // kernels/cpu/activation.cpp
//   GRAFT_REGISTER_KERNEL(relu, CPU, relu_cpu);
//   // front end
//   kernel::relu(in.device())(in, out);
#pragma once

#include "core/device.h"
#include "core/error.h"

namespace graft {

template <typename Fn>
class KernelTable {
 public:
  constexpr explicit KernelTable(const char* name) : name_(name) {}
  Fn operator()(Device device) const {
    Fn fn = fns_[static_cast<int>(device.type)];
    GRAFT_CHECK(fn != nullptr, "op '", name_, "' has no kernel for device ", device.str(),
                device.is_cuda() ? " (CUDA backend not compiled in)" : "");
    return fn;
  }
  bool has(DeviceType type) const { return fns_[static_cast<int>(type)] != nullptr; }
  void set(DeviceType type, Fn fn) { fns_[static_cast<int>(type)] = fn; }
  const char* name() const { return name_; }

 private:
  const char* name_;
  Fn fns_[kNumDeviceTypes] = {};
};

}  // namespace graft

#define GRAFT_DECLARE_KERNEL(name, FnType)  \
  namespace kernel {                        \
  extern ::graft::KernelTable<FnType> name; \
  }
#define GRAFT_DEFINE_KERNEL(name, FnType)             \
  namespace kernel {                                  \
  constinit ::graft::KernelTable<FnType> name{#name}; \
  }
#define GRAFT_REGISTER_KERNEL(name, DEV, fn)                 \
  static const bool graft_registered_##name##_##DEV = [] {   \
    ::graft::kernel::name.set(::graft::DeviceType::DEV, fn); \
    return true;                                             \
  }()
