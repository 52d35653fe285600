// The emulated CUDA runtime: GRAFT_EMULATED_DEVICES devices (default 1) whose
// memory is host memory. Rules kept from CUDA:
// - each stream is an asynchronous FIFO run by its own worker thread; a
//   device-to-pinned copy lands only when the stream gets there, so host code
//   that forgets to synchronise reads stale data;
// - events complete when their stream reaches them; an event recorded on a
//   stream of another device is cudaErrorInvalidResourceHandle;
// - launch-configuration errors are non-sticky (cleared by cudaGetLastError);
//   a failing kernel (synccheck) makes the device's error sticky: every later
//   call on it fails until cudaDeviceReset;
// - a launch into a stream of another device than the current one fails;
// - fresh device allocations are filled with 0xFF bytes (initcheck: NaN in
//   floating dtypes, -1 in integers), pinned ones too.
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "cuda_runtime.h"
#include "kernels/cuda/emu/block.h"

struct CUstream_st {
  int device = 0;
  std::mutex mutex;
  std::condition_variable cv;
  std::deque<std::pair<std::function<void()>, bool>>
      queue;          // (work, runs even after a sticky error)
  bool busy = false;  // the worker is running a task
  bool stop = false;
  std::thread worker;

  explicit CUstream_st(int d) : device(d) {
    worker = std::thread([this] { loop(); });
  }
  ~CUstream_st() {
    {
      std::lock_guard<std::mutex> lock(mutex);
      stop = true;
    }
    cv.notify_all();
    worker.join();
  }
  void push(std::function<void()> f, bool always = false) {
    {
      std::lock_guard<std::mutex> lock(mutex);
      queue.emplace_back(std::move(f), always);
    }
    cv.notify_all();
  }
  void drain() {
    std::unique_lock<std::mutex> lock(mutex);
    cv.wait(lock, [&] { return queue.empty() && !busy; });
  }
  bool idle() {
    std::lock_guard<std::mutex> lock(mutex);
    return queue.empty() && !busy;
  }
  void loop();
};

// Queued work holds the state, not the handle: cudaEventDestroy may run while
// a record or wait is still queued (CUDA defers the release).
struct EventState {
  std::mutex mutex;
  std::condition_variable cv;
  uint64_t recorded = 0, completed = 0;
};
struct CUevent_st {
  int device = 0;
  std::shared_ptr<EventState> state = std::make_shared<EventState>();
};

namespace graft::cuda::emu {
namespace {

constexpr int kMaxDevices = 16;

int device_count() {
  static const int n = [] {
    const char* s = std::getenv("GRAFT_EMULATED_DEVICES");
    const int v = s ? std::atoi(s) : 1;
    return std::clamp(v, 0, kMaxDevices);
  }();
  return n;
}

struct DeviceState {
  std::mutex mutex;
  cudaError_t sticky = cudaSuccess;
  std::string sticky_message;
  std::vector<CUstream_st*> streams;
  CUstream_st* null_stream = nullptr;
};
DeviceState* devices() {
  static DeviceState* d = new DeviceState[kMaxDevices];
  return d;
}

thread_local int t_device = 0;
thread_local cudaError_t t_last = cudaSuccess;
thread_local std::string t_message;

struct Allocation {
  size_t size;
  int device;  // -1: pinned host memory
  bool mapped;
};
std::mutex g_alloc_mutex;
std::map<uintptr_t, Allocation>& allocations() {
  static auto* m = new std::map<uintptr_t, Allocation>();
  return *m;
}

// Records a failing call's error as the thread's last error.
cudaError_t fail(cudaError_t err, std::string message) {
  t_last = err;
  t_message = std::move(message);
  return err;
}

cudaError_t sticky(int device) {
  DeviceState& d = devices()[device];
  std::lock_guard<std::mutex> lock(d.mutex);
  if (d.sticky != cudaSuccess) {
    t_last = d.sticky;
    t_message = d.sticky_message;
  }
  return d.sticky;
}

const Allocation* find(const void* p, uintptr_t& base) {
  auto& m = allocations();
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  auto it = m.upper_bound(a);
  if (it == m.begin()) return nullptr;
  --it;
  if (a >= it->first + std::max<size_t>(it->second.size, 1)) return nullptr;
  base = it->first;
  return &it->second;
}

bool in_device(const void* p, size_t n, int device) {
  std::lock_guard<std::mutex> lock(g_alloc_mutex);
  uintptr_t base = 0;
  const Allocation* a = find(p, base);
  if (!a || a->device < 0 || (device >= 0 && a->device != device)) return false;
  return reinterpret_cast<uintptr_t>(p) + n <= base + a->size;
}
bool is_pinned(const void* p) {
  std::lock_guard<std::mutex> lock(g_alloc_mutex);
  uintptr_t base = 0;
  const Allocation* a = find(p, base);
  return a && a->device < 0;
}

CUstream_st* resolve(cudaStream_t s) {
  if (s) return s;
  DeviceState& d = devices()[t_device];
  std::lock_guard<std::mutex> lock(d.mutex);
  if (!d.null_stream) {
    d.null_stream = new CUstream_st(t_device);  // leaked with the device
    d.streams.push_back(d.null_stream);
  }
  return d.null_stream;
}

// Exactly `size` bytes (256-aligned like cudaMalloc), so that ASan reports an
// access one element past the end (memcheck), not only past a rounded size.
void* allocate(size_t size) {
  void* p = nullptr;
  if (posix_memalign(&p, 256, std::max<size_t>(size, 1)) != 0) return nullptr;
  std::memset(p, 0xFF, size);
  return p;
}

cudaError_t sync_device(int device) {
  DeviceState& d = devices()[device];
  std::vector<CUstream_st*> streams;
  {
    std::lock_guard<std::mutex> lock(d.mutex);
    streams = d.streams;
  }
  for (CUstream_st* s : streams) s->drain();
  return sticky(device);
}

}  // namespace

bool is_device_range(const void* p, size_t n, int device) { return in_device(p, n, device); }

int stream_device(cudaStream_t stream) { return stream ? stream->device : t_device; }

cudaError_t enqueue(cudaStream_t stream, std::function<void()> work) {
  CUstream_st* s = resolve(stream);
  if (const cudaError_t e = sticky(s->device)) return e;
  s->push(std::move(work));
  return cudaSuccess;
}

void report_device_error(int device, const std::string& message) {
  DeviceState& d = devices()[device];
  std::lock_guard<std::mutex> lock(d.mutex);
  if (d.sticky == cudaSuccess) {
    d.sticky = cudaErrorLaunchFailure;
    d.sticky_message = message;
    std::fprintf(stderr, "graft emulated cuda:%d: %s\n", device, message.c_str());
  }
}

const char* kernel_name_from(const char* pretty) {
  // "... launch_kernel(dim3, ...) [with auto Kernel = NAME; Args = {...}]"
  std::string s(pretty);
  const std::string key = "Kernel = ";
  size_t b = s.find(key);
  if (b == std::string::npos) return "kernel";
  b += key.size();
  int depth = 0;
  size_t e = b;
  for (; e < s.size(); ++e) {
    const char c = s[e];
    if (c == '<' || c == '(') ++depth;
    if (c == '>' || c == ')') --depth;
    if (depth == 0 && (c == ';' || c == ']')) break;
  }
  std::string name = s.substr(b, e - b);
  if (!name.empty() && name[0] == '&') name.erase(0, 1);
  // Kept for the process (set nodes do not move; reachable, so no leak report).
  static std::mutex mutex;
  static auto* names = new std::set<std::string>();
  std::lock_guard<std::mutex> lock(mutex);
  return names->insert(name).first->c_str();
}

cudaError_t launch(cudaStream_t stream, Launch l) {
  const dim3 g = l.grid, b = l.block;
  if (g.x == 0 || g.y == 0 || g.z == 0 || b.x == 0 || b.y == 0 || b.z == 0 || b.x > 1024 ||
      b.y > 1024 || b.z > 64 || static_cast<uint64_t>(b.x) * b.y * b.z > 1024 ||
      g.x > 0x7fffffffu || g.y > 65535 || g.z > 65535 || l.dynamic_shared > (48u << 10))
    return fail(cudaErrorInvalidConfiguration,
                std::string("invalid configuration for ") + l.kernel_name + ": grid (" +
                    std::to_string(g.x) + "," + std::to_string(g.y) + "," + std::to_string(g.z) +
                    "), block (" + std::to_string(b.x) + "," + std::to_string(b.y) + "," +
                    std::to_string(b.z) + ")");
  CUstream_st* s = resolve(stream);
  if (s->device != t_device)
    return fail(cudaErrorInvalidResourceHandle,
                std::string("launch of ") + l.kernel_name +
                    " on a stream of cuda:" + std::to_string(s->device) +
                    " while cuda:" + std::to_string(t_device) + " is current");
  if (const cudaError_t e = sticky(s->device)) return e;
  const int device = s->device;
  s->push([device, l = std::move(l)] {
    const std::string err = run_launch(l);
    if (!err.empty()) report_device_error(device, err);
  });
  return cudaSuccess;
}

}  // namespace graft::cuda::emu

using namespace graft::cuda::emu;

void CUstream_st::loop() {
  for (;;) {
    std::function<void()> f;
    bool always;
    {
      std::unique_lock<std::mutex> lock(mutex);
      cv.wait(lock, [&] { return stop || !queue.empty(); });
      if (queue.empty()) return;
      f = std::move(queue.front().first);
      always = queue.front().second;
      queue.pop_front();
      busy = true;
    }
    // After a sticky error the device runs nothing more.
    bool skip;
    {
      DeviceState& d = devices()[device];
      std::lock_guard<std::mutex> lock(d.mutex);
      skip = d.sticky != cudaSuccess && !always;
    }
    if (!skip) f();
    {
      std::lock_guard<std::mutex> lock(mutex);
      busy = false;
    }
    cv.notify_all();
  }
}

// ---- device management and errors ----
cudaError_t cudaGetDeviceCount(int* count) {
  *count = device_count();
  if (*count == 0) return fail(cudaErrorNoDevice, "GRAFT_EMULATED_DEVICES=0: no emulated device");
  return cudaSuccess;
}
cudaError_t cudaGetDevice(int* device) {
  *device = t_device;
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int device) {
  if (device < 0 || device >= device_count())
    return fail(cudaErrorInvalidDevice, "cudaSetDevice(" + std::to_string(device) + "): " +
                                            std::to_string(device_count()) + " emulated device(s)");
  t_device = device;
  return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device) {
  if (device < 0 || device >= device_count()) return fail(cudaErrorInvalidDevice, "");
  *prop = cudaDeviceProp{};
  std::snprintf(prop->name, sizeof(prop->name), "graft emulated CUDA device %d", device);
  prop->totalGlobalMem = size_t{16} << 30;
  prop->sharedMemPerBlock = 48 << 10;
  prop->warpSize = 32;
  prop->maxThreadsPerBlock = 1024;
  prop->maxThreadsDim[0] = prop->maxThreadsDim[1] = 1024;
  prop->maxThreadsDim[2] = 64;
  prop->maxGridSize[0] = 0x7fffffff;
  prop->maxGridSize[1] = prop->maxGridSize[2] = 65535;
  prop->major = 9;
  prop->minor = 0;
  prop->multiProcessorCount = static_cast<int>(std::thread::hardware_concurrency());
  return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize() { return sync_device(t_device); }
cudaError_t cudaDeviceReset() {
  (void)sync_device(t_device);
  DeviceState& d = devices()[t_device];
  std::lock_guard<std::mutex> lock(d.mutex);
  d.sticky = cudaSuccess;
  d.sticky_message.clear();
  t_last = cudaSuccess;
  return cudaSuccess;
}
cudaError_t cudaGetLastError() {
  const cudaError_t sticky_err = sticky(t_device);
  if (sticky_err != cudaSuccess) return sticky_err;
  const cudaError_t e = t_last;
  t_last = cudaSuccess;
  return e;
}
cudaError_t cudaPeekAtLastError() {
  const cudaError_t sticky_err = sticky(t_device);
  return sticky_err != cudaSuccess ? sticky_err : t_last;
}

const char* cudaGetErrorName(cudaError_t err) {
  switch (err) {
#define GRAFT_EMU_NAME(e) \
  case e:                 \
    return #e;
    GRAFT_EMU_NAME(cudaSuccess)
    GRAFT_EMU_NAME(cudaErrorInvalidValue)
    GRAFT_EMU_NAME(cudaErrorMemoryAllocation)
    GRAFT_EMU_NAME(cudaErrorInitializationError)
    GRAFT_EMU_NAME(cudaErrorCudartUnloading)
    GRAFT_EMU_NAME(cudaErrorInvalidConfiguration)
    GRAFT_EMU_NAME(cudaErrorInvalidDevicePointer)
    GRAFT_EMU_NAME(cudaErrorInvalidMemcpyDirection)
    GRAFT_EMU_NAME(cudaErrorNoDevice)
    GRAFT_EMU_NAME(cudaErrorInvalidDevice)
    GRAFT_EMU_NAME(cudaErrorInvalidResourceHandle)
    GRAFT_EMU_NAME(cudaErrorNotReady)
    GRAFT_EMU_NAME(cudaErrorIllegalAddress)
    GRAFT_EMU_NAME(cudaErrorLaunchFailure)
#undef GRAFT_EMU_NAME
  }
  return "cudaErrorUnknown";
}
// The thread's last failing call explains itself; other codes get a generic text.
const char* cudaGetErrorString(cudaError_t err) {
  if (err == t_last && !t_message.empty()) return t_message.c_str();
  return err == cudaSuccess ? "no error" : cudaGetErrorName(err);
}

// ---- memory ----
cudaError_t cudaMalloc(void** ptr, size_t size) {
  if (const cudaError_t e = sticky(t_device)) return e;
  *ptr = nullptr;
  if (size == 0) return cudaSuccess;
  void* p = allocate(size);
  if (!p) return fail(cudaErrorMemoryAllocation, "out of host memory for the emulated device");
  std::lock_guard<std::mutex> lock(g_alloc_mutex);
  allocations()[reinterpret_cast<uintptr_t>(p)] = {size, t_device, false};
  *ptr = p;
  return cudaSuccess;
}
cudaError_t cudaFree(void* ptr) {
  if (!ptr) return cudaSuccess;
  int device;
  {
    std::lock_guard<std::mutex> lock(g_alloc_mutex);
    auto it = allocations().find(reinterpret_cast<uintptr_t>(ptr));
    if (it == allocations().end() || it->second.device < 0)
      return fail(cudaErrorInvalidValue, "cudaFree of a pointer cudaMalloc did not return");
    device = it->second.device;
  }
  // Like CUDA: cudaFree waits for the device, so no queued kernel still uses it.
  (void)sync_device(device);
  {
    std::lock_guard<std::mutex> lock(g_alloc_mutex);
    allocations().erase(reinterpret_cast<uintptr_t>(ptr));
  }
  std::free(ptr);
  return sticky(device);
}
cudaError_t cudaHostAlloc(void** ptr, size_t size, unsigned flags) {
  void* p = allocate(size);
  if (!p) return fail(cudaErrorMemoryAllocation, "out of pinned host memory");
  std::lock_guard<std::mutex> lock(g_alloc_mutex);
  allocations()[reinterpret_cast<uintptr_t>(p)] = {size, -1, (flags & cudaHostAllocMapped) != 0};
  *ptr = p;
  return cudaSuccess;
}
cudaError_t cudaMallocHost(void** ptr, size_t size) {
  return cudaHostAlloc(ptr, size, cudaHostAllocDefault);
}
cudaError_t cudaFreeHost(void* ptr) {
  if (!ptr) return cudaSuccess;
  {
    std::lock_guard<std::mutex> lock(g_alloc_mutex);
    auto it = allocations().find(reinterpret_cast<uintptr_t>(ptr));
    if (it == allocations().end() || it->second.device >= 0)
      return fail(cudaErrorInvalidValue, "cudaFreeHost of a pointer cudaHostAlloc did not return");
    allocations().erase(it);
  }
  for (int d = 0; d < device_count(); ++d) (void)sync_device(d);
  std::free(ptr);
  return cudaSuccess;
}
cudaError_t cudaPointerGetAttributes(cudaPointerAttributes* attr, const void* ptr) {
  std::lock_guard<std::mutex> lock(g_alloc_mutex);
  uintptr_t base = 0;
  const Allocation* a = find(ptr, base);
  *attr = cudaPointerAttributes{cudaMemoryTypeUnregistered, -1, nullptr, const_cast<void*>(ptr)};
  if (a && a->device >= 0) {
    *attr = {cudaMemoryTypeDevice, a->device, const_cast<void*>(ptr), nullptr};
  } else if (a) {
    *attr = {cudaMemoryTypeHost, -1, a->mapped ? const_cast<void*>(ptr) : nullptr,
             const_cast<void*>(ptr)};
  }
  return cudaSuccess;
}

cudaError_t cudaHostGetDevicePointer(void** device_ptr, void* host_ptr, unsigned) {
  std::lock_guard<std::mutex> lock(g_alloc_mutex);
  uintptr_t base = 0;
  const Allocation* a = find(host_ptr, base);
  if (!a || a->device >= 0 || !a->mapped)
    return fail(cudaErrorInvalidValue,
                "cudaHostGetDevicePointer: not mapped pinned memory (cudaHostAllocMapped)");
  *device_ptr = host_ptr;  // one address space, as with UVA
  return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t n, cudaMemcpyKind kind,
                            cudaStream_t stream) {
  CUstream_st* s = resolve(stream);
  if (const cudaError_t e = sticky(s->device)) return e;
  if (n == 0) return cudaSuccess;
  const bool dst_dev = in_device(dst, n, -1), src_dev = in_device(src, n, -1);
  const bool ok = (kind == cudaMemcpyHostToDevice && dst_dev && !src_dev) ||
                  (kind == cudaMemcpyDeviceToHost && src_dev && !dst_dev) ||
                  (kind == cudaMemcpyDeviceToDevice && src_dev && dst_dev) ||
                  (kind == cudaMemcpyHostToHost && !src_dev && !dst_dev) ||
                  kind == cudaMemcpyDefault;
  if (!ok)
    return fail(cudaErrorInvalidValue,
                "cudaMemcpyAsync: a range is not in device memory of the kind given (" +
                    std::to_string(n) + " bytes)");
  if (kind == cudaMemcpyHostToDevice && !is_pinned(src)) {
    // Pageable source: CUDA stages it before returning, so the caller may reuse it.
    auto copy = std::make_shared<std::vector<char>>(static_cast<const char*>(src),
                                                    static_cast<const char*>(src) + n);
    s->push([dst, copy] { std::memcpy(dst, copy->data(), copy->size()); });
    return cudaSuccess;
  }
  if (kind == cudaMemcpyDeviceToHost && !is_pinned(dst)) {
    // Pageable destination: the copy completes before the call returns.
    s->push([=] { std::memcpy(dst, src, n); });
    s->drain();
    return sticky(s->device);
  }
  s->push([=] { std::memmove(dst, src, n); });
  return cudaSuccess;
}
cudaError_t cudaMemcpy(void* dst, const void* src, size_t n, cudaMemcpyKind kind) {
  const cudaError_t e = cudaMemcpyAsync(dst, src, n, kind, nullptr);
  if (e != cudaSuccess) return e;
  return sync_device(t_device);
}
cudaError_t cudaMemsetAsync(void* ptr, int value, size_t n, cudaStream_t stream) {
  CUstream_st* s = resolve(stream);
  if (const cudaError_t e = sticky(s->device)) return e;
  if (n == 0) return cudaSuccess;
  if (!in_device(ptr, n, -1))
    return fail(cudaErrorInvalidValue, "cudaMemsetAsync: range not in device memory");
  s->push([=] { std::memset(ptr, value, n); });
  return cudaSuccess;
}
cudaError_t cudaMemset(void* ptr, int value, size_t n) {
  const cudaError_t e = cudaMemsetAsync(ptr, value, n, nullptr);
  return e != cudaSuccess ? e : sync_device(t_device);
}

// ---- streams ----
cudaError_t cudaStreamCreate(cudaStream_t* stream) {
  return cudaStreamCreateWithFlags(stream, cudaStreamDefault);
}
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned) {
  if (const cudaError_t e = sticky(t_device)) return e;
  auto* s = new CUstream_st(t_device);
  DeviceState& d = devices()[t_device];
  std::lock_guard<std::mutex> lock(d.mutex);
  d.streams.push_back(s);
  *stream = s;
  return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  if (!stream) return fail(cudaErrorInvalidResourceHandle, "cudaStreamDestroy(null stream)");
  stream->drain();
  DeviceState& d = devices()[stream->device];
  {
    std::lock_guard<std::mutex> lock(d.mutex);
    d.streams.erase(std::remove(d.streams.begin(), d.streams.end(), stream), d.streams.end());
  }
  delete stream;
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  CUstream_st* s = resolve(stream);
  s->drain();
  return sticky(s->device);
}
cudaError_t cudaStreamQuery(cudaStream_t stream) {
  CUstream_st* s = resolve(stream);
  if (const cudaError_t e = sticky(s->device)) return e;
  return s->idle() ? cudaSuccess : cudaErrorNotReady;
}
cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned) {
  CUstream_st* s = resolve(stream);
  if (!event) return fail(cudaErrorInvalidResourceHandle, "cudaStreamWaitEvent: null event");
  if (const cudaError_t e = sticky(s->device)) return e;
  std::shared_ptr<EventState> e = event->state;
  uint64_t target;
  {
    std::lock_guard<std::mutex> lock(e->mutex);
    target = e->recorded;
  }
  s->push([e, target] {
    std::unique_lock<std::mutex> lock(e->mutex);
    e->cv.wait(lock, [&] { return e->completed >= target; });
  });
  return cudaSuccess;
}

// ---- events ----
cudaError_t cudaEventCreate(cudaEvent_t* event) {
  return cudaEventCreateWithFlags(event, cudaEventDefault);
}
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned) {
  auto* e = new CUevent_st;
  e->device = t_device;
  *event = e;
  return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t event) {
  if (!event) return fail(cudaErrorInvalidResourceHandle, "cudaEventDestroy(null)");
  delete event;  // queued records and waits keep the shared state alive
  return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
  if (!event) return fail(cudaErrorInvalidResourceHandle, "cudaEventRecord: null event");
  CUstream_st* s = resolve(stream);
  if (event->device != s->device)
    return fail(cudaErrorInvalidResourceHandle,
                "cudaEventRecord: event of cuda:" + std::to_string(event->device) +
                    " recorded on a stream of cuda:" + std::to_string(s->device));
  if (const cudaError_t e = sticky(s->device)) return e;
  std::shared_ptr<EventState> st = event->state;
  uint64_t gen;
  {
    std::lock_guard<std::mutex> lock(st->mutex);
    gen = ++st->recorded;
  }
  s->push(
      [st, gen] {
        {
          std::lock_guard<std::mutex> lock(st->mutex);
          st->completed = std::max(st->completed, gen);
        }
        st->cv.notify_all();
      },
      /*always=*/true);  // so that cudaEventSynchronize returns after a fault too
  return cudaSuccess;
}
cudaError_t cudaEventQuery(cudaEvent_t event) {
  if (!event) return fail(cudaErrorInvalidResourceHandle, "cudaEventQuery: null event");
  EventState& st = *event->state;
  std::lock_guard<std::mutex> lock(st.mutex);
  // cudaErrorNotReady is returned, not recorded as the last error.
  return st.completed >= st.recorded ? cudaSuccess : cudaErrorNotReady;
}
cudaError_t cudaEventSynchronize(cudaEvent_t event) {
  if (!event) return fail(cudaErrorInvalidResourceHandle, "cudaEventSynchronize: null event");
  {
    EventState& st = *event->state;
    std::unique_lock<std::mutex> lock(st.mutex);
    st.cv.wait(lock, [&] { return st.completed >= st.recorded; });
  }
  return sticky(event->device);
}
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t, cudaEvent_t) {
  *ms = 0;  // the emulator has no device clock
  return cudaSuccess;
}
