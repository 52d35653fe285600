// Devices and the per-device backend hooks (allocator, copies, sync).
// The CUDA backend (libgraft_cuda, graft::cuda) registers its hooks when it is
// loaded: linked into the program, or loaded by a shared libgraft the first time
// a CUDA device is asked for (found next to libgraft.so, or named by the
// environment variable GRAFT_CUDA_LIBRARY). Without it only the CPU is
// available, and asking for CUDA is a clear error that says why.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace graft {

enum class DeviceType : uint8_t { CPU = 0, CUDA = 1 };
constexpr int kNumDeviceTypes = 2;

struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;

  static Device cpu() { return {DeviceType::CPU, 0}; }
  static Device cuda(int index = 0) { return {DeviceType::CUDA, index}; }
  // "cpu", "cuda", "cuda:1"
  static Device parse(const std::string& s);

  bool is_cpu() const { return type == DeviceType::CPU; }
  bool is_cuda() const { return type == DeviceType::CUDA; }
  std::string str() const;
  bool operator==(const Device& o) const { return type == o.type && index == o.index; }
  bool operator!=(const Device& o) const { return !(*this == o); }
};

class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual void* allocate(size_t nbytes, int device_index) = 0;
  virtual void deallocate(void* ptr, size_t nbytes, int device_index) = 0;
};

enum class CopyKind { HostToDevice, DeviceToHost, DeviceToDevice };

// Hooks a non-CPU backend provides.
struct DeviceBackend {
  Allocator* allocator = nullptr;
  bool (*available)() = nullptr;
  int (*device_count)() = nullptr;
  // Byte copy between host and a device, or within one device.
  void (*copy_bytes)(void* dst, const void* src, size_t nbytes, CopyKind kind,
                     int device_index) = nullptr;
  void (*synchronize)(int device_index) = nullptr;
  std::string (*describe)(int device_index) = nullptr;
  // Why available() is false ("no device", "driver too old", ...); optional.
  std::string (*unavailable_reason)() = nullptr;
};

void register_device_backend(DeviceType type, const DeviceBackend& backend);
// Throws a clear graft::Error when the backend is not compiled in or no device is present.
const DeviceBackend& device_backend(DeviceType type);
// True when `device` can be used right now.
bool device_available(Device device);
// True for the CPU, and for a device type whose backend is linked into the
// program or can be loaded now (this call loads it), with or without a device.
bool device_backend_registered(DeviceType type);
// For messages: "CUDA not available: graft was built without the CUDA backend
// (rebuild with -DGRAFT_CUDA=ON)" and similar.
std::string device_unavailable_reason(DeviceType type);
// The CPU allocator (core/cpu_alloc.cpp): the pages of freed blocks of 1 MiB
// and more are pooled and handed out again (split, or moved together under one
// address), up to GRAFT_CPU_CACHE_MB (default 4096; 0: no pool, every block
// from malloc).
Allocator* cpu_allocator();
// Returns the pooled free CPU pages to the OS.
void empty_cpu_cache();
struct CpuMemoryStats {
  size_t allocated = 0;       // bytes of the tensors' storage now live (as asked for)
  size_t peak_allocated = 0;  // high-water mark of `allocated` since start / reset_cpu_peak_stats()
  size_t cached = 0;          // bytes of free pages pooled for reuse
};
CpuMemoryStats cpu_memory_stats();
void reset_cpu_peak_stats();

// Parses a --device value ("cpu", "cuda", "cuda:N") and checks that the device
// can be used now; the error says why not and suggests --device cpu.
Device require_device(const std::string& spec);

inline bool cuda_available() { return device_available(Device::cuda()); }

}  // namespace graft
