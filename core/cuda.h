// The public CUDA facilities, declared in every build (like candle's dummy
// CUDA backend), so callers need no #ifdef: include <graft/core/cuda.h> and
// link graft::graft. libgraft defines them; the CUDA backend (libgraft_cuda:
// linked into the program, or loaded on demand as core/device.h describes)
// registers the hooks they forward to.
//
// Without a CUDA backend, or without a device, the queries answer false / 0
// and every other function throws a graft::Error saying why, e.g. "CUDA not
// available: graft was built without the CUDA backend (rebuild with
// -DGRAFT_CUDA=ON)" or "... no CUDA device was found on this machine".
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/tensor.h"

namespace graft::cuda {

struct MemoryStats {
  size_t allocated = 0;         // bytes in blocks handed out to tensors (rounded block sizes)
  size_t peak_allocated = 0;    // high-water mark of `allocated` since start / reset_peak_stats()
  size_t cached = 0;            // bytes held in free blocks for reuse
  size_t reserved = 0;          // allocated + cached: everything obtained from cudaMalloc
  uint64_t num_allocs = 0;      // allocate() calls served
  uint64_t num_cache_hits = 0;  // ... of which reused a cached block
  uint64_t num_device_mallocs = 0;  // cudaMalloc calls
};

// ---- queries: false / 0 where there is no CUDA ----
// This program has graft's CUDA backend (linked, or loadable now), with or
// without a device.
bool has_backend();
// The backend is the emulated device (cmake -DGRAFT_CUDA=EMULATE, kernels/cuda/emu).
bool is_emulated();
// A CUDA device can be used now.
bool is_available();
int device_count();
// Run-time switches, read from the environment once (see kernels/cuda/README):
//   GRAFT_TF32=1            allow TF32 tensor cores in float32 GEMMs and convolutions
//   GRAFT_GEMM=cublas|native
//   GRAFT_CUDNN_BENCHMARK=1 time convolution algorithms (cudnnFind*) per shape
bool tf32_enabled();
bool use_native_gemm();

// ---- the rest needs the backend (and, where a device index is taken, that device) ----
MemoryStats memory_stats(int device = 0);
void reset_peak_stats(int device = 0);
// Returns all cached (free) blocks to the driver. Blocks in use are untouched.
void empty_cache();
// Waits for all work queued on the device's current stream, then reports any
// error a kernel recorded (for example an out-of-range index).
void synchronize(int device = 0);
// Test aid: fill every new device allocation with 0xFF bytes (NaN in floating
// dtypes) so that elements a kernel fails to write are detected. Also enabled
// by the environment variable GRAFT_CUDA_POISON.
void set_poison_allocations(bool on);
// "NVIDIA H100 80GB HBM3 (sm_90, 81559 MiB)"
std::string device_name(int device = 0);

// A switch that cannot take effect is an error.
void set_tf32_enabled(bool on);
void set_native_gemm(bool on);

// ---- page-locked (pinned) host memory ----
// A contiguous CPU tensor in page-locked host memory (torch.empty(...,
// pin_memory=True)), which the device copies to and from by DMA, without
// waiting: see copy_async. Its contents are uninitialised; cudaFreeHost
// releases it when the last view is gone. Needs a CUDA device.
Tensor empty_pinned(const Shape& shape, DType dtype);
// Whether `t` is a CPU tensor in page-locked memory (torch's
// Tensor.is_pinned()); false where there is no CUDA device.
bool is_pinned(const Tensor& t);
// Copies between a CUDA tensor and a pinned CPU tensor (one is `dst`, the
// other `src`; same dtype and number of elements, both contiguous) by queueing
// the copy on the device's current stream and returning at once (torch's
// copy_(src, non_blocking=True)). Until synchronize(device) returns, the host
// must not read a pinned destination nor write a pinned source. A pageable
// CPU tensor is refused: its copy could not be asynchronous.
void copy_async(const Tensor& dst, const Tensor& src);

// ---- the backend's side ----
// libgraft_cuda registers these once, when it is loaded.
struct BackendHooks {
  bool emulated = false;
  MemoryStats (*memory_stats)(int device) = nullptr;
  void (*reset_peak_stats)(int device) = nullptr;
  void (*empty_cache)() = nullptr;
  void (*set_poison_allocations)(bool on) = nullptr;
  bool (*tf32_enabled)() = nullptr;
  void (*set_tf32_enabled)(bool on) = nullptr;
  bool (*use_native_gemm)() = nullptr;
  void (*set_native_gemm)(bool on) = nullptr;
  void* (*host_alloc)(size_t nbytes) = nullptr;  // cudaHostAlloc
  void (*host_free)(void* ptr) = nullptr;        // cudaFreeHost
  bool (*is_pinned)(const void* ptr) = nullptr;  // cudaHostAlloc'ed (or registered) memory
  // cudaMemcpyAsync between pinned host memory and `device`, on its current stream.
  void (*copy_async)(void* dst, const void* src, size_t nbytes, CopyKind kind,
                     int device) = nullptr;
};
void register_backend_hooks(const BackendHooks& hooks);

}  // namespace graft::cuda
