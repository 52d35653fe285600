// Decoded images: 8-bit RGB, height x width x 3 (HWC), the layout PIL and
// torchvision's ToTensor start from. Decoding is libjpeg-turbo's TurboJPEG API
// for JPEG when graft was built with it (bit-identical to PIL, which also links
// libjpeg-turbo, and faster) and stb_image for everything else (PNG, BMP, GIF,
// TGA, PSD, PNM and JPEG without TurboJPEG). Grayscale and RGBA inputs are
// converted to RGB the way PIL's convert("RGB") does it (gray replicated,
// alpha dropped).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace graft::data {

struct Image {
  int64_t height = 0;
  int64_t width = 0;
  static constexpr int64_t channels = 3;
  std::vector<uint8_t> pixels;  // height * width * 3 bytes, row-major RGB

  Image() = default;
  Image(int64_t h, int64_t w, uint8_t fill = 0);

  bool empty() const { return height == 0 || width == 0; }
  uint8_t* row(int64_t y) { return pixels.data() + y * width * channels; }
  const uint8_t* row(int64_t y) const { return pixels.data() + y * width * channels; }
  uint8_t& at(int64_t y, int64_t x, int64_t c) { return pixels[(y * width + x) * channels + c]; }
  uint8_t at(int64_t y, int64_t x, int64_t c) const {
    return pixels[(y * width + x) * channels + c];
  }
};

// Decodes an encoded image. `name` is used in error messages (a path, or
// "<memory>"). Throws graft::Error naming the file for empty, truncated or
// undecodable input.
Image decode_image(const uint8_t* bytes, size_t size, const std::string& name = "<memory>");
Image decode_image(const std::vector<uint8_t>& bytes, const std::string& name = "<memory>");
// Reads and decodes a file; errors name the path (missing, unreadable,
// zero bytes, truncated, not an image).
Image read_image(const std::string& path);

// Whole-file read with errors naming the path.
std::vector<uint8_t> read_file_bytes(const std::string& path);

// Images whose header claims more pixels than this are refused before any
// pixel buffer is allocated ("decompression bomb"): a 500-byte PNG can claim
// 10 x 16.7M pixels. The default is PIL's limit for an error,
// 2 * Image.MAX_IMAGE_PIXELS = 178,956,970, so graft refuses exactly the
// images torchvision's loader refuses for size. Returns the previous limit.
// Not thread-safe against concurrent decoding.
inline constexpr int64_t kDefaultMaxImagePixels = 178'956'970;
int64_t set_max_image_pixels(int64_t limit);

// Which JPEG decoder this build uses: "libjpeg-turbo" or "stb_image".
const char* jpeg_decoder_name();
// Forces stb_image for JPEG even when TurboJPEG is available (benchmarks and
// tests compare the two). Not thread-safe against concurrent decoding.
void set_prefer_stb_jpeg(bool prefer);

}  // namespace graft::data
