// libgraft's side of core/cuda.h: forwards to the hooks the CUDA backend
// registers, or answers as a build without CUDA.
#include "core/cuda.h"

#include <algorithm>
#include <memory>

#include "core/device.h"
#include "core/error.h"
#include "core/storage.h"

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

Tensor empty_pinned(const Shape& shape, DType dtype) {
  const BackendHooks& h = require_backend();
  GRAFT_CHECK(is_available(), "empty_pinned: ", device_unavailable_reason(DeviceType::CUDA));
  const size_t nbytes = shape_nbytes(shape, dtype, "empty_pinned");
  // One byte at least, so that an empty tensor is pinned too.
  void* data = h.host_alloc(std::max<size_t>(nbytes, 1));
  auto storage = std::make_shared<StorageImpl>(
      data, nbytes, Device::cpu(), [host_free = h.host_free](void* p) { host_free(p); });
  return make_tensor(std::move(storage), shape, contiguous_strides(shape), 0, dtype);
}

bool is_pinned(const Tensor& t) {
  const BackendHooks* h = hooks();
  return h && t.defined() && t.device().is_cpu() && is_available() &&
         h->is_pinned(t.storage()->data());
}

void copy_async(const Tensor& dst, const Tensor& src) {
  GRAFT_CHECK(dst.defined() && src.defined(), "copy_async: undefined tensor");
  GRAFT_CHECK(dst.device().is_cuda() != src.device().is_cuda(),
              "copy_async copies between a CUDA tensor and a pinned CPU tensor, got ",
              src.device().str(), " to ", dst.device().str());
  GRAFT_CHECK(dst.dtype() == src.dtype(), "copy_async: dtypes differ (", dtype_name(src.dtype()),
              " to ", dtype_name(dst.dtype()), ")");
  GRAFT_CHECK(dst.numel() == src.numel(), "copy_async: ", src.numel(), " elements into ",
              dst.numel());
  GRAFT_CHECK(dst.is_contiguous() && src.is_contiguous(), "copy_async needs contiguous tensors");
  const Tensor& host = dst.device().is_cpu() ? dst : src;
  const Device device = dst.device().is_cuda() ? dst.device() : src.device();
  GRAFT_CHECK(is_pinned(host),
              "copy_async: the CPU tensor is in pageable memory, which cannot be copied "
              "asynchronously; allocate it with graft::cuda::empty_pinned");
  if (dst.numel() == 0) return;
  require_backend().copy_async(
      dst.raw_data(), src.raw_data(), dst.nbytes(),
      dst.device().is_cuda() ? CopyKind::HostToDevice : CopyKind::DeviceToHost, device.index);
  dst.storage()->bump_version();
}

}  // namespace graft::cuda
