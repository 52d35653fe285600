// libFuzzer target: the zip reader (central directory, zip64, local headers,
// deflate) and every entry's storage with its CRC check, on arbitrary bytes.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/error.h"
#include "io/zip.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace graft;
  auto file = io::MappedFile::from_bytes({reinterpret_cast<const char*>(data), size}, "fuzz");
  try {
    io::ZipReader z(file);
    for (const auto& e : z.entries()) (void)z.storage(e, true);
  } catch (const Error&) {
  }
  return 0;
}
