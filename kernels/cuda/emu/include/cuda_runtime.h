// Emulated CUDA runtime API (cmake -DGRAFT_CUDA=EMULATE): the subset graft
// calls, implemented on the host by kernels/cuda/emu/runtime.cpp with CUDA's
// rules (asynchronous FIFO streams, events, pinned/mapped host memory, sticky
// and non-sticky errors, device matching, launch-configuration limits).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include "kernels/cuda/emu/device.h"

enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInitializationError = 3,
  cudaErrorCudartUnloading = 4,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidDevicePointer = 17,
  cudaErrorInvalidMemcpyDirection = 21,
  cudaErrorNoDevice = 100,
  cudaErrorInvalidDevice = 101,
  cudaErrorInvalidResourceHandle = 400,
  cudaErrorNotReady = 600,
  cudaErrorIllegalAddress = 700,
  cudaErrorLaunchFailure = 719,
};
using cudaError = cudaError_t;

enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4,
};

struct CUstream_st;
struct CUevent_st;
using cudaStream_t = CUstream_st*;
using cudaEvent_t = CUevent_st*;

constexpr unsigned cudaStreamDefault = 0, cudaStreamNonBlocking = 1;
constexpr unsigned cudaEventDefault = 0, cudaEventBlockingSync = 1, cudaEventDisableTiming = 2;
constexpr unsigned cudaHostAllocDefault = 0, cudaHostAllocPortable = 1, cudaHostAllocMapped = 2,
                   cudaHostAllocWriteCombined = 4;

struct cudaDeviceProp {
  char name[256];
  size_t totalGlobalMem;
  size_t sharedMemPerBlock;
  int warpSize;
  int maxThreadsPerBlock;
  int maxThreadsDim[3];
  int maxGridSize[3];
  int major, minor;
  int multiProcessorCount;
};

enum cudaMemoryType {
  cudaMemoryTypeUnregistered = 0,
  cudaMemoryTypeHost = 1,
  cudaMemoryTypeDevice = 2,
  cudaMemoryTypeManaged = 3,
};
struct cudaPointerAttributes {
  cudaMemoryType type;
  int device;
  void* devicePointer;
  void* hostPointer;
};
cudaError_t cudaPointerGetAttributes(cudaPointerAttributes* attr, const void* ptr);

cudaError_t cudaGetDeviceCount(int* count);
cudaError_t cudaGetDevice(int* device);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device);
cudaError_t cudaDeviceSynchronize();
cudaError_t cudaDeviceReset();
cudaError_t cudaGetLastError();
cudaError_t cudaPeekAtLastError();
const char* cudaGetErrorName(cudaError_t err);
const char* cudaGetErrorString(cudaError_t err);

cudaError_t cudaMalloc(void** ptr, size_t size);
cudaError_t cudaFree(void* ptr);
cudaError_t cudaHostAlloc(void** ptr, size_t size, unsigned flags);
cudaError_t cudaMallocHost(void** ptr, size_t size);
cudaError_t cudaFreeHost(void* ptr);
cudaError_t cudaHostGetDevicePointer(void** device_ptr, void* host_ptr, unsigned flags);
cudaError_t cudaMemcpy(void* dst, const void* src, size_t n, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t n, cudaMemcpyKind kind,
                            cudaStream_t stream = nullptr);
cudaError_t cudaMemsetAsync(void* ptr, int value, size_t n, cudaStream_t stream = nullptr);
cudaError_t cudaMemset(void* ptr, int value, size_t n);

cudaError_t cudaStreamCreate(cudaStream_t* stream);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t stream);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
cudaError_t cudaStreamQuery(cudaStream_t stream);
cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned flags = 0);

cudaError_t cudaEventCreate(cudaEvent_t* event);
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned flags);
cudaError_t cudaEventDestroy(cudaEvent_t event);
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream = nullptr);
cudaError_t cudaEventQuery(cudaEvent_t event);
cudaError_t cudaEventSynchronize(cudaEvent_t event);
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end);

namespace graft::cuda::emu {

// One kernel launch: the grid, and the body every emulated thread runs.
struct Launch {
  const char* kernel_name;
  dim3 grid, block;
  size_t dynamic_shared;
  std::function<void()> body;
};
// Validates the configuration (non-sticky cudaErrorInvalidConfiguration,
// also returned by the next cudaGetLastError) and queues the launch.
cudaError_t launch(cudaStream_t stream, Launch launch);

// "graft::cuda::(anonymous namespace)::sgd_kernel<float>" from a
// __PRETTY_FUNCTION__ of launch_kernel<K>.
const char* kernel_name_from(const char* pretty_function);

// Device memory: is [p, p + n) inside one live allocation of `device`
// (device < 0: of any device)? Used by the reference cuBLAS/cuDNN checks.
bool is_device_range(const void* p, size_t n, int device = -1);
// The device a stream belongs to (the null stream: the current device).
int stream_device(cudaStream_t stream);
// Thread order within a block: in order (seed 0) or, for racecheck by
// schedule, a random order per barrier interval drawn from `seed`.
// GRAFT_EMU_SCHEDULE=random:SEED sets it at start-up.
void set_schedule_seed(unsigned seed);

// racecheck (-DGRAFT_SANITIZE=thread): how many ThreadSanitizer reports came
// from emulated CUDA threads so far (always 0 in other builds).
unsigned long racecheck_reports();
// Called by ThreadSanitizer's report hook (kernels/cuda/emu/hook/): prints
// which kernel, block and thread made the racing access and counts it.
void racecheck_on_report();

// Queues host work on a stream, in order with its kernels and copies.
cudaError_t enqueue(cudaStream_t stream, std::function<void()> work);
// Reports a checker failure (synccheck, a bad library call) for the kernel
// running now: makes the device's error sticky with `message`.
void report_device_error(int device, const std::string& message);

template <auto Kernel, typename... Args>
cudaError_t launch_kernel(dim3 grid, dim3 block, size_t smem, cudaStream_t stream, Args&&... args) {
  static const char* const name = kernel_name_from(__PRETTY_FUNCTION__);
  return [&]<typename... P>(void (*)(P...)) {
    // Arguments are copied at launch, converted to the kernel's parameter
    // types, as CUDA does; each thread then gets its own by-value copies.
    std::tuple<std::decay_t<P>...> params(std::forward<Args>(args)...);
    return launch(stream,
                  Launch{name, grid, block, smem, [params]() { std::apply(Kernel, params); }});
  }(Kernel);
}

}  // namespace graft::cuda::emu
