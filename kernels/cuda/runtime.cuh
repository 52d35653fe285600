// Internal interface of the CUDA runtime for kernel files: the current stream,
// library handles, the device guard and the device-side error flag.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <cstdint>

#include "core/cuda.h"  // tf32_enabled(), use_native_gemm()
#include "core/tensor.h"
#include "kernels/cuda/check.cuh"

namespace graft::cuda {

// Makes `device` current for the scope and restores the previous device.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device);
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = -1;
};

// The stream every graft kernel and copy on `device` is queued on.
cudaStream_t current_stream(int device);
// Per-device library handles, bound to current_stream(device).
cublasHandle_t cublas_handle(int device);
cudnnHandle_t cudnn_handle(int device);

// Codes a kernel writes into the device error flag instead of faulting; the
// host reports them at the next synchronisation point (read-back, synchronize).
enum DeviceErrorCode : int {
  kNoDeviceError = 0,
  kIndexOutOfRange = 1,
};
#if defined(__CUDACC__) || defined(GRAFT_CUDA_EMULATED)
// First error wins; later ones keep the first code.
__device__ __forceinline__ void raise_device_error(int* flag, int code) {
  atomicCAS(flag, 0, code);
}
#endif
// Pointer to the per-device int the kernels set (first error wins, atomicCAS).
int* device_error_flag(int device);
// Reads and clears the flag; throws graft::Error naming the failure. Synchronises the stream.
void check_device_errors(int device);

// Scratch memory from the caching allocator, released at scope exit (stream-ordered).
class Workspace {
 public:
  Workspace(size_t nbytes, int device);
  ~Workspace();
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
  void* data() const { return ptr_; }
  size_t size() const { return nbytes_; }

 private:
  void* ptr_ = nullptr;
  size_t nbytes_ = 0;
  int device_ = 0;
};

// Grid size for a grid-stride loop over n items with `block` threads.
inline unsigned int grid_for(int64_t n, int block) {
  const int64_t blocks = (n + block - 1) / block;
  // 65535 * 8 blocks saturate any current GPU; grid-stride loops cover the rest.
  return static_cast<unsigned int>(blocks < 1 ? 1 : (blocks > 65535 * 8 ? 65535 * 8 : blocks));
}

// Registers a CUDA kernel-table entry (dispatch.h counts its calls).
#define GRAFT_REGISTER_CUDA_KERNEL(name, fn) GRAFT_REGISTER_KERNEL(name, CUDA, fn)

}  // namespace graft::cuda
