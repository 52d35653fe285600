// libgraft's side of core/cuda.h: forwards to the hooks the CUDA backend
// registers, or answers as a build without CUDA.
#include "core/cuda.h"

#include "core/device.h"
#include "core/error.h"

namespace graft::cuda {

namespace {

// Written once by libgraft_cuda's static initialisation: at program start when
// it is linked, or inside core/device.cpp's guarded load, which every reader
// passes through first (device_backend_registered).
BackendHooks g_hooks;
bool g_hooks_registered = false;

const BackendHooks* hooks() {
  if (!device_backend_registered(DeviceType::CUDA) || !g_hooks_registered) return nullptr;
  return &g_hooks;
}
const BackendHooks& require_backend() {
  const BackendHooks* h = hooks();
  GRAFT_CHECK(h != nullptr, device_unavailable_reason(DeviceType::CUDA));
  return *h;
}

}  // namespace

void register_backend_hooks(const BackendHooks& h) {
  g_hooks = h;
  g_hooks_registered = true;
}

bool has_backend() { return hooks() != nullptr; }
bool is_emulated() { return hooks() && hooks()->emulated; }
bool is_available() { return cuda_available(); }
int device_count() { return is_available() ? device_backend(DeviceType::CUDA).device_count() : 0; }
bool tf32_enabled() { return hooks() && hooks()->tf32_enabled(); }
bool use_native_gemm() { return hooks() && hooks()->use_native_gemm(); }

MemoryStats memory_stats(int device) { return require_backend().memory_stats(device); }
void reset_peak_stats(int device) { require_backend().reset_peak_stats(device); }
void empty_cache() { require_backend().empty_cache(); }
void synchronize(int device) { device_backend(DeviceType::CUDA).synchronize(device); }
void set_poison_allocations(bool on) { require_backend().set_poison_allocations(on); }
std::string device_name(int device) { return device_backend(DeviceType::CUDA).describe(device); }
void set_tf32_enabled(bool on) { require_backend().set_tf32_enabled(on); }
void set_native_gemm(bool on) { require_backend().set_native_gemm(on); }

}  // namespace graft::cuda
