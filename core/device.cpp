#include "core/device.h"

#include <cstdlib>
#include <new>
#include <vector>

#ifdef GRAFT_CUDA_LIBRARY_FILE
#include <dlfcn.h>
#endif

#include "core/env.h"
#include "core/error.h"

namespace graft {

namespace {

DeviceBackend g_backends[kNumDeviceTypes];

}  // namespace

Device Device::parse(const std::string& s) {
  if (s == "cpu") return cpu();
  if (s == "cuda") return cuda(0);
  if (s.rfind("cuda:", 0) == 0) {
    const std::string idx = s.substr(5);
    GRAFT_CHECK(!idx.empty() && idx.find_first_not_of("0123456789") == std::string::npos,
                "invalid device '", s, "' (expected cpu, cuda or cuda:N)");
    return cuda(std::stoi(idx));
  }
  GRAFT_FAIL("invalid device '", s, "' (expected cpu, cuda or cuda:N)");
}

std::string Device::str() const {
  if (is_cpu()) return "cpu";
  return "cuda:" + std::to_string(index);
}

void register_device_backend(DeviceType type, const DeviceBackend& backend) {
  g_backends[static_cast<int>(type)] = backend;
}

namespace {

// The CUDA backend is libgraft_cuda. When the program links it, its
// registrations ran at load time; otherwise a shared libgraft loads it now
// (once): $GRAFT_CUDA_LIBRARY if set, else the file next to libgraft itself
// (found through dladdr), else the dynamic loader's default search. Returns
// why there is no backend, or "" once it is registered.
const std::string& load_cuda_backend() {
#if defined(GRAFT_CUDA_LIBRARY_FILE)
  // Every caller passes through this one guarded initialisation, so a thread
  // never reads the backend hooks while another one's dlopen writes them.
  static const std::string why = []() -> std::string {
    if (g_backends[static_cast<int>(DeviceType::CUDA)].available) return "";  // linked
    std::vector<std::string> candidates;
    if (const auto env = env_string("GRAFT_CUDA_LIBRARY")) {
      candidates.push_back(*env);
    } else {
      Dl_info self{};
      if (dladdr(static_cast<const void*>(g_backends), &self) && self.dli_fname) {
        const std::string path = self.dli_fname;
        const size_t slash = path.rfind('/');
        if (slash != std::string::npos)
          candidates.push_back(path.substr(0, slash + 1) + GRAFT_CUDA_LIBRARY_FILE);
      }
      candidates.push_back(GRAFT_CUDA_LIBRARY_FILE);
    }
    std::string errors;
    for (const std::string& candidate : candidates) {
      if (dlopen(candidate.c_str(), RTLD_NOW | RTLD_GLOBAL)) {
        if (g_backends[static_cast<int>(DeviceType::CUDA)].available) return "";
        return candidate + " was loaded but registered no CUDA backend";
      }
      const char* err = dlerror();
      errors += (errors.empty() ? "" : "; ") + std::string(err ? err : candidate);
    }
    return "cannot load the CUDA backend " + std::string(GRAFT_CUDA_LIBRARY_FILE) + " (" + errors +
           ")";
  }();
  return why;
#elif defined(GRAFT_CUDA_STATIC_BACKEND)
  static const std::string why =
      "this program does not link graft's CUDA backend (graft::cuda, libgraft_cuda.a)";
  return why;
#else
  static const std::string why =
      "graft was built without the CUDA backend (rebuild with -DGRAFT_CUDA=ON)";
  return why;
#endif
}

}  // namespace

std::string device_unavailable_reason(DeviceType type) {
  if (type == DeviceType::CPU) return "";
  const std::string& why = load_cuda_backend();
  const DeviceBackend& b = g_backends[static_cast<int>(type)];
  if (!b.available) return "CUDA not available: " + (why.empty() ? "no backend" : why);
  if (!b.available())
    return "CUDA not available: " + (b.unavailable_reason
                                         ? b.unavailable_reason()
                                         : "no CUDA device was found on this machine");
  return "";
}

bool device_backend_registered(DeviceType type) {
  if (type == DeviceType::CPU) return true;
  (void)load_cuda_backend();
  return g_backends[static_cast<int>(type)].available != nullptr;
}

const DeviceBackend& device_backend(DeviceType type) {
  GRAFT_CHECK(type != DeviceType::CPU, "device_backend: the CPU has no backend hooks");
  const std::string why = device_unavailable_reason(type);
  GRAFT_CHECK(why.empty(), why);
  return g_backends[static_cast<int>(type)];
}

bool device_available(Device device) {
  if (device.is_cpu()) return true;
  if (!device_unavailable_reason(device.type).empty()) return false;
  const DeviceBackend& b = g_backends[static_cast<int>(device.type)];
  return !b.device_count || device.index < b.device_count();
}

Device require_device(const std::string& spec) {
  const Device device = Device::parse(spec);
  GRAFT_CHECK(device_available(device), "--device ", spec, ": ",
              device.is_cuda() && device_unavailable_reason(device.type).empty()
                  ? "no such CUDA device"
                  : device_unavailable_reason(device.type),
              "; use --device cpu");
  return device;
}

}  // namespace graft
