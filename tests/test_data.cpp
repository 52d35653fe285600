// Data pipeline: decoding, torchvision-parity transforms, ImageFolder, IDX /
// Fashion-MNIST, splits and the threaded DataLoader.
#include <gtest/gtest.h>
#include <zlib.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include "stb_write.h"

#include "core/ops.h"
#include "data/dataset.h"
#include "data/idx.h"
#include "data/image.h"
#include "data/loader.h"
#include "data/transforms.h"
#include "io/npy.h"
#include "tests/test_util.h"

namespace fs = std::filesystem;
using namespace graft;
using namespace graft::data;
using graft::testing::error_of;

namespace {

Tensor read_npy(const std::string& path) { return io::load_npy(path); }

std::string fx(const std::string& name) { return "pipeline/" + name; }

Tensor image_tensor(const Image& img) {
  return from_buffer(img.pixels.data(), {img.height, img.width, 3}, DType::UInt8);
}

// Largest absolute difference between two uint8 tensors.
int max_abs_u8(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.sizes(), b.sizes());
  if (a.sizes() != b.sizes()) return 999;
  auto va = a.contiguous().to_vector<uint8_t>(), vb = b.contiguous().to_vector<uint8_t>();
  int m = 0;
  for (size_t i = 0; i < va.size(); ++i) m = std::max(m, std::abs(int(va[i]) - int(vb[i])));
  return m;
}

double max_abs_f(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.sizes(), b.sizes());
  if (a.sizes() != b.sizes()) return 1e9;
  auto va = a.contiguous().to_vector<float>(), vb = b.contiguous().to_vector<float>();
  double m = 0;
  for (size_t i = 0; i < va.size(); ++i) m = std::max(m, std::abs(double(va[i]) - vb[i]));
  return m;
}

const char* kStems[] = {"rgb_500x375", "rgb_333x500", "small_90x70",
                        "gray_120x97", "rgba_64x80",  "fmnist0"};
std::string input_of(const std::string& stem) {
  for (const char* ext : {".jpg", ".png"})
    if (graft::testing::fixture_exists(fx(stem + ext)))
      return graft::testing::fixture(fx(stem + ext));
  return "";
}

// A scratch directory removed at the end of the test.
struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() /
           ("graft_data_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
            "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

// Writes a w x h RGB PNG whose pixels encode `tag` (so tests can tell files apart).
void write_png(const fs::path& p, int w, int h, uint8_t tag) {
  fs::create_directories(p.parent_path());
  std::vector<uint8_t> px(static_cast<size_t>(w) * h * 3);
  for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<uint8_t>(tag + i % 7);
  ASSERT_TRUE(stbi_write_png(p.string().c_str(), w, h, 3, px.data(), w * 3));
}

void write_bytes(const fs::path& p, const std::vector<uint8_t>& bytes) {
  fs::create_directories(p.parent_path());
  std::ofstream f(p, std::ios::binary);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

// The error read_image gives for a fuzz find kept in tests/fuzz/regressions/image,
// decoding JPEGs with stb_image when `stb_jpeg` is set.
std::string error_of_image_regression(const std::string& file, bool stb_jpeg = false) {
  set_prefer_stb_jpeg(stb_jpeg);
  const std::string e = error_of(
      [&] { read_image(std::string(GRAFT_SOURCE_DIR) + "/tests/fuzz/regressions/image/" + file); });
  set_prefer_stb_jpeg(false);
  return e;
}

}  // namespace

// ---------------- decoding ----------------

// Decoded pixels equal PIL's Image.open(p).convert("RGB") exactly: PNG is
// lossless, and JPEG goes through the same libjpeg-turbo (tolerance 0). With
// stb_image's JPEG decoder the IDCT/upsampling differ; allow a few levels there.
TEST(DataDecode, MatchesPil) {
  GRAFT_REQUIRE_FIXTURE(fx("rgb_500x375.decoded.npy"));
  for (const char* stem : kStems) {
    const std::string in = input_of(stem);
    if (in.empty()) continue;
    SCOPED_TRACE(stem);
    const Tensor expected =
        read_npy(graft::testing::fixture(fx(std::string(stem) + ".decoded.npy")));
    const Image img = read_image(in);
    const bool jpeg = in.ends_with(".jpg");
    const int tol = jpeg && std::string(jpeg_decoder_name()) == "stb_image" ? 8 : 0;
    EXPECT_LE(max_abs_u8(image_tensor(img), expected), tol);
  }
}

TEST(DataDecode, StbJpegCloseToPil) {
  GRAFT_REQUIRE_FIXTURE(fx("rgb_500x375.jpg"));
  const Tensor expected = read_npy(graft::testing::fixture(fx("rgb_500x375.decoded.npy")));
  set_prefer_stb_jpeg(true);
  const Image img = read_image(graft::testing::fixture(fx("rgb_500x375.jpg")));
  set_prefer_stb_jpeg(false);
  // Different IDCT rounding and chroma upsampling: a few levels, not more.
  EXPECT_LE(max_abs_u8(image_tensor(img), expected), 12);
}

// stb_image 2.27 decodes a scan with whatever memory a Huffman table that no
// DHT segment defined holds (a UBSan find: symbol ids at negative offsets);
// graft refuses such a file on the stb path. The check must not refuse what
// encoders write: progressive scans name tables they do not use (a DC
// refinement or AC scan, a DC scan's AC table), and each kind of JPEG that PIL
// writes decodes through stb close to PIL's pixels (bound as above).
TEST(DataDecode, StbRefusesUndefinedHuffmanTablesAndDecodesEveryPilKind) {
  GRAFT_REQUIRE_FIXTURE(fx("kind_progressive.jpg"));
  set_prefer_stb_jpeg(true);
  for (const char* kind :
       {"kind_progressive", "kind_progressive_gray", "kind_444", "kind_optimized"}) {
    SCOPED_TRACE(kind);
    const Tensor expected =
        read_npy(graft::testing::fixture(fx(std::string(kind) + ".decoded.npy")));
    const Image img = read_image(graft::testing::fixture(fx(std::string(kind) + ".jpg")));
    EXPECT_LE(max_abs_u8(image_tensor(img), expected), 12);
  }
  const std::string e =
      error_of_image_regression("jpeg_scan_uses_undefined_huffman_table.jpg", /*stb_jpeg=*/true);
  EXPECT_NE(e.find("corrupt JPEG (a scan uses a Huffman table that no DHT segment defined)"),
            std::string::npos)
      << e;
}

// A zero-length IDAT chunk before the image data (valid PNG: it holds no
// data) made stb_image 2.27 memcpy to a null pointer (a UBSan fuzz find in
// tests/fuzz/regressions/image; in the sanitizer build the decode below
// stopped the test); graft drops such chunks before stb reads the file, and
// the image is the same as without them.
TEST(DataDecode, PngWithAnEmptyIdatChunkDecodesAsWithout) {
  GRAFT_REQUIRE_FIXTURE(fx("rgb_333x500.png"));
  const std::vector<uint8_t> png = read_file_bytes(graft::testing::fixture(fx("rgb_333x500.png")));
  size_t idat = 8;  // the first IDAT chunk, after the signature and the chunks before it
  while (idat + 8 <= png.size() && std::memcmp(png.data() + idat + 4, "IDAT", 4) != 0)
    idat += 12 + ((size_t(png[idat]) << 24) | (size_t(png[idat + 1]) << 16) |
                  (size_t(png[idat + 2]) << 8) | png[idat + 3]);
  ASSERT_LT(idat + 8, png.size());
  std::vector<uint8_t> empty_chunk = {0, 0, 0, 0, 'I', 'D', 'A', 'T'};
  const uLong crc = crc32(0L, empty_chunk.data() + 4, 4);
  for (int shift : {24, 16, 8, 0}) empty_chunk.push_back(static_cast<uint8_t>(crc >> shift));
  std::vector<uint8_t> with_empty = png;
  with_empty.insert(with_empty.begin() + static_cast<std::ptrdiff_t>(idat), empty_chunk.begin(),
                    empty_chunk.end());
  const Image a = decode_image(png, "plain.png"), b = decode_image(with_empty, "empty_idat.png");
  ASSERT_EQ(a.width, b.width);
  ASSERT_EQ(a.height, b.height);
  EXPECT_EQ(a.pixels, b.pixels);
}

// A 200-byte PNG whose IDAT chunk claims 1,929,379,983 bytes made stb_image
// 2.27 allocate that much before finding the data missing (a fuzz find): a
// chunk longer than the rest of the file is refused first, naming both sizes.
TEST(DataDecode, PngChunkLongerThanTheFileIsRefused) {
  const std::string e = error_of_image_regression("png_idat_claims_1.9GB.png");
  EXPECT_NE(e.find("png_idat_claims_1.9GB.png: corrupt PNG (a chunk claims 1929379983 bytes, "
                   "more than the 155 left in the file)"),
            std::string::npos)
      << e;
}

// A corrupt JPEG scan that runs out of entropy bits made stb_image 2.27's bit
// reader shift by 33 (UBSan, a fuzz find). The vendored stb
// (third_party/stb, "graft patch") stops at the missing bits instead, and the
// file is refused with stb's reason (the scan's data ends in a marker stb
// does not know) and the file's name. Under the sanitizer
// build this test and the regression replay are what would catch the shift.
TEST(DataDecode, StbJpegScanThatRunsOutOfBitsIsRefused) {
  const std::string e =
      error_of_image_regression("jpeg_scan_runs_out_of_bits.jpg", /*stb_jpeg=*/true);
  EXPECT_NE(e.find("jpeg_scan_runs_out_of_bits.jpg: cannot decode (unknown marker)"),
            std::string::npos)
      << e;
}

// A PNG that ends inside a zero-length IDAT's CRC (a later fuzz find: stb
// still read the chunk into its null buffer): the chunk is dropped like any
// empty IDAT, and the file, which has no image data left, is refused. stb's
// own reason would name the next chunk's type, here four zero bytes: graft
// says what that means instead of printing "()".
TEST(DataDecode, PngEndingInAnEmptyIdatIsRefused) {
  const std::string e = error_of_image_regression("png_empty_idat_without_crc_at_end.png");
  EXPECT_NE(e.find("png_empty_idat_without_crc_at_end.png: cannot decode (corrupt or truncated "
                   "data)"),
            std::string::npos)
      << e;
}

TEST(DataDecode, BadFilesNameThePath) {
  TempDir dir;
  write_bytes(dir.path / "zero.jpg", {});
  EXPECT_NE(
      error_of([&] { read_image((dir.path / "zero.jpg").string()); }).find("zero.jpg: empty file"),
      std::string::npos);
  EXPECT_NE(error_of([&] { read_image((dir.path / "missing.png").string()); }).find("missing.png"),
            std::string::npos);
  write_bytes(dir.path / "text.png", {'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r', 'l', 'd'});
  EXPECT_NE(error_of([&] {
              read_image((dir.path / "text.png").string());
            }).find("text.png: cannot decode"),
            std::string::npos);
  if (graft::testing::fixture_exists(fx("rgb_500x375.jpg"))) {
    std::vector<uint8_t> jpg = read_file_bytes(graft::testing::fixture(fx("rgb_500x375.jpg")));
    jpg.resize(jpg.size() / 2);
    write_bytes(dir.path / "trunc.jpg", jpg);
    for (bool stb : {false, true}) {
      set_prefer_stb_jpeg(stb);
      const std::string e = error_of([&] { read_image((dir.path / "trunc.jpg").string()); });
      EXPECT_NE(e.find("trunc.jpg: truncated JPEG"), std::string::npos)
          << jpeg_decoder_name() << ": " << e;
    }
    set_prefer_stb_jpeg(false);
  }
  std::vector<uint8_t> png = read_file_bytes(graft::testing::fixture_exists(fx("rgb_333x500.png"))
                                                 ? graft::testing::fixture(fx("rgb_333x500.png"))
                                                 : std::string());
  png.resize(png.size() / 3);
  write_bytes(dir.path / "trunc.png", png);
  EXPECT_NE(error_of([&] { read_image((dir.path / "trunc.png").string()); }).find("trunc.png"),
            std::string::npos);
}

// A header that claims more pixels than the limit is refused before any pixel
// buffer exists: this 41-byte PNG header claims 20000 x 10000 RGBA, which stb
// would allocate 800 MB for (the fuzz find in tests/fuzz/regressions/image
// claims 10 x 16,713,996). A real JPEG and PNG at a limit one pixel below their
// size check both decoders' paths; at exactly their size they load.
TEST(DataDecode, PixelLimitRefusesBeforeAllocating) {
  std::vector<uint8_t> bomb = {0x89, 'P', 'N',  'G',  0x0d, 0x0a, 0x1a, 0x0a,  // signature
                               0,    0,   0,    13,   'I',  'H',  'D',  'R',   // IHDR, 13 bytes
                               0,    0,   0x4e, 0x20, 0,    0,    0x27, 0x10,  // 20000 x 10000
                               8,    6,   0,    0,    0,    0,    0,    0,
                               0};  // 8-bit RGBA, CRC
  const std::string e = error_of([&] { decode_image(bomb, "bomb.png"); });
  EXPECT_NE(e.find("bomb.png: the header claims 20000 x 10000 = 200000000 pixels"),
            std::string::npos)
      << e;
  // A top-down BMP (negative height, which stb's header query reports as
  // such) counts its rows too: 20000 x -10000, 24-bit.
  std::vector<uint8_t> bmp = {'B', 'M', 0, 0, 0, 0, 0, 0, 0, 0, 54, 0, 0, 0, 40, 0, 0, 0};
  for (const int32_t v : {20000, -10000}) {
    const auto u = static_cast<uint32_t>(v);
    for (int shift : {0, 8, 16, 24}) bmp.push_back(static_cast<uint8_t>(u >> shift));
  }
  bmp.insert(bmp.end(), {1, 0, 24, 0});  // planes, bits per pixel
  bmp.resize(54, 0);                     // no compression, default resolution and palette
  const std::string eb = error_of([&] { decode_image(bmp, "topdown.bmp"); });
  EXPECT_NE(eb.find("topdown.bmp: the header claims 20000 x 10000 = 200000000 pixels"),
            std::string::npos)
      << eb;
  GRAFT_REQUIRE_FIXTURE(fx("rgb_500x375.jpg"));
  const std::pair<const char*, int64_t> files[] = {{"rgb_500x375.jpg", 500 * 375},
                                                   {"rgb_333x500.png", 333 * 500}};
  for (const auto& [f, pixels] : files) {
    SCOPED_TRACE(f);
    const std::vector<uint8_t> bytes = read_file_bytes(graft::testing::fixture(fx(f)));
    for (bool stb : {false, true}) {
      set_prefer_stb_jpeg(stb);
      const int64_t old = set_max_image_pixels(pixels - 1);
      const std::string err = error_of([&] { decode_image(bytes, f); });
      EXPECT_NE(err.find("more than the limit of " + std::to_string(pixels - 1)), std::string::npos)
          << err;
      set_max_image_pixels(pixels);
      const Image img = decode_image(bytes, f);
      EXPECT_EQ(img.width * img.height, pixels);
      set_max_image_pixels(old);
    }
  }
  set_prefer_stb_jpeg(false);
  EXPECT_THROW(set_max_image_pixels(0), Error);
}

// 16-bit grayscale has no answer that matches torchvision: PIL clips values
// above 255 (this 2x2 PNG, written by PIL, reads back as [[0, 255], [255, 255]]
// there) where stb scales them. It is refused by name, and so is a 16-bit PGM,
// which stb 2.27 converts past its buffer (fuzz find), and so is a PGM header
// number that overflows stb's int (another fuzz find).
TEST(DataDecode, SixteenBitGrayAndOversizedPnmAreRefused) {
  const std::vector<uint8_t> png = {
      0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44,
      0x52, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x02, 0x10, 0x00, 0x00, 0x00, 0x00, 0x07,
      0x4d, 0x8e, 0xbb, 0x00, 0x00, 0x00, 0x12, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x60,
      0x60, 0x60, 0x7e, 0xc1, 0x30, 0xc7, 0xe1, 0xff, 0x7f, 0x00, 0x0b, 0xbc, 0x03, 0xc6, 0x87,
      0x92, 0xd8, 0x57, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82};
  std::vector<uint8_t> pgm = {'P', '5', '\n', '2', ' ', '2', '\n', '6', '5', '5', '3', '5', '\n'};
  pgm.resize(pgm.size() + 2 * 2 * 2, 0x40);
  for (const auto& [name, bytes] : {std::pair{"g16.png", png}, std::pair{"g16.pgm", pgm}}) {
    const std::string e = error_of([&] { decode_image(bytes, name); });
    EXPECT_NE(e.find(std::string(name) + ": 16-bit grayscale and 16-bit PNM images are not"),
              std::string::npos)
        << e;
  }
  // A header number past 32 bits is corrupt, not undefined behaviour in stb.
  const std::string big = "P5\n# size\n44444444444 10\n255\n";
  const std::string e =
      error_of([&] { decode_image(std::vector<uint8_t>(big.begin(), big.end()), "big.pgm"); });
  EXPECT_NE(e.find("big.pgm: corrupt PNM (a header number does not fit in 32 bits)"),
            std::string::npos)
      << e;
  // The same PGM at 8 bits decodes: gray replicated into RGB.
  std::vector<uint8_t> pgm8 = {'P', '5', '\n', '2', ' ', '2', '\n', '2',
                               '5', '5', '\n', 1,   2,   3,   4};
  const Image img = decode_image(pgm8, "g8.pgm");
  ASSERT_EQ(img.width * img.height, 4);
  EXPECT_EQ(img.at(1, 1, 0), 4);
  EXPECT_EQ(img.at(1, 1, 2), 4);
}

// ---------------- transforms vs torchvision 0.14 (PIL path) ----------------

// Resize, CenterCrop and resized_crop on images reproduce PIL's integer
// resampler: tolerance 0 (uint8 equality) against torchvision on PIL images.
TEST(DataTransforms, ResizeAndCropMatchTorchvisionPil) {
  GRAFT_REQUIRE_FIXTURE(fx("rgb_500x375.resize256.npy"));
  Generator gen(0);
  for (const char* s : kStems) {
    const std::string in = input_of(s);
    if (in.empty()) continue;
    const std::string stem = s;
    SCOPED_TRACE(stem);
    const Image img = read_image(in);
    auto check = [&](const char* what, const ImageOrTensor& out) {
      SCOPED_TRACE(what);
      const Tensor exp = read_npy(graft::testing::fixture(fx(stem + "." + what + ".npy")));
      EXPECT_EQ(max_abs_u8(image_tensor(std::get<Image>(out)), exp), 0);
    };
    check("resize256", Resize(256).apply(img, gen));
    check("resize_100x150", Resize(std::array<int64_t, 2>{100, 150}).apply(img, gen));
    check("centercrop300", CenterCrop(300).apply(img, gen));
    check("centercrop_31x40", CenterCrop(31, 40).apply(img, gen));
    const int64_t h = img.height, w = img.width;
    check("resized_crop", resized_crop(img, h / 5, w / 7, std::max<int64_t>(1, h / 2),
                                       std::max<int64_t>(1, 2 * w / 3), 224, 224));
  }
}

// The eval pipeline (Resize(256) + CenterCrop(224) + ToTensor + Normalize),
// including images smaller than the crop (upscaled first, as torchvision does).
// Same uint8 pixels, then identical float32 ops: tolerance 1e-6 absolute
// (element-wise (x/255 - mean)/std on [0, 1] data: a few float32 ulps, with
// no summation whose order could vary between machines).
TEST(DataTransforms, EvalPipelineMatchesTorchvision) {
  GRAFT_REQUIRE_FIXTURE(fx("rgb_500x375.eval.npy"));
  auto eval = imagenet_eval_transform();
  Generator gen(0);
  for (const char* s : kStems) {
    const std::string in = input_of(s);
    if (in.empty()) continue;
    SCOPED_TRACE(s);
    const Tensor out = (*eval)(read_image(in), gen);
    const Tensor exp = read_npy(graft::testing::fixture(fx(std::string(s) + ".eval.npy")));
    ASSERT_EQ(out.sizes(), (Shape{3, 224, 224}));
    EXPECT_LE(max_abs_f(out, exp), 1e-6);
  }
}

// Float-tensor resize vs torchvision's tensor path (antialias on: PIL's filter
// in float; off: F.interpolate bilinear). Tolerance 1e-5 absolute on [0, 1] data:
// each output sums at most ~20 filter taps, so float32 rounding stays below
// 20 * 2^-24 ~ 1.2e-6 in any order.
TEST(DataTransforms, TensorResizeMatchesTorchvision) {
  GRAFT_REQUIRE_FIXTURE(fx("rgb_500x375.tensor_resize_aa_57x41.npy"));
  for (const char* s : kStems) {
    const std::string in = input_of(s);
    if (in.empty()) continue;
    SCOPED_TRACE(s);
    const Tensor t = to_tensor(read_image(in));
    EXPECT_LE(
        max_abs_f(
            resize(t, 57, 41, true),
            read_npy(graft::testing::fixture(fx(std::string(s) + ".tensor_resize_aa_57x41.npy")))),
        1e-5);
    EXPECT_LE(max_abs_f(resize(t, 57, 41, false),
                        read_npy(graft::testing::fixture(
                            fx(std::string(s) + ".tensor_resize_noaa_57x41.npy")))),
              1e-5);
  }
}

TEST(DataTransforms, ResizeOutputSizeAndErrors) {
  EXPECT_EQ(resize_output_size(375, 500, 256), (std::array<int64_t, 2>{256, 341}));
  EXPECT_EQ(resize_output_size(500, 333, 256), (std::array<int64_t, 2>{384, 256}));
  EXPECT_EQ(resize_output_size(70, 70, 256), (std::array<int64_t, 2>{256, 256}));
  Generator gen(0);
  Image img(10, 10);
  // Tensor-only / image-only misuse gives a message that says what to do.
  EXPECT_NE(error_of([&] { Normalize().apply(img, gen); }).find("ToTensor before Normalize"),
            std::string::npos);
  EXPECT_NE(error_of([&] { CenterCrop(4).apply(to_tensor(img), gen); }).find("before ToTensor"),
            std::string::npos);
  EXPECT_THROW(Resize(0), Error);
}

TEST(DataTransforms, ToTensorNormalizeFusedEqualsSeparate) {
  Image img(5, 7);
  for (size_t i = 0; i < img.pixels.size(); ++i) img.pixels[i] = static_cast<uint8_t>(i * 37);
  Generator gen(0);
  const Tensor sep = normalize(to_tensor(img), kImageNetMean, kImageNetStd);
  Compose fused({std::make_shared<ToTensor>(), std::make_shared<Normalize>()});
  EXPECT_EQ(max_abs_f(fused(img, gen), sep), 0.0);
  EXPECT_FLOAT_EQ(to_tensor(img).to_vector<float>()[1],
                  float(img.pixels[3]) / 255.0f);  // CHW order
}

TEST(DataTransforms, RandomResizedCropParamsFollowTorchvision) {
  Generator gen(7);
  for (int i = 0; i < 2000; ++i) {
    const CropBox b = random_resized_crop_params(375, 500, {0.08, 1.0}, {3.0 / 4, 4.0 / 3}, gen);
    ASSERT_GT(b.height, 0);
    ASSERT_LE(b.top + b.height, 375);
    ASSERT_LE(b.left + b.width, 500);
    const double area = double(b.height) * b.width / (375.0 * 500.0);
    ASSERT_GE(area, 0.08 - 0.01);
    const double ratio = double(b.width) / b.height;
    ASSERT_GE(ratio, 0.75 * 0.95);
    ASSERT_LE(ratio, 4.0 / 3 * 1.05);
  }
  // Impossible scale -> 10 failed tries -> central fallback clamped to the ratio.
  const CropBox f = random_resized_crop_params(100, 1000, {5.0, 6.0}, {0.75, 4.0 / 3}, gen);
  EXPECT_EQ(f.height, 100);
  EXPECT_EQ(f.width, 133);  // round(100 * 4/3)
  EXPECT_EQ(f.left, (1000 - 133) / 2);
  EXPECT_EQ(f.top, 0);
}

TEST(DataTransforms, RandomTransformsReproduciblePerSeed) {
  Image img(60, 80);
  for (size_t i = 0; i < img.pixels.size(); ++i)
    img.pixels[i] = static_cast<uint8_t>((i * 131) % 251);
  auto train = imagenet_train_transform(32);
  Compose jitter({std::make_shared<ColorJitter>(0.4, 0.4, 0.4), std::make_shared<ToTensor>()});
  for (const Compose* t : {train.get(), static_cast<const Compose*>(&jitter)}) {
    Generator a(42), b(42), c(43);
    const Tensor ta = (*t)(img, a), tb = (*t)(img, b), tc = (*t)(img, c);
    EXPECT_EQ(max_abs_f(ta, tb), 0.0);
    EXPECT_GT(max_abs_f(ta, tc), 0.0);
  }
  // Flip with p=1 mirrors, p=0 is the identity.
  Generator g(1);
  const Image f = std::get<Image>(RandomHorizontalFlip(1.0).apply(img, g));
  EXPECT_EQ(f.at(3, 0, 1), img.at(3, 79, 1));
  EXPECT_EQ(std::get<Image>(RandomHorizontalFlip(0.0).apply(img, g)).pixels, img.pixels);
  // ColorJitter(0, 0, 0) changes nothing; brightness jitter keeps black black.
  EXPECT_EQ(std::get<Image>(ColorJitter().apply(img, g)).pixels, img.pixels);
  Image black(4, 4, 0);
  EXPECT_EQ(std::get<Image>(ColorJitter(0.9).apply(black, g)).pixels, black.pixels);
}

// ---------------- IDX / Fashion-MNIST ----------------

namespace {
void write_gz(const fs::path& p, const std::vector<uint8_t>& bytes) {
  gzFile f = gzopen(p.string().c_str(), "wb");
  ASSERT_TRUE(f);
  gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
  gzclose(f);
}
std::vector<uint8_t> idx_bytes(uint8_t type, std::vector<uint32_t> dims,
                               std::vector<uint8_t> data) {
  std::vector<uint8_t> b = {0, 0, type, static_cast<uint8_t>(dims.size())};
  for (uint32_t d : dims)
    for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<uint8_t>(d >> s));
  b.insert(b.end(), data.begin(), data.end());
  return b;
}
}  // namespace

TEST(DataIdx, ReadsPlainAndGzipAndBigEndian) {
  TempDir dir;
  write_bytes(dir.path / "a.idx", idx_bytes(0x08, {2, 3}, {1, 2, 3, 4, 5, 6}));
  write_gz(dir.path / "a.idx.gz", idx_bytes(0x08, {2, 3}, {1, 2, 3, 4, 5, 6}));
  for (const char* f : {"a.idx", "a.idx.gz"}) {
    const Tensor t = read_idx((dir.path / f).string());
    EXPECT_EQ(t.sizes(), (Shape{2, 3}));
    EXPECT_EQ(t.dtype(), DType::UInt8);
    EXPECT_EQ(t.to_vector<uint8_t>(), (std::vector<uint8_t>{1, 2, 3, 4, 5, 6}));
  }
  write_bytes(dir.path / "i.idx", idx_bytes(0x0C, {2}, {0, 0, 1, 2, 0xFF, 0xFF, 0xFF, 0xFE}));
  EXPECT_EQ(read_idx((dir.path / "i.idx").string()).to_vector<int32_t>(),
            (std::vector<int32_t>{258, -2}));
}

TEST(DataIdx, CorruptFilesAreClearErrors) {
  TempDir dir;
  auto err = [&](const char* name) {
    return error_of([&] { read_idx((dir.path / name).string()); });
  };
  write_bytes(dir.path / "short.idx", idx_bytes(0x08, {2, 3}, {1, 2, 3}));
  EXPECT_NE(err("short.idx").find("truncated"), std::string::npos) << err("short.idx");
  write_bytes(dir.path / "long.idx", idx_bytes(0x08, {1}, {1, 2}));
  EXPECT_NE(err("long.idx").find("trailing"), std::string::npos);
  write_bytes(dir.path / "magic.idx", {1, 2, 8, 1, 0, 0, 0, 1, 5});
  EXPECT_NE(err("magic.idx").find("bad magic"), std::string::npos);
  write_bytes(dir.path / "type.idx", idx_bytes(0x42, {1}, {1}));
  EXPECT_NE(err("type.idx").find("unknown element type"), std::string::npos);
  // A gzip stream cut in half.
  std::vector<uint8_t> big(5000);
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<uint8_t>(i * 7919 % 256);
  write_gz(dir.path / "full.gz", idx_bytes(0x08, {5000}, big));
  std::vector<uint8_t> gz = read_file_bytes((dir.path / "full.gz").string());
  gz.resize(gz.size() / 2);
  write_bytes(dir.path / "cut.gz", gz);
  EXPECT_NE(err("cut.gz").find("cut.gz"), std::string::npos);
  EXPECT_FALSE(err("cut.gz").empty());
  // Image/label count mismatch.
  write_bytes(dir.path / "img.idx", idx_bytes(0x08, {2, 1, 1}, {1, 2}));
  write_bytes(dir.path / "lab.idx", idx_bytes(0x08, {3}, {0, 1, 2}));
  const std::string e = error_of(
      [&] { read_idx_pair((dir.path / "img.idx").string(), (dir.path / "lab.idx").string()); });
  EXPECT_NE(e.find("2 images but"), std::string::npos) << e;
}

TEST(DataFashionMnist, LoadsSubsetsAndDemoTransform) {
  if (!fs::exists(std::string(kFashionMnistRoot) + "/t10k-images-idx3-ubyte.gz"))
    GTEST_SKIP() << "Fashion-MNIST not installed";
  FashionMNIST::Options o;
  o.train = false;
  FashionMNIST all(o);
  EXPECT_EQ(all.size(), 10000);
  EXPECT_EQ(all.num_classes(), 10);
  EXPECT_EQ(all.images().sizes(), (Shape{10000, 28, 28}));
  std::vector<int64_t> counts(10, 0);
  for (int64_t i = 0; i < all.size(); ++i) counts[all.label(i)]++;
  for (int64_t c : counts) EXPECT_EQ(c, 1000);  // the test split is balanced
  // Class subset + relabel: original 9 (ankle boot) -> 0, 7 (sneaker) -> 1.
  o.classes = {9, 7};
  FashionMNIST sub(o);
  EXPECT_EQ(sub.size(), 2000);
  EXPECT_EQ(sub.classes()[0], "Ankle boot");
  std::set<int64_t> labels;
  for (int64_t i = 0; i < sub.size(); ++i) labels.insert(sub.label(i));
  EXPECT_EQ(labels, (std::set<int64_t>{0, 1}));
  // The first test image is an ankle boot: both datasets start with it.
  EXPECT_EQ(all.label(0), 9);
  const Example ex = sub.get(0);
  EXPECT_EQ(ex.image.sizes(), (Shape{3, 32, 32}));
  EXPECT_EQ(ex.label, 0);
  if (graft::testing::fixture_exists(fx("fmnist_demo8.npy"))) {
    const Tensor exp = read_npy(graft::testing::fixture(fx("fmnist_demo8.npy")));
    const Tensor got = fashion_mnist_demo_transform(all.images().narrow(0, 0, 8));
    EXPECT_LE(max_abs_f(got, exp), 1e-5);  // torch F.interpolate + normalise, float32
    EXPECT_LE(max_abs_f(all.get(0).image, exp.select(0, 0)), 1e-5);
  }
  o.classes = {3, 3};
  EXPECT_THROW(FashionMNIST{o}, Error);
}

// ---------------- ImageFolder ----------------

TEST(DataImageFolder, OrderingClassMapAndFiltering) {
  TempDir dir;
  const fs::path r = dir.path;
  write_png(r / "zebra" / "b.png", 4, 3, 10);
  write_png(r / "zebra" / "A.PNG", 4, 3, 20);          // upper-case extension accepted
  write_png(r / "zebra" / "sub" / "c.png", 4, 3, 30);  // recursive
  write_png(r / "ant" / "x.png", 4, 3, 40);
  write_png(r / "ant" / ".hidden.png", 4, 3, 50);    // hidden: ignored
  write_bytes(r / "ant" / "notes.txt", {'h', 'i'});  // not an image: ignored
  write_png(r / ".git" / "y.png", 4, 3, 60);         // hidden folder: not a class
  write_png(r / "Bee" / "z.bmp.png", 4, 3, 70);
  write_bytes(r / "readme.md", {'x'});  // file at root: not a class
  ImageFolder ds(r.string());
  EXPECT_EQ(ds.classes(), (std::vector<std::string>{"Bee", "ant", "zebra"}));  // byte order
  EXPECT_EQ(ds.class_to_idx().at("zebra"), 2);
  ASSERT_EQ(ds.size(), 5);
  std::vector<std::string> names;
  for (const auto& [p, c] : ds.samples())
    names.push_back(fs::path(p).filename().string() + ":" + std::to_string(c));
  EXPECT_EQ(names,
            (std::vector<std::string>{"z.bmp.png:0", "x.png:1", "A.PNG:2", "b.png:2", "c.png:2"}));
  const Example e = ds.get(1);
  EXPECT_EQ(e.label, 1);
  EXPECT_EQ(e.image.sizes(), (Shape{3, 3, 4}));
  EXPECT_FLOAT_EQ(e.image.to_vector<float>()[0], 40.0f / 255.0f);
}

TEST(DataImageFolder, ErrorsAndSkipBadImages) {
  TempDir dir;
  const fs::path r = dir.path;
  EXPECT_NE(error_of([&] { ImageFolder(r.string()); }).find("no class folders"), std::string::npos);
  write_png(r / "a" / "1.png", 4, 4, 1);
  fs::create_directories(r / "empty");
  write_bytes(r / "empty" / "x.txt", {'x'});
  const std::string e = error_of([&] { ImageFolder(r.string()); });
  EXPECT_NE(e.find("no image files in class folder(s) empty"), std::string::npos) << e;
  fs::remove_all(r / "empty");
  write_bytes(r / "a" / "2.jpg", {});                     // zero bytes
  write_bytes(r / "a" / "3.png", {0x89, 'P', 'N', 'G'});  // truncated
  write_png(r / "b" / "4.png", 4, 4, 2);
  ImageFolder strict(r.string());
  EXPECT_EQ(strict.size(), 4);
  EXPECT_NE(error_of([&] { strict.get(1); }).find("2.jpg: empty file"), std::string::npos);
  ImageFolder::Options o;
  o.skip_bad_images = true;
  ::testing::internal::CaptureStderr();
  ImageFolder skip(r.string(), o);
  const std::string warn = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(skip.size(), 2);
  EXPECT_EQ(skip.skipped(), 2);
  EXPECT_NE(warn.find("2.jpg"), std::string::npos);
  EXPECT_NE(warn.find("3.png"), std::string::npos);
  EXPECT_NE(warn.find("skipped 2 of 4"), std::string::npos) << warn;
}

// ---------------- Subsets and splits ----------------

TEST(DataSubsets, SplitAndPerClass) {
  std::vector<int64_t> labels;
  for (int i = 0; i < 100; ++i) labels.push_back(i % 4);
  auto ds = std::make_shared<TensorDataset>(arange(100.0).reshape({100, 1, 1, 1}),
                                            tensor<int64_t>(labels));
  auto [tr, va] = train_val_split(ds, 0.2, 5);
  EXPECT_EQ(tr->size(), 80);
  EXPECT_EQ(va->size(), 20);
  std::set<int64_t> all(tr->indices().begin(), tr->indices().end());
  all.insert(va->indices().begin(), va->indices().end());
  EXPECT_EQ(all.size(), 100u);  // disjoint and complete
  auto [tr2, va2] = train_val_split(ds, 0.2, 5);
  EXPECT_EQ(va->indices(), va2->indices());
  auto [tr3, va3] = train_val_split(ds, 0.2, 6);
  EXPECT_NE(va->indices(), va3->indices());
  auto k = per_class_subset(ds, 3, 11);
  EXPECT_EQ(k->size(), 12);
  std::vector<int> per(4, 0);
  for (int64_t i = 0; i < k->size(); ++i) {
    per[k->label(i)]++;
    EXPECT_EQ(k->get(i).image.item(), double(k->indices()[i]));
  }
  EXPECT_EQ(per, (std::vector<int>{3, 3, 3, 3}));
  EXPECT_EQ(per_class_subset(ds, 3, 11)->indices(), k->indices());
  EXPECT_THROW(per_class_subset(ds, 30, 1, true), Error);
}

TEST(DataSubsets, TensorDatasetFromNpy) {
  TempDir dir;
  io::save_npy((dir.path / "x.npy").string(), arange(24.0).reshape({4, 2, 3}).to(DType::UInt8));
  io::save_npy((dir.path / "y.npy").string(), tensor<int32_t>({0, 2, 1, 2}));
  auto ds = TensorDataset::from_npy((dir.path / "x.npy").string(), (dir.path / "y.npy").string());
  EXPECT_EQ(ds->size(), 4);
  EXPECT_EQ(ds->num_classes(), 3);
  const Example e = ds->get(2);
  EXPECT_EQ(e.label, 1);
  EXPECT_EQ(e.image.dtype(), DType::Float32);
  EXPECT_EQ(e.image.to_vector<float>(), (std::vector<float>{12, 13, 14, 15, 16, 17}));
  io::save_npy((dir.path / "y3.npy").string(), tensor<int64_t>({0, 1, 2}));
  EXPECT_NE(error_of([&] {
              TensorDataset::from_npy((dir.path / "x.npy").string(),
                                      (dir.path / "y3.npy").string());
            }).find("4 images but 3 labels"),
            std::string::npos);
}

// ---------------- DataLoader ----------------

namespace {
// Example i is an image filled with i; optionally throws at one index or sleeps
// in reverse proportion to i (so later batches finish first).
class CountingDataset : public Dataset {
 public:
  CountingDataset(int64_t n, int64_t throw_at = -1) : n_(n), throw_at_(throw_at) {}
  int64_t size() const override { return n_; }
  Example get(int64_t i, Generator& gen) const override {
    if (i == throw_at_) throw Error("bad example " + std::to_string(i));
    std::this_thread::sleep_for(std::chrono::microseconds(50 * ((n_ - i) % 5)));
    calls++;
    // A random value from the loader's generator, to test determinism.
    return {full({1, 2, 2}, double(i) + gen.next_double() * 1e-3), i % 3};
  }
  using Dataset::get;
  int64_t label(int64_t i) const override { return i % 3; }
  int64_t num_classes() const override { return 3; }
  mutable std::atomic<int64_t> calls{0};

 private:
  int64_t n_, throw_at_;
};

std::vector<float> run_epoch(DataLoader& dl, std::vector<int64_t>* sizes = nullptr) {
  std::vector<float> v;
  for (Batch& b : dl) {
    if (sizes) sizes->push_back(b.images.size(0));
    EXPECT_EQ(b.images.dim(), 4);
    EXPECT_EQ(b.labels.dtype(), DType::Int64);
    for (int64_t i = 0; i < b.images.size(0); ++i)
      v.push_back(b.images.select(0, i).contiguous().to_vector<float>()[0]);
  }
  return v;
}
}  // namespace

TEST(DataLoader, OrderedBatchesAndDropLast) {
  auto ds = std::make_shared<CountingDataset>(23);
  for (int workers : {0, 1, 3}) {
    SCOPED_TRACE(workers);
    DataLoader dl(ds, {.batch_size = 5, .num_workers = workers});
    std::vector<int64_t> sizes;
    const auto v = run_epoch(dl, &sizes);
    EXPECT_EQ(sizes, (std::vector<int64_t>{5, 5, 5, 5, 3}));
    ASSERT_EQ(v.size(), 23u);
    for (int i = 0; i < 23; ++i) EXPECT_EQ(std::floor(v[i]), i);
    DataLoader dl2(ds, {.batch_size = 5, .drop_last = true, .num_workers = workers});
    EXPECT_EQ(dl2.size(), 4);
    sizes.clear();
    run_epoch(dl2, &sizes);
    EXPECT_EQ(sizes, (std::vector<int64_t>{5, 5, 5, 5}));
  }
}

TEST(DataLoader, ShuffleDeterministicAcrossWorkerCounts) {
  auto ds = std::make_shared<CountingDataset>(40);
  DataLoader a(ds, {.batch_size = 6, .shuffle = true, .num_workers = 0, .seed = 9});
  DataLoader b(ds, {.batch_size = 6, .shuffle = true, .num_workers = 4, .seed = 9});
  DataLoader c(ds, {.batch_size = 6, .shuffle = true, .num_workers = 2, .seed = 10});
  const auto ea0 = run_epoch(a), ea1 = run_epoch(a);
  const auto eb0 = run_epoch(b), eb1 = run_epoch(b);
  EXPECT_EQ(ea0, eb0);  // bitwise: same order and same random draws
  EXPECT_EQ(ea1, eb1);
  EXPECT_NE(ea0, ea1);  // epochs reshuffle
  EXPECT_NE(ea0, run_epoch(c));
  std::vector<float> sorted;
  for (float x : ea0) sorted.push_back(std::floor(x));
  std::sort(sorted.begin(), sorted.end());
  for (int i = 0; i < 40; ++i) EXPECT_EQ(sorted[i], i);  // a permutation
}

TEST(DataLoader, EarlyStopJoinsAndBoundsPrefetch) {
  auto ds = std::make_shared<CountingDataset>(1000);
  {
    DataLoader dl(ds, {.batch_size = 4, .num_workers = 3, .prefetch = 2});
    dl.start();
    Batch b;
    ASSERT_TRUE(dl.next(b));
    ASSERT_TRUE(dl.next(b));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    // 2 consumed + at most workers*prefetch in flight.
    EXPECT_LE(ds->calls.load(), (2 + 3 * 2) * 4);
  }  // destructor stops and joins mid-epoch
  const int64_t after = ds->calls.load();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(ds->calls.load(), after);  // no worker is still running
}

TEST(DataLoader, WorkerExceptionReachesConsumer) {
  auto ds = std::make_shared<CountingDataset>(50, 17);
  for (int workers : {0, 2}) {
    DataLoader dl(ds, {.batch_size = 4, .num_workers = workers});
    dl.start();
    Batch b;
    int delivered = 0;
    std::string msg;
    try {
      while (dl.next(b)) ++delivered;
    } catch (const Error& e) {
      msg = e.what();
    }
    EXPECT_EQ(delivered, 4);  // batches 0..3 arrive, batch 4 holds example 17
    EXPECT_NE(msg.find("bad example 17"), std::string::npos);
  }
}

TEST(DataLoader, ImageFolderTrainPipeline) {
  TempDir dir;
  for (int c = 0; c < 2; ++c)
    for (int i = 0; i < 5; ++i)
      write_png(dir.path / std::to_string(c) / (std::to_string(i) + ".png"), 40 + i, 30,
                uint8_t(i));
  ImageFolder::Options o;
  o.transform = imagenet_train_transform(24);
  auto ds = std::make_shared<ImageFolder>(dir.path.string(), o);
  DataLoader dl(ds, {.batch_size = 4, .shuffle = true, .num_workers = 2, .seed = 3});
  int64_t n = 0;
  for (Batch& b : dl) {
    EXPECT_EQ(b.images.size(1), 3);
    EXPECT_EQ(b.images.size(2), 24);
    EXPECT_EQ(b.images.size(3), 24);
    n += b.labels.size(0);
  }
  EXPECT_EQ(n, 10);
}
