// CUDA device runtime: device query, the caching allocator, host<->device
// copies, and registration of the CUDA backend hooks. Compiled only when the
// CUDA backend is enabled; on a machine without a GPU, available() is false
// and every CUDA request fails with "CUDA not available".
#include <cuda_runtime.h>

#include <mutex>

#include "core/device.h"
#include "core/error.h"
#include "kernels/cuda/check.cuh"

namespace graft::cuda {

namespace {

bool query_available() {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky "no device"/"no driver" error
    return false;
  }
  return count > 0;
}

bool available() {
  static const bool value = query_available();
  return value;
}

int device_count() {
  if (!available()) return 0;
  int count = 0;
  GRAFT_CUDA_CHECK(cudaGetDeviceCount(&count));
  return count;
}

class PlainCudaAllocator final : public Allocator {
 public:
  void* allocate(size_t nbytes, int device) override {
    if (nbytes == 0) return nullptr;
    GRAFT_CUDA_CHECK(cudaSetDevice(device));
    void* p = nullptr;
    GRAFT_CUDA_CHECK(cudaMalloc(&p, nbytes));
    return p;
  }
  void deallocate(void* ptr, size_t, int device) override {
    if (!ptr) return;
    cudaSetDevice(device);
    cudaFree(ptr);
  }
};

void copy_bytes(void* dst, const void* src, size_t nbytes, CopyKind kind, int device) {
  GRAFT_CUDA_CHECK(cudaSetDevice(device));
  const cudaMemcpyKind k = kind == CopyKind::HostToDevice   ? cudaMemcpyHostToDevice
                           : kind == CopyKind::DeviceToHost ? cudaMemcpyDeviceToHost
                                                            : cudaMemcpyDeviceToDevice;
  GRAFT_CUDA_CHECK(cudaMemcpy(dst, src, nbytes, k));
}

void synchronize(int device) {
  GRAFT_CUDA_CHECK(cudaSetDevice(device));
  GRAFT_CUDA_CHECK(cudaDeviceSynchronize());
}

std::string describe(int device) {
  cudaDeviceProp prop{};
  GRAFT_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  return std::string(prop.name) + " (sm_" + std::to_string(prop.major) +
         std::to_string(prop.minor) + ", " +
         std::to_string(prop.totalGlobalMem >> 20) + " MiB)";
}

const bool registered = [] {
  static PlainCudaAllocator allocator;
  DeviceBackend b;
  b.allocator = &allocator;
  b.available = &available;
  b.device_count = &device_count;
  b.copy_bytes = &copy_bytes;
  b.synchronize = &synchronize;
  b.describe = &describe;
  register_device_backend(DeviceType::CUDA, b);
  return true;
}();

}  // namespace

}  // namespace graft::cuda
