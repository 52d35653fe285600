// libFuzzer target: the whole weights-loading path a user's file takes,
// io::load_weights_file (format detection, then the zip or legacy .pth reader
// with its pickle and storages, safetensors or .npy), reading every tensor.
// Any crash, leak, hang or sanitizer report is a bug; graft::Error is the
// expected outcome for bad input.
#include <cstddef>
#include <cstdint>

#include "core/error.h"
#include "core/ops.h"
#include "io/state_dict.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace graft;
  fuzz::MemFile f(data, size);
  if (!f.ok()) return 0;
  try {
    for (const auto& [k, t] : io::load_weights_file(f.path()))
      if (t.numel() > 0 && t.numel() < (1 << 20)) (void)t.contiguous();
  } catch (const Error&) {
  }
  return 0;
}
