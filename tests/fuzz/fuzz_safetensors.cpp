// libFuzzer target: the safetensors reader (JSON header, dtypes, offsets) on
// arbitrary bytes, reading every tensor it returns.
#include <cstddef>
#include <cstdint>

#include "core/error.h"
#include "core/ops.h"
#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace graft;
  auto file = io::MappedFile::from_bytes({reinterpret_cast<const char*>(data), size}, "fuzz");
  try {
    for (const auto& [k, t] : io::load_safetensors(file).tensors)
      if (t.numel() > 0) (void)t.contiguous();
  } catch (const Error&) {
  }
  return 0;
}
