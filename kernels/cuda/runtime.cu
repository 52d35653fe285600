// CUDA device runtime: device query, the caching device allocator, the pinned
// staging pool for host<->device copies, pinned tensors and their asynchronous
// copies (core/cuda.h's empty_pinned, copy_async), one current stream per
// device, the cuBLAS/cuDNN handles and registration of the CUDA backend hooks.
//
// Ordering model: every graft kernel and copy on a device is queued on that
// device's single current stream. A block freed by a tensor can therefore be
// handed to the next allocation at once: any kernel that uses it again is
// queued after every kernel that used it before. Host read-backs synchronise
// the stream, then report errors that kernels recorded in the error flag.
//
// On a machine without a GPU, available() is false and every CUDA request
// fails with "CUDA not available: ...".
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/cuda.h"
#include "core/device.h"
#include "core/env.h"
#include "core/error.h"
#include "kernels/cuda/check.cuh"
#include "kernels/cuda/runtime.cuh"

namespace graft::cuda {

const char* cublas_status_name(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS:
      return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED:
      return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED:
      return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE:
      return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH:
      return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR:
      return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED:
      return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR:
      return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED:
      return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_LICENSE_ERROR:
      return "CUBLAS_STATUS_LICENSE_ERROR";
    default:
      return "unknown cuBLAS status";
  }
}

namespace {

constexpr int kMaxDevices = 16;

// Whether a device is usable, and if not why (for "CUDA not available: ...").
struct Availability {
  bool ok = false;
  std::string why;
};
Availability query_available() {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err == cudaSuccess && count > 0) return {true, ""};
  (void)cudaGetLastError();  // clear the "no device"/"no driver" error
#ifdef GRAFT_CUDA_EMULATED
  return {false, "this is the emulated CUDA build and GRAFT_EMULATED_DEVICES=0"};
#else
  int driver = 0, runtime = 0;
  (void)cudaDriverGetVersion(&driver);
  (void)cudaRuntimeGetVersion(&runtime);
  (void)cudaGetLastError();
  if (driver == 0)
    return {false, "no NVIDIA driver is installed (" + std::string(cudaGetErrorName(err)) +
                       "), so no CUDA device can be used"};
  if (err == cudaErrorInsufficientDriver || driver < runtime)
    return {false, "the NVIDIA driver is too old (driver supports CUDA " + std::to_string(driver) +
                       ", graft was built with runtime " + std::to_string(runtime) + ")"};
  if (err == cudaErrorNoDevice || err == cudaSuccess)
    return {false, "no CUDA device was found on this machine (" +
                       std::string(err == cudaSuccess ? "0 devices" : cudaGetErrorName(err)) + ")"};
  return {false, std::string("cudaGetDeviceCount failed: ") + cudaGetErrorName(err) + " (" +
                     cudaGetErrorString(err) + ")"};
#endif
}

const Availability& availability() {
  static const Availability value = query_available();
  return value;
}
bool available_impl() { return availability().ok; }
std::string unavailable_reason_impl() { return availability().why; }

// Queried once: the set of devices does not change while the process runs.
int device_count_impl() {
  static const int value = [] {
    if (!available_impl()) return 0;
    int count = 0;
    GRAFT_CUDA_CHECK(cudaGetDeviceCount(&count));
    return std::min(count, kMaxDevices);
  }();
  return value;
}

void require_device(int device) {
  GRAFT_CHECK(available_impl(), device_unavailable_reason(DeviceType::CUDA));
  GRAFT_CHECK(device >= 0 && device < device_count_impl(), "CUDA device index ", device,
              " out of range (", device_count_impl(), " device(s) present)");
}

// ---------------------------------------------------------------------------
// Caching device allocator.
//
// Requests are rounded to a bucket size (512 B steps below 1 MiB, 128 KiB steps
// above) and served from a per-device free list ordered by size; a cached
// block is reused when it wastes at most a quarter of its size. cudaMalloc is
// called only on a miss; when it runs out of memory the cache is returned to
// the driver and the call retried once.
class CachingAllocator final : public Allocator {
 public:
  static size_t round_size(size_t n) {
    constexpr size_t kSmall = 512, kLarge = 128 << 10, kSmallLimit = 1 << 20;
    if (n < kSmallLimit) return (n + kSmall - 1) / kSmall * kSmall;
    return (n + kLarge - 1) / kLarge * kLarge;
  }

  void* allocate(size_t nbytes, int device) override {
    void* p = allocate_block(nbytes, device);
    // Debug aid for tests: 0xFF bytes read as NaN in float32/float64 (and -1
    // in integers), so an output element a kernel forgot to write shows up.
    if (p && poison_.load(std::memory_order_relaxed)) {
      DeviceGuard guard(device);
      GRAFT_CUDA_CHECK(cudaMemsetAsync(p, 0xFF, nbytes, current_stream(device)));
    }
    return p;
  }
  void set_poison(bool on) { poison_.store(on); }

  void* allocate_block(size_t nbytes, int device) {
    if (nbytes == 0) return nullptr;
    require_device(device);
    // GRAFT_CUDA_CACHE=0: exact sizes and no reuse, so that a memory checker
    // (ASan on the emulated device, compute-sanitizer) sees every tensor's
    // bounds and every use after free.
    const size_t size = caching_ ? round_size(nbytes) : nbytes;
    std::lock_guard<std::mutex> lock(mutex_);
    PerDevice& d = devices_[device];
    ++d.stats.num_allocs;
    auto it = caching_ ? d.free_blocks.lower_bound(size) : d.free_blocks.end();
    if (it != d.free_blocks.end() && it->first <= size + size / 4) {
      void* p = it->second;
      const size_t block = it->first;
      d.free_blocks.erase(it);
      d.stats.cached -= block;
      d.in_use[p] = block;
      ++d.stats.num_cache_hits;
      add_allocated(d, block);
      return p;
    }
    DeviceGuard guard(device);
    void* p = nullptr;
    cudaError_t err = cudaMalloc(&p, size);
    if (err == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();
      release_cached(d);
      err = cudaMalloc(&p, size);
    }
    if (err != cudaSuccess) {
      (void)cudaGetLastError();
      GRAFT_FAIL("CUDA out of memory allocating ", nbytes, " bytes on cuda:", device, " (",
                 cudaGetErrorName(err), "; graft holds ", d.stats.allocated, " bytes in use and ",
                 d.stats.cached, " cached)");
    }
    ++d.stats.num_device_mallocs;
    d.stats.reserved += size;
    d.in_use[p] = size;
    add_allocated(d, size);
    return p;
  }

  void deallocate(void* ptr, size_t, int device) override {
    if (!ptr) return;
    std::lock_guard<std::mutex> lock(mutex_);
    PerDevice& d = devices_[device];
    auto it = d.in_use.find(ptr);
    if (it == d.in_use.end()) return;  // not ours (cannot happen through Storage)
    const size_t block = it->second;
    d.in_use.erase(it);
    d.stats.allocated -= block;
    if (!caching_) {
      // cudaFree waits for the device: no queued kernel still uses the block.
      DeviceGuard guard(device);
      d.stats.reserved -= block;
      GRAFT_CUDA_CHECK(cudaFree(ptr));
      return;
    }
    d.stats.cached += block;
    d.free_blocks.emplace(block, ptr);
  }

  void empty_cache() {
    std::lock_guard<std::mutex> lock(mutex_);
    for (int i = 0; i < kMaxDevices; ++i) {
      if (!devices_[i].free_blocks.empty()) {
        DeviceGuard guard(i);
        release_cached(devices_[i]);
      }
    }
  }

  MemoryStats stats(int device) {
    std::lock_guard<std::mutex> lock(mutex_);
    return devices_[device].stats;
  }
  void reset_peak(int device) {
    std::lock_guard<std::mutex> lock(mutex_);
    devices_[device].stats.peak_allocated = devices_[device].stats.allocated;
  }

 private:
  struct PerDevice {
    std::multimap<size_t, void*> free_blocks;
    std::unordered_map<void*, size_t> in_use;
    MemoryStats stats;
  };

  static void add_allocated(PerDevice& d, size_t n) {
    d.stats.allocated += n;
    d.stats.peak_allocated = std::max(d.stats.peak_allocated, d.stats.allocated);
  }
  // cudaFree waits for the device, so no queued kernel still uses a freed block.
  // Its first failure is reported after every block was handed back (and the
  // pending error cleared, so that no later check reports it by mistake).
  static void release_cached(PerDevice& d) {
    cudaError_t first = cudaSuccess;
    for (auto& [size, p] : d.free_blocks) {
      const cudaError_t err = cudaFree(p);
      if (err != cudaSuccess && first == cudaSuccess) first = err;
      d.stats.reserved -= size;
    }
    d.stats.cached = 0;
    d.free_blocks.clear();
    GRAFT_CUDA_CHECK(first);
  }

  std::mutex mutex_;
  PerDevice devices_[kMaxDevices];
  std::atomic<bool> poison_{env_set("GRAFT_CUDA_POISON")};
  const bool caching_ = !env_flag("GRAFT_CUDA_CACHE", "0", "1");
};

// Leaked on purpose: tensors in static storage may be freed after any
// function-local static would have been destroyed.
CachingAllocator& allocator() {
  static CachingAllocator* a = new CachingAllocator();
  return *a;
}

// ---------------------------------------------------------------------------
// Pinned staging pool. Pageable host memory cannot be copied asynchronously,
// so copies go through page-locked chunks. A host-to-device chunk is reusable
// once the event recorded after its copy has completed; device-to-host copies
// synchronise the stream before reading the chunk. An event can only be
// recorded on a stream of its own device, so a chunk's event is re-created
// when the chunk moves to another device (it is idle then).
class PinnedPool {
 public:
  static constexpr size_t kChunk = 8 << 20;
  static constexpr size_t kMaxChunks = 8;

  struct Chunk {
    void* host = nullptr;
    cudaEvent_t done = nullptr;
    int event_device = -1;
    bool busy = false;

    // Records `done` on `stream` of `device` (the chunk's last use).
    void record(int device, cudaStream_t stream) {
      if (event_device != device) {
        if (done) GRAFT_CUDA_CHECK(cudaEventDestroy(done));
        done = nullptr;
        event_device = -1;
        DeviceGuard guard(device);
        GRAFT_CUDA_CHECK(cudaEventCreateWithFlags(&done, cudaEventDisableTiming));
        event_device = device;
      }
      GRAFT_CUDA_CHECK(cudaEventRecord(done, stream));
    }
  };

  Chunk* acquire() {
    std::lock_guard<std::mutex> lock(mutex_);
    for (Chunk& c : chunks_) {
      if (!c.busy && (!c.done || cudaEventQuery(c.done) == cudaSuccess)) {
        c.busy = true;
        return &c;
      }
    }
    (void)cudaGetLastError();  // cudaEventQuery's cudaErrorNotReady is not an error
    if (chunks_.size() < kMaxChunks) {
      chunks_.emplace_back();
      Chunk& c = chunks_.back();
      GRAFT_CUDA_CHECK(cudaHostAlloc(&c.host, kChunk, cudaHostAllocPortable));
      c.busy = true;
      return &c;
    }
    // All chunks hold in-flight copies: wait for the first idle one.
    for (Chunk& c : chunks_) {
      if (!c.busy) {
        if (c.done) GRAFT_CUDA_CHECK(cudaEventSynchronize(c.done));
        c.busy = true;
        return &c;
      }
    }
    GRAFT_FAIL("pinned staging pool exhausted (more than ", kMaxChunks, " concurrent host copies)");
  }
  void release(Chunk* c) {
    std::lock_guard<std::mutex> lock(mutex_);
    c->busy = false;
  }

 private:
  std::mutex mutex_;
  std::vector<Chunk> chunks_;  // reserved up front: Chunk* handed out must stay valid
 public:
  PinnedPool() { chunks_.reserve(kMaxChunks); }
};

PinnedPool& pinned_pool() {
  static PinnedPool* p = new PinnedPool();
  return *p;
}

// ---------------------------------------------------------------------------
// Per-device state created on first use.
struct DeviceState {
  std::once_flag once;
  cudaStream_t stream = nullptr;
  int* error_flag = nullptr;         // mapped pinned host memory, read by the host
  int* error_flag_device = nullptr;  // the same memory as kernels address it
  cudaEvent_t copy_event = nullptr;  // orders cross-device copies (copy_bytes)
};

// Serialises cross-device copies: they share each device's copy_event.
std::mutex g_peer_copy_mutex;

// The device whose memory holds `p` (UVA).
int device_of(const void* p) {
  cudaPointerAttributes attr{};
  GRAFT_CUDA_CHECK(cudaPointerGetAttributes(&attr, p));
  GRAFT_CHECK(attr.type == cudaMemoryTypeDevice, "copy: source is not device memory");
  return attr.device;
}

DeviceState& state(int device) {
  static DeviceState* states = new DeviceState[kMaxDevices];
  require_device(device);
  DeviceState& s = states[device];
  std::call_once(s.once, [&] {
    DeviceGuard guard(device);
    GRAFT_CUDA_CHECK(cudaStreamCreateWithFlags(&s.stream, cudaStreamNonBlocking));
    GRAFT_CUDA_CHECK(cudaHostAlloc(reinterpret_cast<void**>(&s.error_flag), sizeof(int),
                                   cudaHostAllocMapped | cudaHostAllocPortable));
    *s.error_flag = kNoDeviceError;
    GRAFT_CUDA_CHECK(
        cudaHostGetDevicePointer(reinterpret_cast<void**>(&s.error_flag_device), s.error_flag, 0));
    GRAFT_CUDA_CHECK(cudaEventCreateWithFlags(&s.copy_event, cudaEventDisableTiming));
  });
  return s;
}

std::once_flag g_env_once;
bool g_tf32 = false;
bool g_native_gemm = false;
void read_env() {
  std::call_once(g_env_once, [] {
    g_tf32 = env_flag("GRAFT_TF32", "1", "0");
    g_native_gemm = env_flag("GRAFT_GEMM", "native", "cublas");
  });
}

// ---------------------------------------------------------------------------
// Backend hooks.
void copy_bytes(void* dst, const void* src, size_t nbytes, CopyKind kind, int device) {
  if (nbytes == 0) return;
  DeviceGuard guard(device);
  cudaStream_t stream = current_stream(device);
  PinnedPool& pool = pinned_pool();
  if (kind == CopyKind::DeviceToDevice) {
    const int src_device = device_of(src);
    if (src_device == device) {
      GRAFT_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDeviceToDevice, stream));
      return;
    }
    // Across devices: the copy (on the destination's stream) waits for the
    // source's stream, and the source's stream then waits for the copy, so
    // neither a pending write of the source nor a later reuse of its block
    // (freed blocks are reused at once, see the ordering model) races it.
    cudaStream_t src_stream = current_stream(src_device);
    cudaEvent_t src_ready = state(src_device).copy_event;
    cudaEvent_t copied = state(device).copy_event;
    std::lock_guard<std::mutex> lock(g_peer_copy_mutex);
    GRAFT_CUDA_CHECK(cudaEventRecord(src_ready, src_stream));
    GRAFT_CUDA_CHECK(cudaStreamWaitEvent(stream, src_ready, 0));
    GRAFT_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDefault, stream));
    GRAFT_CUDA_CHECK(cudaEventRecord(copied, stream));
    GRAFT_CUDA_CHECK(cudaStreamWaitEvent(src_stream, copied, 0));
  } else if (kind == CopyKind::HostToDevice) {
    for (size_t done = 0; done < nbytes; done += PinnedPool::kChunk) {
      const size_t n = std::min(PinnedPool::kChunk, nbytes - done);
      PinnedPool::Chunk* c = pool.acquire();
      std::memcpy(c->host, static_cast<const char*>(src) + done, n);
      try {
        GRAFT_CUDA_CHECK(cudaMemcpyAsync(static_cast<char*>(dst) + done, c->host, n,
                                         cudaMemcpyHostToDevice, stream));
        c->record(device, stream);
      } catch (...) {
        // The chunk may still be read by a queued copy: wait before reuse.
        (void)cudaStreamSynchronize(stream);
        (void)cudaGetLastError();
        pool.release(c);
        throw;
      }
      pool.release(c);
    }
  } else {
    // Read-back: everything queued before it has run once this returns, so
    // errors that kernels recorded are reported here.
    check_device_errors(device);
    PinnedPool::Chunk* c = pool.acquire();
    for (size_t done = 0; done < nbytes; done += PinnedPool::kChunk) {
      const size_t n = std::min(PinnedPool::kChunk, nbytes - done);
      cudaError_t err = cudaMemcpyAsync(c->host, static_cast<const char*>(src) + done, n,
                                        cudaMemcpyDeviceToHost, stream);
      if (err == cudaSuccess) err = cudaStreamSynchronize(stream);
      if (err != cudaSuccess) {
        pool.release(c);
        GRAFT_CUDA_CHECK(err);
      }
      std::memcpy(static_cast<char*>(dst) + done, c->host, n);
    }
    pool.release(c);
  }
}

void synchronize_hook(int device) { check_device_errors(device); }

std::string describe(int device) {
  require_device(device);
  cudaDeviceProp prop{};
  GRAFT_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  return std::string(prop.name) + " (sm_" + std::to_string(prop.major) +
         std::to_string(prop.minor) + ", " + std::to_string(prop.totalGlobalMem >> 20) + " MiB" +
#ifdef GRAFT_CUDA_EMULATED
         ", emulated on the CPU" +
#endif
         ")";
}

const bool registered = [] {
  DeviceBackend b;
  b.allocator = &allocator();
  b.available = &available_impl;
  b.device_count = &device_count_impl;
  b.copy_bytes = &copy_bytes;
  b.synchronize = &synchronize_hook;
  b.describe = &describe;
  b.unavailable_reason = &unavailable_reason_impl;
  register_device_backend(DeviceType::CUDA, b);
  return true;
}();

}  // namespace

// ---- internal interface (runtime.cuh) ----

DeviceGuard::DeviceGuard(int device) {
  GRAFT_CUDA_CHECK(cudaGetDevice(&previous_));
  if (previous_ != device) {
    GRAFT_CUDA_CHECK(cudaSetDevice(device));
  } else {
    previous_ = -1;
  }
}
DeviceGuard::~DeviceGuard() {
  if (previous_ < 0) return;
  const cudaError_t err = cudaSetDevice(previous_);
  if (err != cudaSuccess) {
    // A destructor cannot throw: say so once, and clear the error so that an
    // unrelated later check does not report it.
    (void)cudaGetLastError();
    std::fprintf(stderr, "graft: cudaSetDevice(%d) failed restoring the device: %s\n", previous_,
                 cudaGetErrorString(err));
  }
}

cudaStream_t current_stream(int device) { return state(device).stream; }

// cuBLAS and cuDNN handles must not be shared between host threads (cuDNN
// forbids it), so each thread gets its own per device, bound to the device's
// stream; they are destroyed when the thread exits.
struct ThreadHandles {
  cublasHandle_t cublas[kMaxDevices] = {};
  cudnnHandle_t cudnn[kMaxDevices] = {};
  ~ThreadHandles() {
    for (int d = 0; d < kMaxDevices; ++d) {
      // Destruction failures at thread exit cannot be reported to anyone.
      if (cublas[d]) (void)cublasDestroy(cublas[d]);
      if (cudnn[d]) (void)cudnnDestroy(cudnn[d]);
    }
  }
};
ThreadHandles& thread_handles() {
  thread_local ThreadHandles h;
  return h;
}

cublasHandle_t cublas_handle(int device) {
  DeviceState& s = state(device);
  cublasHandle_t& h = thread_handles().cublas[device];
  if (!h) {
    DeviceGuard guard(device);
    GRAFT_CUBLAS_CHECK(cublasCreate(&h));
    GRAFT_CUBLAS_CHECK(cublasSetStream(h, s.stream));
  }
  return h;
}

cudnnHandle_t cudnn_handle(int device) {
  DeviceState& s = state(device);
  cudnnHandle_t& h = thread_handles().cudnn[device];
  if (!h) {
    DeviceGuard guard(device);
    GRAFT_CUDNN_CHECK(cudnnCreate(&h));
    GRAFT_CUDNN_CHECK(cudnnSetStream(h, s.stream));
  }
  return h;
}

int* device_error_flag(int device) { return state(device).error_flag_device; }

void check_device_errors(int device) {
  DeviceState& s = state(device);
  GRAFT_CUDA_CHECK(cudaStreamSynchronize(s.stream));
  const int code = *static_cast<volatile int*>(s.error_flag);
  if (code == kNoDeviceError) return;
  *s.error_flag = kNoDeviceError;
  switch (code) {
    case kIndexOutOfRange:
      GRAFT_FAIL("CUDA kernel error on cuda:", device,
                 ": an index was out of range (index_select, index_add, gather or "
                 "scatter_add); the affected outputs are invalid");
    default:
      GRAFT_FAIL("CUDA kernel error on cuda:", device, ": code ", code);
  }
}

Workspace::Workspace(size_t nbytes, int device) : nbytes_(nbytes), device_(device) {
  if (nbytes > 0) ptr_ = allocator().allocate(nbytes, device);
}
Workspace::~Workspace() { allocator().deallocate(ptr_, nbytes_, device_); }

namespace {

// ---- the public interface's hooks (core/cuda.h) ----

MemoryStats memory_stats_impl(int device) {
  require_device(device);
  return allocator().stats(device);
}
void reset_peak_stats_impl(int device) {
  require_device(device);
  allocator().reset_peak(device);
}
void empty_cache_impl() {
  GRAFT_CHECK(available_impl(), device_unavailable_reason(DeviceType::CUDA));
  allocator().empty_cache();
}
void set_poison_impl(bool on) { allocator().set_poison(on); }
bool tf32_impl() {
  read_env();
  return g_tf32;
}
void set_tf32_impl(bool on) {
  read_env();
  g_tf32 = on;
}
bool native_gemm_impl() {
  read_env();
  return g_native_gemm;
}
void set_native_gemm_impl(bool on) {
  read_env();
  g_native_gemm = on;
}

// Pinned tensors (core/cuda.h's empty_pinned), apart from the staging pool.
void* host_alloc_impl(size_t nbytes) {
  GRAFT_CHECK(available_impl(), device_unavailable_reason(DeviceType::CUDA));
  void* p = nullptr;
  GRAFT_CUDA_CHECK(cudaHostAlloc(&p, nbytes, cudaHostAllocPortable));
  return p;
}
void host_free_impl(void* p) {
  // Runs in a storage's destructor, which cannot throw. At process exit the
  // runtime may already be unloading, and the memory goes with the process.
  const cudaError_t err = cudaFreeHost(p);
  if (err == cudaSuccess || err == cudaErrorCudartUnloading) return;
  (void)cudaGetLastError();
  std::fprintf(stderr, "graft: cudaFreeHost failed: %s\n", cudaGetErrorString(err));
}
bool is_pinned_impl(const void* p) {
  cudaPointerAttributes attr{};
  GRAFT_CUDA_CHECK(cudaPointerGetAttributes(&attr, p));
  return attr.type == cudaMemoryTypeHost;
}
void copy_async_impl(void* dst, const void* src, size_t nbytes, CopyKind kind, int device) {
  GRAFT_CHECK(kind != CopyKind::DeviceToDevice, "copy_async: host<->device copies only");
  DeviceGuard guard(device);
  GRAFT_CUDA_CHECK(cudaMemcpyAsync(
      dst, src, nbytes,
      kind == CopyKind::HostToDevice ? cudaMemcpyHostToDevice : cudaMemcpyDeviceToHost,
      current_stream(device)));
}

const bool hooks_registered = [] {
  BackendHooks h;
#ifdef GRAFT_CUDA_EMULATED
  h.emulated = true;
#endif
  h.memory_stats = &memory_stats_impl;
  h.reset_peak_stats = &reset_peak_stats_impl;
  h.empty_cache = &empty_cache_impl;
  h.set_poison_allocations = &set_poison_impl;
  h.tf32_enabled = &tf32_impl;
  h.set_tf32_enabled = &set_tf32_impl;
  h.use_native_gemm = &native_gemm_impl;
  h.set_native_gemm = &set_native_gemm_impl;
  h.host_alloc = &host_alloc_impl;
  h.host_free = &host_free_impl;
  h.is_pinned = &is_pinned_impl;
  h.copy_async = &copy_async_impl;
  register_backend_hooks(h);
  return true;
}();

}  // namespace

}  // namespace graft::cuda
