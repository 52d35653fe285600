// libFuzzer target: whole checkpoint files — the zip reader (zip64, deflate,
// local headers), torch's zip and legacy .pth layouts with their storages,
// safetensors headers and .npy headers — all on arbitrary bytes.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/error.h"
#include "io/npy.h"
#include "io/pth.h"
#include "io/safetensors.h"
#include "io/zip.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace graft;
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  auto file = io::MappedFile::from_bytes(bytes, "fuzz");
  try {
    io::ZipReader z(file);
    for (const auto& e : z.entries()) (void)z.storage(e, true);
  } catch (const Error&) {
  }
  try {
    io::Checkpoint c = io::load_pth(file);
    for (const auto& [k, t] : io::extract_state_dict(c.root))
      if (t.numel() > 0) (void)t.contiguous();
  } catch (const Error&) {
  }
  try {
    (void)io::load_safetensors(file);
  } catch (const Error&) {
  }
  try {
    (void)io::parse_npy(bytes);
  } catch (const Error&) {
  }
  return 0;
}
