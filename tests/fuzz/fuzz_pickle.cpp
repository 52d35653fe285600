// libFuzzer target: the allow-list pickle reader on arbitrary bytes. Persistent
// ids resolve to a small real storage so tensor rebuilding (bounds checks on
// size/stride/offset) is exercised too. Any crash, leak, hang or sanitizer
// report is a bug; graft::Error is the expected outcome for bad input.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/error.h"
#include "io/pickle.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace graft;
  auto storage = std::make_shared<StorageImpl>(64, Device::cpu());
  io::PersistentLoad pl = [&](const io::Value& pid) -> io::ValuePtr {
    auto v = std::make_shared<io::Value>();
    v->kind = io::Value::Kind::Storage;
    v->storage = storage;
    v->storage_dtype = DType::Float32;
    v->storage_numel = 16;
    v->storage_key = pid.repr(20);
    return v;
  };
  try {
    io::ValuePtr v = io::unpickle(std::string_view(reinterpret_cast<const char*>(data), size), pl, "fuzz");
    (void)v->repr(1000);
    if (v->kind == io::Value::Kind::Tensor && v->tensor.numel() > 0) (void)v->tensor.contiguous();
  } catch (const Error&) {
  }
  return 0;
}
