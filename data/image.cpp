#include "data/image.h"

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string_view>
#include <utility>
#include <vector>

#include "core/error.h"

// stb_image (vendored: third_party/stb, Debian's 2.27 with the edits listed
// at its head) is compiled into graft exactly here. Only the decoders graft needs
// are kept, and stbi's failure strings are kept thread-local so concurrent
// loader workers report their own errors.
#define STB_IMAGE_IMPLEMENTATION
#define STBI_NO_HDR
#define STBI_NO_LINEAR
#define STBI_NO_STDIO
#define STBI_THREAD_LOCAL thread_local
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wpedantic"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wdouble-promotion"
#endif
#include "third_party/stb/stb_image.h"
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

#ifdef GRAFT_HAVE_TURBOJPEG
#include <turbojpeg.h>
#endif

namespace graft::data {

Image::Image(int64_t h, int64_t w, uint8_t fill) : height(h), width(w) {
  GRAFT_CHECK(h >= 0 && w >= 0, "Image: negative size ", h, "x", w);
  pixels.assign(static_cast<size_t>(h * w * channels), fill);
}

namespace {

std::atomic<bool> g_prefer_stb{false};
std::atomic<int64_t> g_max_pixels{kDefaultMaxImagePixels};

// Refuses a claimed size over the pixel limit, before anything is allocated
// (w and h come from 32-bit header fields, so w * h cannot overflow). Their
// magnitudes count: stb_image 2.27's stbi_info gives a top-down BMP's height
// as negative, and its loader then allocates |h| rows (a fuzz find: 8192 x
// -53781 passed the check as a negative product and took 13 s to load).
void check_pixel_count(int64_t w, int64_t h, const std::string& name) {
  w = std::abs(w);
  h = std::abs(h);
  const int64_t limit = g_max_pixels.load(std::memory_order_relaxed);
  GRAFT_CHECK(w * h <= limit, "decode_image: ", name, ": the header claims ", w, " x ", h, " = ",
              w * h, " pixels, more than the limit of ", limit,
              " (a decompression bomb or a corrupt header; data::set_max_image_pixels raises it)");
}

bool is_jpeg(const uint8_t* b, size_t n) {
  return n >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF;
}

// stb_image 2.27 (Debian's) trusts a JPEG's Huffman tables in two ways that
// read out of bounds, which upstream stb or libjpeg-turbo check:
// - a DHT segment whose 16 code-length counts sum past 256 overruns
//   stbi__huffman's arrays;
// - a scan that decodes with a table no DHT segment defined reads the table's
//   uninitialised memory (its symbol ids can then index the arrays at
//   negative offsets). libjpeg-turbo substitutes the standard tables there;
//   stb has no such fallback, so graft refuses the file on this path.
// This walks the marker segments as stb reads them, including those between
// the scans of a progressive file, and returns what is wrong ("" when
// nothing is). Anything it cannot follow is left to stb, which reports it.
std::string jpeg_huffman_problem(const uint8_t* b, size_t n) {
  // stb takes fill bytes (0xFF) before the SOI marker too: FF FF D8 is a JPEG to it.
  size_t p = 0;
  if (n < 2 || b[0] != 0xFF) return {};
  while (p < n && b[p] == 0xFF) ++p;
  if (p >= n || b[p] != 0xD8) return {};  // not a JPEG to stb either
  ++p;                                    // past SOI
  // As stb reads a segment: bytes past the end of the file read as 0.
  auto at = [&](size_t i) -> size_t { return i < n ? b[i] : 0; };
  bool defined[2][4] = {};  // [DC, AC][table id]
  bool progressive = false;
  while (p + 4 <= n) {
    if (b[p] != 0xFF) {
      ++p;  // entropy-coded data after SOS: scan on to the next marker
      continue;
    }
    const uint8_t m = b[p + 1];
    if (m == 0xFF || m == 0x00 || (m >= 0xD0 && m <= 0xD7)) {  // fill, stuffing, RSTn
      p += m == 0xFF ? 1 : 2;
      continue;
    }
    if (m == 0xD9) return {};  // EOI
    const size_t len = (size_t(b[p + 2]) << 8) | b[p + 3];
    if (m == 0xC0 || m == 0xC1 || m == 0xC2) progressive = m == 0xC2;
    if (m == 0xC4) {
      // A table starts wherever the declared length has a byte left.
      for (size_t q = p + 4, end = p + 2 + len; q < end && q < n;) {
        size_t codes = 0;
        for (size_t i = 1; i <= 16; ++i) codes += at(q + i);
        if (codes > 256) return "a Huffman table declares more than 256 codes";
        const size_t tc = at(q) >> 4, th = at(q) & 15;
        if (tc > 1 || th > 3) return {};  // stb refuses the header
        defined[tc][th] = true;
        q += 17 + codes;
      }
    }
    if (m == 0xDA) {
      // The tables this scan decodes with, as stb uses them: a sequential
      // scan both of each component's; a progressive DC scan (Ss = 0) its DC
      // table in the first pass (Ah = 0) only; a progressive AC scan its AC
      // table.
      const size_t components = at(p + 4);
      const size_t spectral_start = at(p + 5 + 2 * components);
      const size_t approx_high = at(p + 7 + 2 * components) >> 4;
      const bool dc = !progressive || (spectral_start == 0 && approx_high == 0);
      const bool ac = !progressive || spectral_start != 0;
      for (size_t c = 0; c < components && c < 4; ++c) {
        const size_t td = at(p + 6 + 2 * c) >> 4, ta = at(p + 6 + 2 * c) & 15;
        if (td > 3 || ta > 3) return {};  // stb refuses the scan header
        if ((dc && !defined[0][td]) || (ac && !defined[1][ta]))
          return "a scan uses a Huffman table that no DHT segment defined";
      }
    }
    if (len < 2 || p + 2 + len > n) return {};  // malformed or cut short: stb reports it
    p += 2 + len;
  }
  return {};
}

// stb_image 2.27 reads a binary PNM's width, height and maxval into an int
// with no overflow check (signed overflow: undefined behaviour; upstream added
// the check after 2.27). This reads the three numbers the way stb does
// (whitespace, '#' comments to the end of the line, then digits) and says
// whether each fits in an int. Files that are not P5/P6 are left to stb.
bool pnm_header_fits(const uint8_t* b, size_t n) {
  if (n < 2 || b[0] != 'P' || (b[1] != '5' && b[1] != '6')) return true;
  size_t p = 2;
  auto space = [](uint8_t c) { return c == ' ' || (c >= '\t' && c <= '\r'); };
  for (int field = 0; field < 3; ++field) {
    for (;;) {
      while (p < n && space(b[p])) ++p;
      if (p >= n || b[p] != '#') break;
      while (p < n && b[p] != '\n' && b[p] != '\r') ++p;
    }
    int64_t value = 0;
    for (; p < n && b[p] >= '0' && b[p] <= '9'; ++p) {
      value = value * 10 + (b[p] - '0');
      if (value > INT32_MAX) return false;
    }
  }
  return true;
}

#ifdef GRAFT_HAVE_TURBOJPEG
// One TurboJPEG decompressor per thread (handles are not thread-safe and are
// cheap to keep; creating one per image costs more than decoding a thumbnail).
struct TurboHandle {
  tjhandle h = tjInitDecompress();
  ~TurboHandle() {
    if (h) tjDestroy(h);
  }
};

Image decode_turbojpeg(const uint8_t* bytes, size_t size, const std::string& name) {
  thread_local TurboHandle handle;
  GRAFT_CHECK(handle.h, "decode_image: cannot initialise libjpeg-turbo: ", tjGetErrorStr2(nullptr));
  int w = 0, h = 0, subsamp = 0, colorspace = 0;
  if (tjDecompressHeader3(handle.h, bytes, static_cast<unsigned long>(size), &w, &h, &subsamp,
                          &colorspace) != 0)
    GRAFT_FAIL("decode_image: ", name, ": not a decodable JPEG (", tjGetErrorStr2(handle.h), ")");
  GRAFT_CHECK(colorspace != TJCS_CMYK && colorspace != TJCS_YCCK, "decode_image: ", name,
              ": CMYK/YCCK JPEGs are not supported; convert the image to RGB");
  GRAFT_CHECK(w > 0 && h > 0, "decode_image: ", name, ": JPEG has zero size ", w, "x", h);
  check_pixel_count(w, h, name);
  Image img(h, w);
  // Flags 0: accurate integer IDCT and fancy chroma upsampling, the libjpeg
  // defaults PIL decodes with, so pixels match torchvision's loader exactly.
  if (tjDecompress2(handle.h, bytes, static_cast<unsigned long>(size), img.pixels.data(), w, 0, h,
                    TJPF_RGB, 0) != 0) {
    const std::string msg = tjGetErrorStr2(handle.h);
    // libjpeg-turbo reports recoverable oddities (extraneous bytes before a
    // marker) as warnings and still decodes; PIL accepts those. A premature
    // end of data means the file is truncated: PIL refuses it and so do we.
    const bool truncated = msg.find("Premature end") != std::string::npos;
    if (tjGetErrorCode(handle.h) != TJERR_WARNING || truncated)
      GRAFT_FAIL("decode_image: ", name, truncated ? ": truncated JPEG (" : ": corrupt JPEG (", msg,
                 ")");
  }
  return img;
}
#endif

// Two things stb_image 2.27 mishandles in a PNG's chunk list (fuzz finds),
// checked before it reads the file:
// - a chunk that claims more bytes than the file has left: stb allocates an
//   IDAT buffer of the claimed size before it finds the data missing (a
//   200-byte file made it allocate 1.9 GB); the file is cut short, so it is
//   refused, as PIL refuses a truncated PNG;
// - a zero-length IDAT before the first non-empty one: stb copies it into
//   its not yet allocated buffer (a memcpy to a null pointer). Such a chunk
//   holds no data, so the file without it decodes to the same image (stb
//   checks no CRC): `cleaned` receives that copy (it stays empty when there
//   is no zero-length IDAT). This holds for the file's last chunk too when
//   its CRC is cut off (a later fuzz find: stb reads the chunk all the same).
// Returns why the file is refused, "" when it is not. Stops at IEND, as stb.
std::string check_png_chunks(const uint8_t* b, size_t n, std::vector<uint8_t>& cleaned) {
  static const uint8_t kSignature[8] = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a};
  if (n < 8 || std::memcmp(b, kSignature, 8) != 0) return {};
  std::vector<std::pair<size_t, size_t>> keep;  // [begin, end) of the bytes kept
  size_t p = 8, kept_from = 0;
  while (p + 8 <= n) {  // a chunk's length and type; its CRC may be cut off
    const size_t len =
        (size_t(b[p]) << 24) | (size_t(b[p + 1]) << 16) | (size_t(b[p + 2]) << 8) | b[p + 3];
    if (len == 0 && std::memcmp(b + p + 4, "IDAT", 4) == 0) {
      keep.emplace_back(kept_from, p);
      kept_from = std::min(p + 12, n);  // length, type and CRC (or what is left of it)
    }
    if (std::memcmp(b + p + 4, "IEND", 4) == 0) break;
    const size_t left = n - p - std::min<size_t>(n - p, 12);  // after this chunk's 12 fixed bytes
    if (len > left)
      return "a chunk claims " + std::to_string(len) + " bytes, more than the " +
             std::to_string(left) + " left in the file";
    p += 12 + len;
  }
  if (keep.empty()) return {};
  keep.emplace_back(kept_from, n);
  cleaned.reserve(n);
  for (const auto& [from, to] : keep) cleaned.insert(cleaned.end(), b + from, b + to);
  return {};
}

Image decode_stb(const uint8_t* bytes, size_t size, const std::string& name) {
  GRAFT_CHECK(size <= static_cast<size_t>(INT32_MAX), "decode_image: ", name, ": file too large (",
              size, " bytes)");
  if (is_jpeg(bytes, size)) {
    // stb_image pads a truncated JPEG's entropy data with zeros and returns a
    // partly grey image without an error; a missing end-of-image marker near
    // the end of the data is the reliable sign of truncation.
    const size_t tail = std::min<size_t>(size, 1024);
    bool has_eoi = false;
    for (size_t i = size - tail; i + 1 < size; ++i)
      if (bytes[i] == 0xFF && bytes[i + 1] == 0xD9) has_eoi = true;
    GRAFT_CHECK(has_eoi, "decode_image: ", name, ": truncated JPEG (no end-of-image marker)");
  }
  if (const std::string why = jpeg_huffman_problem(bytes, size); !why.empty())
    GRAFT_FAIL("decode_image: ", name, ": corrupt JPEG (", why, ")");
  GRAFT_CHECK(pnm_header_fits(bytes, size), "decode_image: ", name,
              ": corrupt PNM (a header number does not fit in 32 bits)");
  int w = 0, h = 0, comp = 0;
  // stbi_info reads only the header; when it cannot, stbi_load below reports why.
  if (stbi_info_from_memory(bytes, static_cast<int>(size), &w, &h, &comp)) {
    check_pixel_count(w, h, name);
    // 16-bit grayscale (PNG, PGM) opens in PIL as mode "I", whose
    // convert("RGB") clips every value above 255 to 255, while stb scales by
    // 1/256: no answer would match torchvision's loader. stb 2.27 also
    // converts a 16-bit PGM's channels with its 8-bit routine and reads past
    // the buffer (fuzz find). 16-bit RGB(A) and gray+alpha PNGs keep the high
    // byte in both and are decoded.
    const bool pnm = bytes[0] == 'P';
    GRAFT_CHECK(!stbi_is_16_bit_from_memory(bytes, static_cast<int>(size)) || (comp > 2 && !pnm),
                "decode_image: ", name,
                ": 16-bit grayscale and 16-bit PNM images are not supported (PIL clips their "
                "values to 255 where stb_image scales them, so neither matches torchvision); "
                "convert the image to 8 bits per channel");
  }
  std::vector<uint8_t> png;
  if (const std::string why = check_png_chunks(bytes, size, png); !why.empty())
    GRAFT_FAIL("decode_image: ", name, ": corrupt PNG (", why, ")");
  if (!png.empty()) {
    bytes = png.data();
    size = png.size();
  }
  uint8_t* px = stbi_load_from_memory(bytes, static_cast<int>(size), &w, &h, &comp, 3);
  if (!px) {
    // stb names an unknown PNG chunk by its type, which can be four zero bytes.
    const char* why = stbi_failure_reason();
    GRAFT_FAIL("decode_image: ", name, ": cannot decode (",
               why && *why ? why : "corrupt or truncated data",
               "); supported formats are JPEG, PNG, BMP, GIF, TGA, PSD and PNM");
  }
  Image img;
  img.height = h;
  img.width = w;
  img.pixels.assign(px, px + static_cast<size_t>(w) * h * 3);
  stbi_image_free(px);
  return img;
}

}  // namespace

Image decode_image(const uint8_t* bytes, size_t size, const std::string& name) {
  GRAFT_CHECK(size > 0, "decode_image: ", name, ": empty file (0 bytes)");
#ifdef GRAFT_HAVE_TURBOJPEG
  if (is_jpeg(bytes, size) && !g_prefer_stb.load(std::memory_order_relaxed))
    return decode_turbojpeg(bytes, size, name);
#endif
  return decode_stb(bytes, size, name);
}

Image decode_image(const std::vector<uint8_t>& bytes, const std::string& name) {
  return decode_image(bytes.data(), bytes.size(), name);
}

std::vector<uint8_t> read_file_bytes(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  GRAFT_CHECK(f, "cannot open ", path, ": ", std::strerror(errno));
  std::vector<uint8_t> bytes;
  uint8_t buf[1 << 16];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) bytes.insert(bytes.end(), buf, buf + n);
  const bool failed = std::ferror(f) != 0;
  const int err = errno;
  std::fclose(f);
  GRAFT_CHECK(!failed, "cannot read ", path, ": ", std::strerror(err));
  return bytes;
}

Image read_image(const std::string& path) {
  GRAFT_CHECK(!std::filesystem::is_directory(path), "read_image: ", path, " is a directory");
  const std::vector<uint8_t> bytes = read_file_bytes(path);
  return decode_image(bytes.data(), bytes.size(), path);
}

const char* jpeg_decoder_name() {
#ifdef GRAFT_HAVE_TURBOJPEG
  if (!g_prefer_stb.load()) return "libjpeg-turbo";
#endif
  return "stb_image";
}

void set_prefer_stb_jpeg(bool prefer) { g_prefer_stb.store(prefer); }

int64_t set_max_image_pixels(int64_t limit) {
  GRAFT_CHECK(limit > 0, "set_max_image_pixels: the limit must be positive, got ", limit);
  return g_max_pixels.exchange(limit);
}

}  // namespace graft::data
