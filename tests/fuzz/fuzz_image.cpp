// libFuzzer target: the image decoders (JPEG through libjpeg-turbo when built
// with it, and through stb_image; PNG, BMP, GIF, TGA, PSD, PNM through
// stb_image) on arbitrary bytes, with the conversion to 8-bit RGB.
#include <cstddef>
#include <cstdint>

#include "core/error.h"
#include "data/image.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace graft;
  // A 16.7M-pixel cap instead of PIL's 179M keeps every input's pixel buffers
  // under ~200 MB, so the fuzzer spends its time on parsing instead of on
  // allocating and zero-filling; the limit check itself is the same code.
  static const bool capped = (data::set_max_image_pixels(int64_t{1} << 24), true);
  (void)capped;
  for (const bool stb : {false, true}) {
    data::set_prefer_stb_jpeg(stb);
    try {
      const data::Image im = data::decode_image(data, size, "fuzz");
      if (im.pixels.size() != static_cast<size_t>(im.height * im.width * 3)) __builtin_trap();
    } catch (const Error&) {
    }
  }
  return 0;
}
