#include "data/transforms.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "core/error.h"
#include "core/ops.h"
#include "core/parallel.h"

namespace graft::data {

namespace {

// ---- resampling weights (PIL's precompute_coeffs / torch's upsample) ----

// For each output index: the first input index, the number of taps and
// `ksize` weights (normalised to sum 1).
struct Weights {
  int64_t ksize = 0;
  std::vector<int64_t> first, count;
  std::vector<double> w;
};

// PIL's triangle-filter weights (antialias: the filter is stretched by the
// downscale factor so every input pixel contributes). With antialias off this
// is plain bilinear with half-pixel centres, torch's align_corners=False.
Weights make_weights(int64_t in_size, int64_t out_size, bool antialias) {
  Weights r;
  r.first.resize(out_size);
  r.count.resize(out_size);
  const double scale = static_cast<double>(in_size) / static_cast<double>(out_size);
  if (!antialias) {
    r.ksize = 2;
    r.w.assign(out_size * 2, 0.0);
    for (int64_t o = 0; o < out_size; ++o) {
      double src = scale * (static_cast<double>(o) + 0.5) - 0.5;
      if (src < 0) src = 0;
      const int64_t x0 = static_cast<int64_t>(src);
      const bool has_next = x0 < in_size - 1;
      const double l1 = has_next ? src - static_cast<double>(x0) : 0.0;
      r.first[o] = x0;
      r.count[o] = has_next ? 2 : 1;
      r.w[o * 2] = 1.0 - l1;
      r.w[o * 2 + 1] = l1;
    }
    return r;
  }
  const double filterscale = std::max(scale, 1.0);
  const double support = filterscale;  // bilinear support is 1
  r.ksize = static_cast<int64_t>(std::ceil(support)) * 2 + 1;
  r.w.assign(out_size * r.ksize, 0.0);
  const double ss = 1.0 / filterscale;
  for (int64_t o = 0; o < out_size; ++o) {
    const double center = (static_cast<double>(o) + 0.5) * scale;
    // (int) truncation as in PIL: these are the C casts PIL rounds with.
    int64_t xmin = static_cast<int64_t>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int64_t xmax = static_cast<int64_t>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double* k = &r.w[o * r.ksize];
    double total = 0;
    for (int64_t x = 0; x < xmax; ++x) {
      const double t = std::abs((static_cast<double>(x + xmin) - center + 0.5) * ss);
      k[x] = t < 1.0 ? 1.0 - t : 0.0;
      total += k[x];
    }
    if (total != 0.0)
      for (int64_t x = 0; x < xmax; ++x) k[x] /= total;
    r.first[o] = xmin;
    r.count[o] = xmax;
  }
  return r;
}

// PIL's 8-bit path: weights in 22-bit fixed point, rounded half away from zero.
constexpr int kPrecisionBits = 32 - 8 - 2;

std::vector<int32_t> fixed_point(const std::vector<double>& w) {
  std::vector<int32_t> k(w.size());
  for (size_t i = 0; i < w.size(); ++i)
    k[i] = static_cast<int32_t>(w[i] < 0 ? -0.5 + w[i] * (1 << kPrecisionBits)
                                         : 0.5 + w[i] * (1 << kPrecisionBits));
  return k;
}

inline uint8_t clip8(int32_t v) {
  v >>= kPrecisionBits;
  return static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
}

// Gives every output exactly `ksize` taps when the input is at least that
// wide: the window slides left at the right edge and the extra taps get weight
// 0. Integer sums are unchanged (0 * p adds nothing), and fixed-length tap
// loops let the compiler unroll the horizontal pass.
bool pack_fixed_taps(Weights& wt, std::vector<int32_t>& k, int64_t in_size) {
  if (in_size < wt.ksize) return false;
  const auto n = static_cast<int64_t>(wt.first.size());
  for (int64_t o = 0; o < n; ++o) {
    const int64_t f = std::min(wt.first[o], in_size - wt.ksize), shift = wt.first[o] - f;
    int32_t* kk = &k[o * wt.ksize];
    for (int64_t t = wt.count[o] - 1; t >= 0; --t) kk[t + shift] = kk[t];
    for (int64_t t = 0; t < shift; ++t) kk[t] = 0;
    for (int64_t t = shift + wt.count[o]; t < wt.ksize; ++t) kk[t] = 0;
    wt.first[o] = f;
    wt.count[o] = wt.ksize;
  }
  return true;
}

template <int KS>
void horizontal_row_fixed(const uint8_t* in, const Weights& wt, const int32_t* k, int64_t out_w,
                          uint8_t* out) {
  for (int64_t xx = 0; xx < out_w; ++xx) {
    const int32_t* kk = k + xx * KS;
    const uint8_t* p = in + wt.first[xx] * 3;
    int32_t s0 = 1 << (kPrecisionBits - 1), s1 = s0, s2 = s0;
    for (int t = 0; t < KS; ++t) {
      s0 += p[t * 3 + 0] * kk[t];
      s1 += p[t * 3 + 1] * kk[t];
      s2 += p[t * 3 + 2] * kk[t];
    }
    out[xx * 3 + 0] = clip8(s0);
    out[xx * 3 + 1] = clip8(s1);
    out[xx * 3 + 2] = clip8(s2);
  }
}

void horizontal_row(const uint8_t* in, const Weights& wt, const int32_t* k, int64_t out_w,
                    uint8_t* out) {
  for (int64_t xx = 0; xx < out_w; ++xx) {
    const int32_t* kk = k + xx * wt.ksize;
    const uint8_t* p = in + wt.first[xx] * 3;
    int32_t s0 = 1 << (kPrecisionBits - 1), s1 = s0, s2 = s0;
    for (int64_t x = 0; x < wt.count[xx]; ++x) {
      s0 += p[x * 3 + 0] * kk[x];
      s1 += p[x * 3 + 1] * kk[x];
      s2 += p[x * 3 + 2] * kk[x];
    }
    out[xx * 3 + 0] = clip8(s0);
    out[xx * 3 + 1] = clip8(s1);
    out[xx * 3 + 2] = clip8(s2);
  }
}

// Horizontal pass over rows [y0, y1) of a region starting at `src` (row stride
// `src_stride` bytes), writing `out_w` RGB pixels per row into `dst`. `fixed`:
// the weights went through pack_fixed_taps.
void resample_horizontal(const uint8_t* src, int64_t src_stride, int64_t y0, int64_t y1,
                         const Weights& wt, const std::vector<int32_t>& k, int64_t out_w,
                         bool fixed, uint8_t* dst) {
  for (int64_t y = y0; y < y1; ++y) {
    const uint8_t* in = src + y * src_stride;
    uint8_t* out = dst + (y - y0) * out_w * 3;
    switch (fixed ? wt.ksize : 0) {
      case 3:
        horizontal_row_fixed<3>(in, wt, k.data(), out_w, out);
        break;
      case 5:
        horizontal_row_fixed<5>(in, wt, k.data(), out_w, out);
        break;
      case 7:
        horizontal_row_fixed<7>(in, wt, k.data(), out_w, out);
        break;
      case 9:
        horizontal_row_fixed<9>(in, wt, k.data(), out_w, out);
        break;
      default:
        horizontal_row(in, wt, k.data(), out_w, out);
    }
  }
}

// Vertical pass: row r of `src` (stride `src_stride`) is input row r + row0.
void resample_vertical(const uint8_t* src, int64_t src_stride, int64_t row0, int64_t width,
                       const Weights& wt, const std::vector<int32_t>& k, int64_t out_h,
                       uint8_t* dst) {
  const int64_t n = width * 3;
  std::vector<int32_t> acc(n);
  for (int64_t yy = 0; yy < out_h; ++yy) {
    std::fill(acc.begin(), acc.end(), 1 << (kPrecisionBits - 1));
    const int32_t* kk = &k[yy * wt.ksize];
    for (int64_t y = 0; y < wt.count[yy]; ++y) {
      const uint8_t* in = src + (wt.first[yy] + y - row0) * src_stride;
      const int32_t c = kk[y];
      for (int64_t i = 0; i < n; ++i) acc[i] += in[i] * c;
    }
    uint8_t* out = dst + yy * n;
    for (int64_t i = 0; i < n; ++i) out[i] = clip8(acc[i]);
  }
}

double uniform(Generator& gen, double lo, double hi) { return lo + (hi - lo) * gen.next_double(); }

// Python's round(): half to even (the default floating-point rounding mode).
int64_t py_round(double v) { return static_cast<int64_t>(std::nearbyint(v)); }

const Image& need_image(const ImageOrTensor& x, const char* who) {
  GRAFT_CHECK(std::holds_alternative<Image>(x), who,
              ": expects a decoded Image (HWC uint8); got a Tensor: put ", who,
              " before ToTensor in the pipeline");
  return std::get<Image>(x);
}

void check_float_image_tensor(const Tensor& t, const char* who) {
  GRAFT_CHECK(t.dtype() == DType::Float32 && (t.dim() == 3 || t.dim() == 4) && t.device().is_cpu(),
              who, ": expects a float32 CPU tensor [C, H, W] or [N, C, H, W], got ", t.meta_str());
}

}  // namespace

// ---- functional ----

std::array<int64_t, 2> resize_output_size(int64_t height, int64_t width, int64_t shorter) {
  GRAFT_CHECK(shorter > 0, "Resize: size must be positive, got ", shorter);
  GRAFT_CHECK(height > 0 && width > 0, "Resize: empty image ", height, "x", width);
  const int64_t s = std::min(height, width), l = std::max(height, width);
  // int(size * long / short) in Python: float product, truncated.
  const auto new_long = static_cast<int64_t>(static_cast<double>(shorter) * static_cast<double>(l) /
                                             static_cast<double>(s));
  return width <= height ? std::array<int64_t, 2>{new_long, shorter}
                         : std::array<int64_t, 2>{shorter, new_long};
}

Image resized_crop(const Image& img, int64_t top, int64_t left, int64_t h, int64_t w, int64_t out_h,
                   int64_t out_w) {
  GRAFT_CHECK(out_h > 0 && out_w > 0, "resize: output size must be positive, got ", out_h, "x",
              out_w);
  GRAFT_CHECK(
      h > 0 && w > 0 && top >= 0 && left >= 0 && top + h <= img.height && left + w <= img.width,
      "resized_crop: region (top ", top, ", left ", left, ", ", h, "x", w, ") is not inside the ",
      img.height, "x", img.width, " image");
  const int64_t stride = img.width * 3;
  const uint8_t* base = img.pixels.data() + top * stride + left * 3;
  Image out(out_h, out_w);
  if (h == out_h && w == out_w) {
    for (int64_t y = 0; y < h; ++y) std::copy_n(base + y * stride, w * 3, out.row(y));
    return out;
  }
  const bool need_h = w != out_w, need_v = h != out_h;
  Weights wv, wh;
  std::vector<int32_t> kv, kh;
  if (need_v) {
    wv = make_weights(h, out_h, true);
    kv = fixed_point(wv.w);
  }
  if (!need_h) {  // vertical only, straight from the source rows
    resample_vertical(base, stride, 0, w, wv, kv, out_h, out.pixels.data());
    return out;
  }
  wh = make_weights(w, out_w, true);
  kh = fixed_point(wh.w);
  const bool fixed = pack_fixed_taps(wh, kh, w);
  if (!need_v) {
    resample_horizontal(base, stride, 0, h, wh, kh, out_w, fixed, out.pixels.data());
    return out;
  }
  // PIL: horizontal pass over the rows the vertical pass reads, stored as
  // uint8, then the vertical pass.
  const int64_t y0 = wv.first[0], y1 = wv.first[out_h - 1] + wv.count[out_h - 1];
  std::vector<uint8_t> tmp(static_cast<size_t>((y1 - y0) * out_w * 3));
  resample_horizontal(base, stride, y0, y1, wh, kh, out_w, fixed, tmp.data());
  resample_vertical(tmp.data(), out_w * 3, y0, out_w, wv, kv, out_h, out.pixels.data());
  return out;
}

Image resize(const Image& img, int64_t out_h, int64_t out_w) {
  GRAFT_CHECK(!img.empty(), "resize: empty image");
  return resized_crop(img, 0, 0, img.height, img.width, out_h, out_w);
}

Tensor resize(const Tensor& img, int64_t out_h, int64_t out_w, bool antialias) {
  check_float_image_tensor(img, "resize");
  GRAFT_CHECK(out_h > 0 && out_w > 0, "resize: output size must be positive, got ", out_h, "x",
              out_w);
  const Tensor x = img.contiguous();
  const int64_t H = x.size(-2), W = x.size(-1);
  const int64_t planes = x.numel() / (H * W);
  Shape oshape = x.sizes();
  oshape[oshape.size() - 2] = out_h;
  oshape[oshape.size() - 1] = out_w;
  Tensor out = empty(oshape);
  const Weights wh = make_weights(W, out_w, antialias), wv = make_weights(H, out_h, antialias);
  const float* src = x.data_ptr<float>();
  float* dst = out.data_ptr<float>();
  parallel_for(0, planes, 1, [&](int64_t p0, int64_t p1) {
    std::vector<float> tmp(static_cast<size_t>(H * out_w));
    for (int64_t p = p0; p < p1; ++p) {
      const float* in = src + p * H * W;
      for (int64_t y = 0; y < H; ++y)
        for (int64_t o = 0; o < out_w; ++o) {
          double s = 0;
          for (int64_t t = 0; t < wh.count[o]; ++t)
            s += wh.w[o * wh.ksize + t] * in[y * W + wh.first[o] + t];
          tmp[y * out_w + o] = static_cast<float>(s);
        }
      float* o_plane = dst + p * out_h * out_w;
      for (int64_t o = 0; o < out_h; ++o)
        for (int64_t xx = 0; xx < out_w; ++xx) {
          double s = 0;
          for (int64_t t = 0; t < wv.count[o]; ++t)
            s += wv.w[o * wv.ksize + t] * tmp[(wv.first[o] + t) * out_w + xx];
          o_plane[o * out_w + xx] = static_cast<float>(s);
        }
    }
  });
  return out;
}

Image crop(const Image& img, int64_t top, int64_t left, int64_t h, int64_t w) {
  GRAFT_CHECK(h > 0 && w > 0, "crop: size must be positive, got ", h, "x", w);
  Image out(h, w, 0);
  const int64_t y0 = std::max<int64_t>(top, 0), y1 = std::min(top + h, img.height);
  const int64_t x0 = std::max<int64_t>(left, 0), x1 = std::min(left + w, img.width);
  for (int64_t y = y0; y < y1; ++y)
    if (x1 > x0)
      std::copy_n(img.row(y) + x0 * 3, (x1 - x0) * 3, out.row(y - top) + (x0 - left) * 3);
  return out;
}

Image center_crop(const Image& img, int64_t h, int64_t w) {
  GRAFT_CHECK(h > 0 && w > 0, "CenterCrop: size must be positive, got ", h, "x", w);
  GRAFT_CHECK(!img.empty(), "CenterCrop: empty image");
  int64_t H = img.height, W = img.width, pad_top = 0, pad_left = 0;
  // torchvision pads with zeros (left/top get the floor half) when the crop is
  // larger, then crops the centre of the padded image.
  if (w > W || h > H) {
    pad_left = w > W ? (w - W) / 2 : 0;
    pad_top = h > H ? (h - H) / 2 : 0;
    W += w > W ? (w - img.width) : 0;
    H += h > H ? (h - img.height) : 0;
  }
  const int64_t top = py_round(static_cast<double>(H - h) / 2.0);
  const int64_t left = py_round(static_cast<double>(W - w) / 2.0);
  return crop(img, top - pad_top, left - pad_left, h, w);
}

Image hflip(const Image& img) {
  Image out(img.height, img.width);
  for (int64_t y = 0; y < img.height; ++y) {
    const uint8_t* in = img.row(y);
    uint8_t* o = out.row(y);
    for (int64_t x = 0; x < img.width; ++x) {
      const uint8_t* p = in + (img.width - 1 - x) * 3;
      o[x * 3] = p[0];
      o[x * 3 + 1] = p[1];
      o[x * 3 + 2] = p[2];
    }
  }
  return out;
}

namespace {
// HWC uint8 -> CHW float through a per-channel 256-entry table, which holds
// exactly torchvision's float32 (x / 255 - mean) / std for every byte value.
Tensor to_tensor_lut(const Image& img, const float (*lut)[256]) {
  Tensor out = empty({3, img.height, img.width});
  float* dst = out.data_ptr<float>();
  const int64_t n = img.height * img.width;
  const uint8_t* src = img.pixels.data();
  float* d0 = dst;
  float* d1 = dst + n;
  float* d2 = dst + 2 * n;
  for (int64_t i = 0; i < n; ++i) {
    d0[i] = lut[0][src[i * 3]];
    d1[i] = lut[1][src[i * 3 + 1]];
    d2[i] = lut[2][src[i * 3 + 2]];
  }
  return out;
}

struct NormLut {
  float v[3][256];
  NormLut(const std::vector<float>& mean, const std::vector<float>& std) {
    for (int c = 0; c < 3; ++c)
      for (int i = 0; i < 256; ++i) {
        const float x = static_cast<float>(i) / 255.0f;
        v[c][i] = mean.empty() ? x : (x - mean[c]) / std[c];
      }
  }
};
}  // namespace

Tensor to_tensor(const Image& img) {
  static const NormLut lut({}, {});
  return to_tensor_lut(img, lut.v);
}

Tensor normalize(const Tensor& x, const std::vector<float>& mean, const std::vector<float>& std) {
  check_float_image_tensor(x, "Normalize");
  const int64_t C = x.size(-3);
  GRAFT_CHECK(static_cast<int64_t>(mean.size()) == C && static_cast<int64_t>(std.size()) == C,
              "Normalize: ", mean.size(), " means and ", std.size(), " stds for ", C, " channels");
  Tensor out = x.contiguous().clone();
  float* p = out.data_ptr<float>();
  const int64_t hw = x.size(-1) * x.size(-2), planes = out.numel() / hw;
  for (int64_t pl = 0; pl < planes; ++pl) {
    const float m = mean[pl % C], s = std[pl % C];
    for (int64_t i = 0; i < hw; ++i) p[pl * hw + i] = (p[pl * hw + i] - m) / s;
  }
  return out;
}

CropBox random_resized_crop_params(int64_t height, int64_t width, std::array<double, 2> scale,
                                   std::array<double, 2> ratio, Generator& gen) {
  GRAFT_CHECK(height > 0 && width > 0, "RandomResizedCrop: empty image");
  const double area = static_cast<double>(height) * static_cast<double>(width);
  const double log_r0 = std::log(ratio[0]), log_r1 = std::log(ratio[1]);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target_area = area * uniform(gen, scale[0], scale[1]);
    const double aspect = std::exp(uniform(gen, log_r0, log_r1));
    const int64_t w = py_round(std::sqrt(target_area * aspect));
    const int64_t h = py_round(std::sqrt(target_area / aspect));
    if (0 < w && w <= width && 0 < h && h <= height) {
      const auto i = static_cast<int64_t>(gen.next_below(static_cast<uint64_t>(height - h + 1)));
      const auto j = static_cast<int64_t>(gen.next_below(static_cast<uint64_t>(width - w + 1)));
      return {i, j, h, w};
    }
  }
  // Fallback: the largest central crop whose ratio is within bounds.
  const double in_ratio = static_cast<double>(width) / static_cast<double>(height);
  int64_t w = width, h = height;
  if (in_ratio < std::min(ratio[0], ratio[1])) {
    h = py_round(static_cast<double>(w) / std::min(ratio[0], ratio[1]));
  } else if (in_ratio > std::max(ratio[0], ratio[1])) {
    w = py_round(static_cast<double>(h) * std::max(ratio[0], ratio[1]));
  }
  return {(height - h) / 2, (width - w) / 2, h, w};
}

// ---- transform objects ----

Resize::Resize(int64_t shorter, bool antialias) : h_(shorter), w_(-1), antialias_(antialias) {
  GRAFT_CHECK(shorter > 0, "Resize: size must be positive, got ", shorter);
}
Resize::Resize(std::array<int64_t, 2> size, bool antialias)
    : h_(size[0]), w_(size[1]), antialias_(antialias) {
  GRAFT_CHECK(h_ > 0 && w_ > 0, "Resize: size must be positive, got ", h_, "x", w_);
}

ImageOrTensor Resize::apply(ImageOrTensor x, Generator&) const {
  int64_t H, W;
  if (auto* img = std::get_if<Image>(&x)) {
    H = img->height;
    W = img->width;
  } else {
    const Tensor& t = std::get<Tensor>(x);
    check_float_image_tensor(t, "Resize");
    H = t.size(-2);
    W = t.size(-1);
  }
  const auto [oh, ow] = w_ < 0 ? resize_output_size(H, W, h_) : std::array<int64_t, 2>{h_, w_};
  if (oh == H && ow == W) return x;  // torchvision returns the input unchanged
  if (auto* img = std::get_if<Image>(&x)) {
    // PIL always antialiases; antialias=false only affects tensors, as in torchvision.
    return resize(*img, oh, ow);
  }
  return resize(std::get<Tensor>(x), oh, ow, antialias_);
}

std::string Resize::repr() const {
  std::ostringstream os;
  os << "Resize(size=";
  if (w_ < 0)
    os << h_;
  else
    os << "(" << h_ << ", " << w_ << ")";
  os << ", antialias=" << (antialias_ ? "True" : "False") << ")";
  return os.str();
}

CenterCrop::CenterCrop(int64_t height, int64_t width) : h_(height), w_(width) {
  GRAFT_CHECK(height > 0 && width > 0, "CenterCrop: size must be positive, got ", height, "x",
              width);
}
ImageOrTensor CenterCrop::apply(ImageOrTensor x, Generator&) const {
  return center_crop(need_image(x, "CenterCrop"), h_, w_);
}
std::string CenterCrop::repr() const {
  return "CenterCrop(size=(" + std::to_string(h_) + ", " + std::to_string(w_) + "))";
}

RandomResizedCrop::RandomResizedCrop(int64_t height, int64_t width, std::array<double, 2> scale,
                                     std::array<double, 2> ratio)
    : h_(height), w_(width), scale_(scale), ratio_(ratio) {
  GRAFT_CHECK(height > 0 && width > 0, "RandomResizedCrop: size must be positive, got ", height,
              "x", width);
  GRAFT_CHECK(scale[0] > 0 && scale[0] <= scale[1], "RandomResizedCrop: bad scale (", scale[0],
              ", ", scale[1], ")");
  GRAFT_CHECK(ratio[0] > 0 && ratio[0] <= ratio[1], "RandomResizedCrop: bad ratio (", ratio[0],
              ", ", ratio[1], ")");
}
ImageOrTensor RandomResizedCrop::apply(ImageOrTensor x, Generator& gen) const {
  const Image& img = need_image(x, "RandomResizedCrop");
  const CropBox b = random_resized_crop_params(img.height, img.width, scale_, ratio_, gen);
  return resized_crop(img, b.top, b.left, b.height, b.width, h_, w_);
}
std::string RandomResizedCrop::repr() const {
  std::ostringstream os;
  os << "RandomResizedCrop(size=(" << h_ << ", " << w_ << "), scale=(" << scale_[0] << ", "
     << scale_[1] << "), ratio=(" << ratio_[0] << ", " << ratio_[1] << "))";
  return os.str();
}

RandomHorizontalFlip::RandomHorizontalFlip(double p) : p_(p) {
  GRAFT_CHECK(p >= 0 && p <= 1, "RandomHorizontalFlip: p must be in [0, 1], got ", p);
}
ImageOrTensor RandomHorizontalFlip::apply(ImageOrTensor x, Generator& gen) const {
  const Image& img = need_image(x, "RandomHorizontalFlip");
  // torchvision: flip when torch.rand(1) < p (one draw per image, always).
  if (gen.next_double() < p_) return hflip(img);
  return x;
}
std::string RandomHorizontalFlip::repr() const {
  return "RandomHorizontalFlip(p=" + std::to_string(p_) + ")";
}

ColorJitter::ColorJitter(double brightness, double contrast, double saturation)
    : b_(brightness), c_(contrast), s_(saturation) {
  GRAFT_CHECK(b_ >= 0 && c_ >= 0 && s_ >= 0, "ColorJitter: values must be non-negative, got ", b_,
              ", ", c_, ", ", s_);
}

namespace {
// torchvision _blend on uint8: float32 ratio*a + (1-ratio)*b, clamp, truncate.
inline uint8_t blend(float ratio, float a, float b) {
  const float v = ratio * a + (1.0f - ratio) * b;
  return static_cast<uint8_t>(std::clamp(v, 0.0f, 255.0f));
}
inline uint8_t gray_u8(const uint8_t* p) {
  return static_cast<uint8_t>(0.2989f * p[0] + 0.587f * p[1] + 0.114f * p[2]);
}
}  // namespace

ImageOrTensor ColorJitter::apply(ImageOrTensor x, Generator& gen) const {
  Image img = need_image(x, "ColorJitter");
  // torchvision: a random order (randperm), then the factors, then apply.
  int order[3] = {0, 1, 2};
  for (int i = 2; i > 0; --i) std::swap(order[i], order[gen.next_below(i + 1)]);
  const double vals[3] = {b_, c_, s_};
  float factor[3] = {1, 1, 1};
  for (int k = 0; k < 3; ++k)
    if (vals[k] > 0)
      factor[k] = static_cast<float>(uniform(gen, std::max(0.0, 1 - vals[k]), 1 + vals[k]));
  const int64_t n = img.height * img.width;
  uint8_t* p = img.pixels.data();
  for (int k : order) {
    if (vals[k] <= 0) continue;
    const float f = factor[k];
    if (k == 0) {
      for (int64_t i = 0; i < n * 3; ++i) p[i] = blend(f, p[i], 0.0f);
    } else if (k == 1) {
      double sum = 0;
      for (int64_t i = 0; i < n; ++i) sum += gray_u8(p + i * 3);
      const auto mean = static_cast<float>(sum / static_cast<double>(n));
      for (int64_t i = 0; i < n * 3; ++i) p[i] = blend(f, p[i], mean);
    } else {
      for (int64_t i = 0; i < n; ++i) {
        const float g = gray_u8(p + i * 3);
        for (int c = 0; c < 3; ++c) p[i * 3 + c] = blend(f, p[i * 3 + c], g);
      }
    }
  }
  return img;
}
std::string ColorJitter::repr() const {
  std::ostringstream os;
  os << "ColorJitter(brightness=" << b_ << ", contrast=" << c_ << ", saturation=" << s_ << ")";
  return os.str();
}

ImageOrTensor ToTensor::apply(ImageOrTensor x, Generator&) const {
  return to_tensor(need_image(x, "ToTensor"));
}

Normalize::Normalize(std::vector<float> mean, std::vector<float> std)
    : mean_(std::move(mean)), std_(std::move(std)) {
  GRAFT_CHECK(!mean_.empty() && mean_.size() == std_.size(), "Normalize: ", mean_.size(),
              " means and ", std_.size(), " stds");
  for (float s : std_) GRAFT_CHECK(s != 0.0f, "Normalize: std must be non-zero");
}
ImageOrTensor Normalize::apply(ImageOrTensor x, Generator&) const {
  GRAFT_CHECK(std::holds_alternative<Tensor>(x),
              "Normalize: expects a tensor; put ToTensor before Normalize");
  return normalize(std::get<Tensor>(x), mean_, std_);
}
std::string Normalize::repr() const {
  std::ostringstream os;
  os << "Normalize(mean=[";
  for (size_t i = 0; i < mean_.size(); ++i) os << (i ? ", " : "") << mean_[i];
  os << "], std=[";
  for (size_t i = 0; i < std_.size(); ++i) os << (i ? ", " : "") << std_[i];
  os << "])";
  return os.str();
}

namespace {
// ToTensor + Normalize in one pass over the pixels.
class ToTensorNormalize : public Transform {
 public:
  explicit ToTensorNormalize(const Normalize& n) : n_(n), lut_(n.mean(), n.std()) {
    GRAFT_CHECK(n.mean().size() == 3, "Normalize: ", n.mean().size(),
                " means for a 3-channel image");
  }
  ImageOrTensor apply(ImageOrTensor x, Generator&) const override {
    return to_tensor_lut(need_image(x, "ToTensor"), lut_.v);
  }
  std::string repr() const override { return "ToTensor()\n  " + n_.repr(); }
  bool deterministic() const override { return true; }

 private:
  Normalize n_;
  NormLut lut_;
};
}  // namespace

Compose::Compose(std::vector<TransformPtr> transforms) {
  for (size_t i = 0; i < transforms.size(); ++i) {
    GRAFT_CHECK(transforms[i], "Compose: transform ", i, " is null");
    const auto* norm = i + 1 < transforms.size()
                           ? dynamic_cast<const Normalize*>(transforms[i + 1].get())
                           : nullptr;
    if (dynamic_cast<const ToTensor*>(transforms[i].get()) && norm && norm->mean().size() == 3) {
      transforms_.push_back(std::make_shared<ToTensorNormalize>(*norm));
      ++i;
    } else {
      transforms_.push_back(transforms[i]);
    }
  }
}

ImageOrTensor Compose::apply(ImageOrTensor x, Generator& gen) const {
  for (const auto& t : transforms_) x = t->apply(std::move(x), gen);
  return x;
}

Tensor Compose::operator()(const Image& img, Generator& gen) const {
  ImageOrTensor out = apply(img, gen);
  GRAFT_CHECK(std::holds_alternative<Tensor>(out),
              "Compose: the pipeline ends with an Image; add ToTensor()");
  return std::get<Tensor>(std::move(out));
}

bool Compose::deterministic() const {
  for (const auto& t : transforms_)
    if (!t->deterministic()) return false;
  return true;
}

std::string Compose::random_steps() const {
  std::string s;
  for (const auto& t : transforms_) {
    if (t->deterministic()) continue;
    const std::string r = t->repr();
    s += (s.empty() ? "" : ", ") + r.substr(0, r.find('('));
  }
  return s;
}

std::string Compose::repr() const {
  std::string s = "Compose(";
  for (const auto& t : transforms_) s += "\n  " + t->repr();
  return s + "\n)";
}

std::shared_ptr<const Compose> imagenet_train_transform(int64_t size) {
  return std::make_shared<Compose>(std::vector<TransformPtr>{
      std::make_shared<RandomResizedCrop>(size), std::make_shared<RandomHorizontalFlip>(0.5),
      std::make_shared<ToTensor>(), std::make_shared<Normalize>()});
}

std::shared_ptr<const Compose> imagenet_eval_transform(int64_t resize, int64_t size) {
  return std::make_shared<Compose>(std::vector<TransformPtr>{
      std::make_shared<Resize>(resize), std::make_shared<CenterCrop>(size),
      std::make_shared<ToTensor>(), std::make_shared<Normalize>()});
}

}  // namespace graft::data
