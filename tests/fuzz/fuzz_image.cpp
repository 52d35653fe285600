// libFuzzer target: the image decoders (JPEG through libjpeg-turbo when built
// with it, and through stb_image; PNG, BMP, GIF, TGA, PSD, PNM through
// stb_image) on arbitrary bytes, with the conversion to 8-bit RGB.
#include <cstddef>
#include <cstdint>

#include "core/error.h"
#include "data/image.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace graft;
  // A 65,536-pixel cap instead of PIL's 179M. stb's decoders fill every pixel
  // of the header's size even when the data ends early (TGA one stbi__get8
  // per pixel, JPEG a block per 8x8), so a 20-byte input that claims 4096 x
  // 4096 costs 16.7M instrumented iterations: with a 2^24 cap those inputs
  // held the target at ~120 exec/s. Every code path but the loop count is the
  // same at 256 x 256, and the limit check itself is the same code.
  static const bool capped = (data::set_max_image_pixels(int64_t{1} << 16), true);
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
