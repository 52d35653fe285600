// libFuzzer target: the IDX reader (MNIST container) on arbitrary bytes, both
// in memory and through read_idx's file path with its gzip layer.
#include <cstddef>
#include <cstdint>

#include "core/error.h"
#include "data/idx.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace graft;
  try {
    (void)data::parse_idx({data, size}, "fuzz");
  } catch (const Error&) {
  }
  fuzz::MemFile f(data, size);
  if (!f.ok()) return 0;
  try {
    (void)data::read_idx(f.path());
  } catch (const Error&) {
  }
  return 0;
}
