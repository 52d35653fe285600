// Public C++ interface to the CUDA backend (no CUDA types here, so any
// translation unit can include it; installed as <graft/kernels/cuda/cuda.h>).
// Defined in libgraft_cuda: link graft::cuda (which defines GRAFT_HAVE_CUDA)
// to call these. Every function throws a graft::Error "CUDA not available:
// ..." when no device is present.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

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

bool is_available();
int device_count();
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

// Run-time switches, read from the environment once (see kernels/cuda/README):
//   GRAFT_TF32=1            allow TF32 tensor cores in float32 GEMMs and convolutions
//   GRAFT_GEMM=cublas|native
//   GRAFT_CUDNN_BENCHMARK=1 time convolution algorithms (cudnnFind*) per shape
// How often each CUDA kernel-table entry was called since the process
// started, in registration order (test coverage lists).
struct KernelCoverage {
  std::string table;
  uint64_t calls = 0;
};
std::vector<KernelCoverage> kernel_coverage();

bool tf32_enabled();
void set_tf32_enabled(bool on);
bool use_native_gemm();
void set_native_gemm(bool on);

}  // namespace graft::cuda
