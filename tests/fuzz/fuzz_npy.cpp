// libFuzzer target: the .npy reader (magic, version, header dict, dtype,
// shape, fortran order) on arbitrary bytes.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/error.h"
#include "core/ops.h"
#include "io/npy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace graft;
  try {
    const Tensor t = io::parse_npy({reinterpret_cast<const char*>(data), size}, "fuzz");
    if (t.numel() > 0) (void)t.contiguous();
  } catch (const Error&) {
  }
  return 0;
}
