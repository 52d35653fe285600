// nn ops (core/ops_nn.h) against PyTorch fixtures (tests/fixtures/gen_nn_ops.py),
// finite-difference gradient checks in float64, and error cases.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>

#include "core/autograd.h"
#include "core/gradcheck.h"
#include "core/ops_nn.h"
#include "core/parallel.h"
#include "io/npy.h"
#include "nn/layers.h"
#include "tests/test_util.h"

namespace graft {
namespace {

using testing::close_to;

// One fixture case: params.txt values and the .npy tensors of a directory.
struct Case {
  std::string dir;
  std::map<std::string, double> params;
  static bool exists(const std::string& name) {
    return testing::fixture_exists("nn_ops/" + name + "/params.txt");
  }
  explicit Case(const std::string& name) : dir("nn_ops/" + name + "/") {
    std::ifstream f(testing::fixture(dir + "params.txt"));
    std::string key;
    double v;
    while (f >> key >> v) params[key] = v;
  }
  int64_t i(const std::string& k) const { return static_cast<int64_t>(params.at(k)); }
  double d(const std::string& k) const { return params.at(k); }
  bool has(const std::string& name) const { return testing::fixture_exists(dir + name + ".npy"); }
  // Tensor `name` (undefined when absent), floats converted to `dtype`.
  Tensor t(const std::string& name, DType dtype = DType::Float64) const {
    if (!has(name)) return Tensor();
    Tensor x = io::load_npy(testing::fixture(dir + name + ".npy"));
    return is_floating(x.dtype()) ? x.to(dtype) : x;
  }
  Tensor leaf(const std::string& name, DType dtype) const {
    Tensor x = t(name, dtype);
    if (x.defined()) x.set_requires_grad(true);
    return x;
  }
};

// Fixture cases prefix0, prefix1, ... that exist.
std::vector<std::string> case_names(const std::string& prefix) {
  std::vector<std::string> names;
  for (int i = 0; i < 100; ++i)
    if (Case::exists(prefix + std::to_string(i))) names.push_back(prefix + std::to_string(i));
  return names;
}
constexpr const char* kMissing = "nn_ops fixtures missing: run tests/fixtures/generate.sh";

// Tolerances (max |a-e| / max |e| per tensor) against torch's float64 results.
// float32: each case is one op on the references' inputs rounded to float32
// (2^-24 relative). An output sums at most K = 147 products (conv 3x7x7) or
// normalises at least 8 values per channel (batch_norm); the worst-case
// float32 summation error, K * 2^-24 * sum|terms| / max|out|, stays below 1e-5
// for every case here in any summation order (cache blocking, threads, SIMD
// width), so 1e-4 holds on any machine and still catches a wrong term.
// float64: 1e-10, about 10^6 ulps; float64 rounding differences are ~1e-15.
double tol(DType t) { return t == DType::Float32 ? 1e-4 : 1e-10; }
const DType kDTypes[] = {DType::Float32, DType::Float64};

// Backpropagates grad_out through out and compares each leaf's .grad.
void check_grads(const Tensor& out, const Tensor& grad_out,
                 const std::vector<std::pair<Tensor, Tensor>>& leaf_and_expected, DType dt) {
  out.backward(grad_out);
  for (const auto& [leaf, expected] : leaf_and_expected) {
    if (!expected.defined()) continue;
    ASSERT_TRUE(leaf.grad().defined());
    EXPECT_TRUE(close_to(leaf.grad().to(DType::Float64), expected, tol(dt)));
  }
}

// max |a - b| over two tensors of one shape; infinite for a NaN or a shape
// mismatch, as in max_rel_error (std::max alone would skip a NaN).
double max_abs_diff(const Tensor& a, const Tensor& b) {
  if (a.sizes() != b.sizes()) return std::numeric_limits<double>::infinity();
  const auto va = a.to_vector<double>(), vb = b.to_vector<double>();
  double m = 0;
  for (size_t i = 0; i < va.size(); ++i) {
    const double d = std::fabs(va[i] - vb[i]);
    if (std::isnan(d)) return std::numeric_limits<double>::infinity();
    m = std::max(m, d);
  }
  return m;
}
double max_abs(const Tensor& a) { return max_abs_diff(a, zeros_like(a)); }

F::Conv2dParams conv_params(const Case& c) {
  F::Conv2dParams p;
  p.stride_h = c.i("stride_h");
  p.stride_w = c.i("stride_w");
  p.pad_h = c.i("pad_h");
  p.pad_w = c.i("pad_w");
  p.dilation_h = c.i("dilation_h");
  p.dilation_w = c.i("dilation_w");
  p.groups = c.i("groups");
  return p;
}

// Finite differences (core/gradcheck.h) in float64. Central differences with
// gradcheck's step (1e-6) have truncation error ~1e-10 and rounding error
// ~1e-10 on these O(1) functions: atol 1e-7 / rtol 1e-5 leave a factor 1000.
void gradcheck(const GradcheckFn& f, const std::vector<Tensor>& inputs) {
  GradcheckOptions o;
  o.atol = 1e-7;
  o.rtol = 1e-5;
  const GradcheckResult r = graft::gradcheck(f, inputs, o);
  EXPECT_TRUE(r.ok) << r.message << " (max rel error " << r.max_rel_error << ")";
}

// ============================================================ conv2d

TEST(NnOps, Conv2dMatchesTorch) {
  const auto names = case_names("conv");
  if (names.empty()) GTEST_SKIP() << kMissing;
  for (const auto& name : names) {
    SCOPED_TRACE(name);
    const Case c(name);
    for (DType dt : kDTypes) {
      Tensor x = c.leaf("input", dt), w = c.leaf("weight", dt), b = c.leaf("bias", dt);
      Tensor out = F::conv2d(x, w, b, conv_params(c));
      EXPECT_TRUE(close_to(out.to(DType::Float64), c.t("out"), tol(dt)));
      check_grads(out, c.t("grad_out", dt),
                  {{x, c.t("grad_input")}, {w, c.t("grad_weight")}, {b, c.t("grad_bias")}}, dt);
    }
  }
}

TEST(NnOps, Conv2dBatchParallelMatchesSequential) {
  // A batch larger than the thread count takes the image-parallel path
  // (per-thread weight-gradient partials); each image alone is sequential.
  Generator gen(3);
  Tensor x = randn({5, 6, 9, 9}, opts(DType::Float64), &gen).set_requires_grad(true);
  Tensor w = randn({8, 6, 3, 3}, opts(DType::Float64), &gen).set_requires_grad(true);
  F::Conv2dParams p;
  p.pad_h = p.pad_w = 1;
  Tensor out = F::conv2d(x, w, Tensor(), p);
  sum(out).backward();
  Tensor gw_sum = zeros({8, 6, 3, 3}, opts(DType::Float64));
  for (int64_t n = 0; n < 5; ++n) {
    Tensor xn = x.detach().narrow(0, n, 1).contiguous().set_requires_grad(true);
    Tensor wn = w.detach().clone().set_requires_grad(true);
    Tensor on = F::conv2d(xn, wn, Tensor(), p);
    EXPECT_TRUE(close_to(on, out.detach().narrow(0, n, 1), 1e-12));
    sum(on).backward();
    add_(gw_sum, wn.grad());
  }
  EXPECT_TRUE(close_to(w.grad(), gw_sum, 1e-12));
}

TEST(NnOps, Conv2dImageChunksMatchSingleImages) {
  // Small outputs put several images into one GEMM (kernels/cpu/conv.cpp);
  // every configuration must match running each image on its own, for the
  // output and both gradients: 1x1 direct, grouped, strided, with bias.
  struct Cfg {
    int64_t C, H, O, k, stride, pad, groups;
    bool bias;
  };
  const Cfg cfgs[] = {{4, 3, 6, 1, 1, 0, 1, true},   // direct 1x1, P = 9
                      {4, 4, 6, 3, 2, 1, 2, false},  // grouped, strided, P = 4
                      {3, 2, 5, 3, 1, 1, 1, true}};  // padded 3x3, P = 4
  Generator gen(11);
  for (const Cfg& c : cfgs) {
    const int64_t N = 7;
    Tensor x = randn({N, c.C, c.H, c.H}, opts(DType::Float64), &gen).set_requires_grad(true);
    Tensor w =
        randn({c.O, c.C / c.groups, c.k, c.k}, opts(DType::Float64), &gen).set_requires_grad(true);
    Tensor b = c.bias ? randn({c.O}, opts(DType::Float64), &gen).set_requires_grad(true) : Tensor();
    F::Conv2dParams p;
    p.stride_h = p.stride_w = c.stride;
    p.pad_h = p.pad_w = c.pad;
    p.groups = c.groups;
    Tensor out = F::conv2d(x, w, b, p);
    Tensor gout = randn(out.sizes(), opts(DType::Float64), &gen);
    sum(mul(out, gout)).backward();
    Tensor gw_sum = zeros(w.sizes(), opts(DType::Float64));
    for (int64_t n = 0; n < N; ++n) {
      Tensor xn = x.detach().narrow(0, n, 1).contiguous().set_requires_grad(true);
      Tensor wn = w.detach().clone().set_requires_grad(true);
      Tensor on = F::conv2d(xn, wn, c.bias ? b.detach() : Tensor(), p);
      EXPECT_TRUE(close_to(on, out.detach().narrow(0, n, 1), 1e-12));
      sum(mul(on, gout.narrow(0, n, 1))).backward();
      EXPECT_TRUE(close_to(xn.grad(), x.grad().narrow(0, n, 1), 1e-12));
      add_(gw_sum, wn.grad());
    }
    EXPECT_TRUE(close_to(w.grad(), gw_sum, 1e-12));
  }
}

TEST(NnOps, Conv2dDeadTapsMatchExplicitZeroPadding) {
  // Taps that only ever read padding are cropped away on the CPU
  // (kernels/cpu/conv.cpp). The same convolution over an input padded with
  // explicit zeros (padding 0: every tap reads input) is the reference: output
  // and the three gradients agree to rounding, and the dead taps' weight
  // gradient is exactly zero in both.
  struct Cfg {
    int64_t H, W, k, stride, pad, dilation;
  };
  const Cfg cfgs[] = {{1, 1, 3, 1, 1, 1},   // centre tap only (ResNet layer4 at 32x32)
                      {2, 2, 3, 2, 1, 1},   // 2x2 -> 1x1, taps 1..2
                      {1, 3, 3, 1, 2, 2},   // dilated: the middle tap along H
                      {1, 4, 3, 2, 2, 1},   // live rows {0, 2}: not a range, runs uncropped
                      {1, 1, 1, 1, 1, 1},   // 3x3 output, 8 pixels read padding only: bias
                      {5, 3, 3, 2, 1, 2},   // strided and dilated, every tap live
                      {2, 2, 3, 1, 1, 1},   // every tap live for some output
                      {3, 3, 5, 1, 2, 1}};  // 5x5 over 3x3: every tap live, not cropped
  Generator gen(12);
  for (const Cfg& c : cfgs) {
    SCOPED_TRACE(::testing::Message() << c.H << "x" << c.W << " k" << c.k << " s" << c.stride
                                      << " p" << c.pad << " d" << c.dilation);
    const int64_t N = 3, C = 4, O = 5;
    Tensor x = randn({N, C, c.H, c.W}, opts(DType::Float64), &gen);
    Tensor w = randn({O, C, c.k, c.k}, opts(DType::Float64), &gen);
    Tensor b = randn({O}, opts(DType::Float64), &gen);
    F::Conv2dParams p;
    p.stride_h = p.stride_w = c.stride;
    p.pad_h = p.pad_w = c.pad;
    p.dilation_h = p.dilation_w = c.dilation;
    F::Conv2dParams unpadded = p;
    unpadded.pad_h = unpadded.pad_w = 0;
    Tensor xp = zeros({N, C, c.H + 2 * c.pad, c.W + 2 * c.pad}, opts(DType::Float64));
    xp.narrow(2, c.pad, c.H).narrow(3, c.pad, c.W).copy_(x);

    Tensor xl = x.clone().set_requires_grad(true), wl = w.clone().set_requires_grad(true);
    Tensor xpl = xp.clone().set_requires_grad(true), wr = w.clone().set_requires_grad(true);
    Tensor bl = b.clone().set_requires_grad(true), br = b.clone().set_requires_grad(true);
    Tensor out = F::conv2d(xl, wl, bl, p);
    Tensor ref = F::conv2d(xpl, wr, br, unpadded);
    ASSERT_EQ(out.sizes(), ref.sizes());
    EXPECT_TRUE(close_to(out, ref.detach(), 1e-12));
    Tensor gout = randn(out.sizes(), opts(DType::Float64), &gen);
    sum(mul(out, gout)).backward();
    sum(mul(ref, gout)).backward();
    EXPECT_TRUE(close_to(xl.grad(), xpl.grad().narrow(2, c.pad, c.H).narrow(3, c.pad, c.W), 1e-12));
    EXPECT_TRUE(close_to(wl.grad(), wr.grad(), 1e-12));
    EXPECT_TRUE(close_to(bl.grad(), br.grad(), 1e-12));
    // Exactly zero where the reference is: taps that read only padding zeros.
    const Tensor gw = wl.grad().contiguous(), gr = wr.grad().contiguous();
    const double* got = gw.data_ptr<double>();
    const double* want = gr.data_ptr<double>();
    for (int64_t i = 0; i < gw.numel(); ++i)
      if (want[i] == 0.0) {
        EXPECT_EQ(got[i], 0.0) << "weight gradient element " << i;
      }
  }
}

// Runs the body with the CPU 3x3 convolution algorithm set, then restores it.
class ConvAlgoScope {
 public:
  explicit ConvAlgoScope(CpuConvAlgo a) : saved_(cpu_conv_algo()) { set_cpu_conv_algo(a); }
  ~ConvAlgoScope() { set_cpu_conv_algo(saved_); }
  ConvAlgoScope(const ConvAlgoScope&) = delete;
  ConvAlgoScope& operator=(const ConvAlgoScope&) = delete;

 private:
  CpuConvAlgo saved_;
};

// Output and input, weight and bias gradients of conv2d under `algo`.
std::vector<Tensor> conv_results(CpuConvAlgo algo, const Tensor& x, const Tensor& w,
                                 const Tensor& b, const Tensor& gout, const F::Conv2dParams& p) {
  ConvAlgoScope scope(algo);
  Tensor xl = x.clone().set_requires_grad(true), wl = w.clone().set_requires_grad(true);
  Tensor bl = b.defined() ? b.clone().set_requires_grad(true) : Tensor();
  Tensor out = F::conv2d(xl, wl, bl, p);
  sum(mul(out, gout)).backward();
  return {out.detach(), xl.grad(), wl.grad(), bl.defined() ? bl.grad() : Tensor()};
}

TEST(NnOps, Conv2dWinogradMatchesGemmInFloat64) {
  // Winograd F(2x2,3x3) and F(4x4,3x3) (kernels/cpu/conv_winograd.cpp)
  // against im2col + GEMM: output and the input, weight and bias gradients.
  // In float64 both are the exact sum up to ~1e-15 relative rounding, so
  // 1e-12 separates a wrong tile, padding or flip (errors of order 1) from
  // rounding with a wide margin. The shapes cover odd output sizes (a last
  // partly empty tile: 1-3 of 4 rows or columns), padding 0, 1 and 2, one
  // image (the sequential path), batches split across threads, and a 70x70
  // image whose tile rows fill several column blocks that straddle images.
  struct Cfg {
    int64_t N, C, O, H, W, pad;
    bool bias;
  };
  const Cfg cfgs[] = {{3, 5, 7, 9, 6, 1, true},   {1, 4, 3, 7, 5, 0, false},
                      {2, 3, 4, 5, 8, 2, true},   {5, 6, 2, 4, 4, 1, false},
                      {3, 4, 4, 70, 70, 1, true}, {1, 2, 3, 3, 3, 1, true}};
  Generator gen(21);
  for (const Cfg& c : cfgs) {
    SCOPED_TRACE(::testing::Message() << "N" << c.N << " C" << c.C << " O" << c.O << " " << c.H
                                      << "x" << c.W << " pad " << c.pad);
    Tensor x = randn({c.N, c.C, c.H, c.W}, opts(DType::Float64), &gen);
    Tensor w = randn({c.O, c.C, 3, 3}, opts(DType::Float64), &gen);
    Tensor b = c.bias ? randn({c.O}, opts(DType::Float64), &gen) : Tensor();
    F::Conv2dParams p;
    p.pad_h = p.pad_w = c.pad;
    const int64_t OH = c.H + 2 * c.pad - 2, OW = c.W + 2 * c.pad - 2;
    Tensor gout = randn({c.N, c.O, OH, OW}, opts(DType::Float64), &gen);
    const auto want = conv_results(CpuConvAlgo::Gemm, x, w, b, gout, p);
    for (CpuConvAlgo algo : {CpuConvAlgo::Winograd, CpuConvAlgo::Winograd4}) {
      const auto got = conv_results(algo, x, w, b, gout, p);
      for (size_t i = 0; i < want.size(); ++i)
        if (want[i].defined()) {
          EXPECT_TRUE(close_to(got[i], want[i], 1e-12))
              << cpu_conv_algo_name(algo) << " result " << i;
        }
    }
  }
}

TEST(NnOps, Conv2dWinogradFloat32ErrorNearGemms) {
  // F(2x2,3x3)'s transforms add up to 3 terms per stage and halve, so its
  // float32 rounding is a small constant factor above the direct sum's.
  // F(4x4,3x3)'s sum up to 6 terms per stage with factors up to 8 (and 1/30
  // in G): a larger factor. With a ResNet-like layer (64 channels, K = 576
  // terms per output) the float64 result is the reference: each algorithm's
  // relative error must stay within 4x im2col's own float32 error plus a
  // floor: 1e-6 for F(2x2), 3e-6 for F(4x4). Measured, output / input
  // gradient / weight gradient: im2col 5.7-8e-7 / 1.7e-7 / 5.2e-7, F(2x2)
  // 2.8-3.1e-7 / 3.1e-7 / 3.8e-7 (AVX2 and AVX-512 machines), F(4x4) 2.1e-6 /
  // 2.0e-6 / 3.8e-7 (AVX2; its weight gradient is F(2x2)'s). F(4x4) on the
  // textbook points 0, 1, -1, 2, -2 measured 5.1e-6 / 5.2e-6 and fails this
  // bound, as a wrong transform coefficient (errors near 1) does.
  Generator gen(22);
  Tensor x = randn({2, 64, 16, 16}, opts(DType::Float64), &gen);
  Tensor w = mul(randn({64, 64, 3, 3}, opts(DType::Float64), &gen), 1.0 / 24);
  Tensor gout = randn({2, 64, 16, 16}, opts(DType::Float64), &gen);
  F::Conv2dParams p;
  p.pad_h = p.pad_w = 1;
  const auto ref = conv_results(CpuConvAlgo::Gemm, x, w, Tensor(), gout, p);
  auto f32 = [](const Tensor& t) { return t.to(DType::Float32); };
  const auto gemm = conv_results(CpuConvAlgo::Gemm, f32(x), f32(w), Tensor(), f32(gout), p);
  struct Bound {
    CpuConvAlgo algo;
    double factor, floor;
  };
  for (const Bound& b :
       {Bound{CpuConvAlgo::Winograd, 4, 1e-6}, Bound{CpuConvAlgo::Winograd4, 4, 3e-6}}) {
    const auto wino = conv_results(b.algo, f32(x), f32(w), Tensor(), f32(gout), p);
    for (size_t i = 0; i < 3; ++i) {  // output, input and weight gradients
      const double e_gemm = max_rel_error(gemm[i].to(DType::Float64), ref[i]);
      const double e_wino = max_rel_error(wino[i].to(DType::Float64), ref[i]);
      const std::string name = std::string(cpu_conv_algo_name(b.algo)) + "_" + std::to_string(i);
      RecordProperty("rel_error_" + name,
                     (::testing::Message() << e_wino << " (gemm " << e_gemm << ")").GetString());
      EXPECT_LE(e_wino, b.factor * e_gemm + b.floor) << name << ": gemm " << e_gemm;
      EXPECT_GT(e_wino, 0.0);  // float32 was really used
    }
  }
}

TEST(NnOps, Conv2dFrozenWeightSkipsWeightGrad) {
  Generator gen(4);
  Tensor x = randn({2, 3, 6, 6}, opts(DType::Float32), &gen).set_requires_grad(true);
  Tensor w = randn({4, 3, 3, 3}, opts(DType::Float32), &gen);  // frozen
  Tensor b = randn({4}, opts(DType::Float32), &gen);
  Tensor out = F::conv2d(x, w, b, {});
  ASSERT_TRUE(out.requires_grad());
  sum(out).backward();
  EXPECT_TRUE(x.grad().defined());
  EXPECT_FALSE(w.grad().defined());
  // Nothing requires grad: no graph at all.
  Tensor frozen = F::conv2d(x.detach(), w, b, {});
  EXPECT_FALSE(frozen.requires_grad());
}

TEST(NnOps, Conv2dNonContiguousInput) {
  Generator gen(5);
  Tensor base = randn({2, 7, 7, 3}, opts(DType::Float64), &gen);
  Tensor x = base.permute({0, 3, 1, 2});  // NHWC memory seen as NCHW
  Tensor w = randn({2, 3, 3, 3}, opts(DType::Float64), &gen);
  EXPECT_TRUE(
      close_to(F::conv2d(x, w, Tensor(), {}), F::conv2d(x.contiguous(), w, Tensor(), {}), 1e-14));
}

TEST(NnOps, Conv2dGradcheck) {
  Generator gen(6);
  F::Conv2dParams p;
  p.stride_h = 2;
  p.pad_w = 1;
  p.dilation_h = 2;
  p.groups = 2;
  gradcheck([&](const std::vector<Tensor>& v) { return F::conv2d(v[0], v[1], v[2], p); },
            {randn({2, 4, 7, 6}, {}, &gen), randn({4, 2, 2, 3}, {}, &gen), randn({4}, {}, &gen)});
}

TEST(NnOps, Conv2dErrors) {
  Tensor x = zeros({1, 4, 5, 5}), w = zeros({2, 4, 3, 3});
  EXPECT_THROW(F::conv2d(zeros({4, 5, 5}), w, Tensor(), {}), Error);     // rank
  EXPECT_THROW(F::conv2d(x, zeros({2, 3, 3, 3}), Tensor(), {}), Error);  // channels
  EXPECT_THROW(F::conv2d(x, zeros({2, 4, 6, 6}), Tensor(), {}), Error);  // output < 1
  EXPECT_THROW(F::conv2d(x, w, zeros({3}), {}), Error);                  // bias size
  EXPECT_THROW(F::conv2d(x, zeros({2, 4, 0, 3}), Tensor(), {}), Error);  // empty kernel
  F::Conv2dParams p;
  p.groups = 3;
  EXPECT_THROW(F::conv2d(zeros({1, 6, 5, 5}), zeros({4, 2, 3, 3}), Tensor(), p), Error);
  p = {};
  p.stride_h = 0;
  EXPECT_THROW(F::conv2d(x, w, Tensor(), p), Error);
  EXPECT_THROW(F::conv2d(x.to(DType::Float64), w, Tensor(), {}), Error);  // dtype mismatch
  try {
    F::conv2d(x, zeros({2, 3, 3, 3}), Tensor(), {});
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("channels"), std::string::npos) << e.what();
  }
}

TEST(NnOps, Conv2dBnEvalMatchesUnfused) {
  Generator gen(11);
  const auto o64 = opts(DType::Float64);
  Tensor x = randn({3, 4, 9, 8}, o64, &gen), w = randn({6, 2, 3, 3}, o64, &gen);
  Tensor cb = randn({6}, o64, &gen), gamma = rand({6}, o64, &gen), beta = randn({6}, o64, &gen);
  Tensor rm = randn({6}, o64, &gen), rv = add(rand({6}, o64, &gen), 0.5);
  F::Conv2dParams p;
  p.stride_w = 2;
  p.pad_h = p.pad_w = 1;
  p.groups = 2;
  for (bool relu : {false, true}) {
    for (bool affine : {false, true}) {
      for (bool bias : {false, true}) {
        SCOPED_TRACE(std::to_string(relu) + std::to_string(affine) + std::to_string(bias));
        const Tensor g = affine ? gamma : Tensor(), b = affine ? beta : Tensor();
        const Tensor c = bias ? cb : Tensor();
        Tensor ref = F::batch_norm(F::conv2d(x, w, c, p), g, b, rm, rv, false, 0.1, 1e-5);
        if (relu) ref = graft::relu(ref);
        EXPECT_TRUE(close_to(F::conv2d_bn_eval(x, w, c, p, g, b, rm, rv, 1e-5, relu), ref, 1e-12));
        // float32 folding stays within float rounding of the unfused path
        EXPECT_TRUE(close_to(
            F::conv2d_bn_eval(
                x.to(DType::Float32), w.to(DType::Float32), c.defined() ? c.to(DType::Float32) : c,
                p, g.defined() ? g.to(DType::Float32) : g, b.defined() ? b.to(DType::Float32) : b,
                rm.to(DType::Float32), rv.to(DType::Float32), 1e-5, relu)
                .to(DType::Float64),
            ref, 1e-5));
      }
    }
  }
  // With a gradient needed it takes the unfused (differentiable) path.
  Tensor wg = w.clone().set_requires_grad(true);
  Tensor y = F::conv2d_bn_eval(x, wg, cb, p, gamma, beta, rm, rv, 1e-5, true);
  sum(y).backward();
  EXPECT_TRUE(wg.grad().defined());
}

// ============================================================ batch_norm

TEST(NnOps, BatchNormMatchesTorch) {
  const auto names = case_names("bn");
  if (names.empty()) GTEST_SKIP() << kMissing;
  for (const auto& name : names) {
    SCOPED_TRACE(name);
    const Case c(name);
    for (DType dt : kDTypes) {
      Tensor x = c.leaf("input", dt), w = c.leaf("weight", dt), b = c.leaf("bias", dt);
      Tensor rm = c.t("running_mean", dt), rv = c.t("running_var", dt);
      const uint64_t version = rm.storage()->version();
      const bool training = c.i("training") != 0;
      Tensor out = F::batch_norm(x, w, b, rm, rv, training, c.d("momentum"), c.d("eps"));
      EXPECT_TRUE(close_to(out.to(DType::Float64), c.t("out"), tol(dt)));
      EXPECT_TRUE(close_to(rm.to(DType::Float64), c.t("running_mean_after"), tol(dt)));
      EXPECT_TRUE(close_to(rv.to(DType::Float64), c.t("running_var_after"), tol(dt)));
      if (training) {
        EXPECT_GT(rm.storage()->version(), version);
      }
      check_grads(out, c.t("grad_out", dt),
                  {{x, c.t("grad_input")}, {w, c.t("grad_weight")}, {b, c.t("grad_bias")}}, dt);
    }
  }
}

TEST(NnOps, BatchNormGradcheck) {
  Generator gen(8);
  for (bool training : {true, false}) {
    SCOPED_TRACE(training ? "train" : "eval");
    Tensor rm = randn({3}, opts(DType::Float64), &gen), rv = rand({3}, opts(DType::Float64), &gen);
    add_(rv, 0.5);
    gradcheck(
        [&](const std::vector<Tensor>& v) {
          // Training without running stats: repeated evaluations stay identical.
          return training ? F::batch_norm(v[0], v[1], v[2], Tensor(), Tensor(), true, 0.1, 1e-5)
                          : F::batch_norm(v[0], v[1], v[2], rm, rv, false, 0.1, 1e-5);
        },
        {randn({3, 3, 2, 2}, {}, &gen), rand({3}, {}, &gen), randn({3}, {}, &gen)});
  }
}

TEST(NnOps, BatchNormErrors) {
  Tensor x = zeros({2, 3, 4, 4});
  EXPECT_THROW(F::batch_norm(zeros({3}), Tensor(), Tensor(), Tensor(), Tensor(), true, 0.1, 1e-5),
               Error);  // rank
  EXPECT_THROW(F::batch_norm(x, zeros({4}), Tensor(), Tensor(), Tensor(), true, 0.1, 1e-5),
               Error);  // channel mismatch
  EXPECT_THROW(
      F::batch_norm(zeros({1, 3, 1, 1}), Tensor(), Tensor(), Tensor(), Tensor(), true, 0.1, 1e-5),
      Error);  // one value per channel
  EXPECT_THROW(F::batch_norm(x, Tensor(), Tensor(), Tensor(), Tensor(), false, 0.1, 1e-5),
               Error);  // eval needs running stats
}

// ============================================================ pooling

TEST(NnOps, MaxPool2dMatchesTorch) {
  const auto names = case_names("maxpool");
  if (names.empty()) GTEST_SKIP() << kMissing;
  for (const auto& name : names) {
    SCOPED_TRACE(name);
    const Case c(name);
    for (DType dt : kDTypes) {
      Tensor x = c.leaf("input", dt);
      Tensor out = F::max_pool2d(x, c.i("kernel"), c.i("stride"), c.i("padding"), c.i("dilation"),
                                 c.i("ceil_mode") != 0);
      EXPECT_TRUE(close_to(out.to(DType::Float64), c.t("out"), tol(dt)));
      check_grads(out, c.t("grad_out", dt), {{x, c.t("grad_input")}}, dt);
    }
  }
}

// The CPU max pool against a one-window-at-a-time reference of torch 1.13's
// rule (observed with torch: a larger value takes over, the first of equal
// values stays, every NaN takes over so the last NaN's index is kept), on
// inputs full of ties, NaNs and -inf, for strides 1, 2 and 3 (the kernel's
// vector rows are specialised for 1 and 2), dilation, padding and ceil mode.
// Values are compared exactly (a max is exact) and the chosen indices through
// backward: grad_out holds distinct small integers, so every sum is exact.
TEST(NnOps, MaxPool2dTiesNansAndEveryStride) {
  Generator gen(21);
  struct Cfg {
    int64_t k, s, p, d;
    bool ceil;
  };
  const Cfg cfgs[] = {{3, 2, 1, 1, false}, {3, 1, 1, 1, false}, {3, 3, 1, 1, true},
                      {2, 2, 0, 1, true},  {3, 2, 1, 2, false}, {3, 1, 0, 2, true},
                      {1, 1, 0, 1, false}, {3, 2, 0, 1, true}};
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  for (const Cfg& c : cfgs) {
    for (int64_t W : {9, 20, 37}) {
      SCOPED_TRACE(::testing::Message() << "k" << c.k << " s" << c.s << " p" << c.p << " d" << c.d
                                        << " ceil" << c.ceil << " W" << W);
      const int64_t N = 2, C = 3, H = 11;
      // Values from {0, 1, 2, 3}: many ties; then some NaN and -inf.
      std::vector<double> v =
          (randint(0, 4, {N * C * H * W}, {DType::Float64}, &gen)).to_vector<double>();
      for (size_t i = 0; i < v.size(); i += 7) v[i] = (i % 3 == 0) ? nan : -inf;
      for (DType dt : kDTypes) {
        Tensor x = tensor(v, {N, C, H, W}).to(dt).set_requires_grad(true);
        Tensor out = F::max_pool2d(x, c.k, c.s, c.p, c.d, c.ceil);
        const int64_t OH = out.size(2), OW = out.size(3);
        std::vector<double> go(static_cast<size_t>(out.numel()));
        for (size_t i = 0; i < go.size(); ++i) go[i] = static_cast<double>(i % 251 + 1);
        out.backward(tensor(go, out.sizes()).to(dt));
        const auto got = out.to_vector<double>(), gx = x.grad().to_vector<double>();
        std::vector<double> want_gx(v.size(), 0.0);
        for (int64_t pl = 0; pl < N * C; ++pl)
          for (int64_t oh = 0; oh < OH; ++oh)
            for (int64_t ow = 0; ow < OW; ++ow) {
              double best = -inf;
              int64_t best_i = -1;
              for (int64_t kh = 0; kh < c.k; ++kh)
                for (int64_t kw = 0; kw < c.k; ++kw) {
                  const int64_t h = oh * c.s - c.p + kh * c.d, w = ow * c.s - c.p + kw * c.d;
                  if (h < 0 || h >= H || w < 0 || w >= W) continue;
                  const int64_t i = h * W + w;
                  if (best_i < 0) best_i = i;  // the first position inside the image
                  const double val = v[pl * H * W + i];
                  if (val > best || std::isnan(val)) {
                    best = val;
                    best_i = i;
                  }
                }
              const size_t o = static_cast<size_t>((pl * OH + oh) * OW + ow);
              if (std::isnan(best)) {
                EXPECT_TRUE(std::isnan(got[o])) << o;
              } else {
                EXPECT_EQ(got[o], best) << o;
              }
              want_gx[pl * H * W + best_i] += go[o];
            }
        EXPECT_EQ(gx, want_gx) << dtype_name(dt);
        // Without a tape no indices are computed; the values are the same.
        const auto plain =
            F::max_pool2d(x.detach(), c.k, c.s, c.p, c.d, c.ceil).to_vector<double>();
        ASSERT_EQ(plain.size(), got.size());
        for (size_t i = 0; i < got.size(); ++i) {
          if (std::isnan(got[i])) {
            EXPECT_TRUE(std::isnan(plain[i])) << i;
          } else {
            EXPECT_EQ(plain[i], got[i]) << i;
          }
        }
      }
    }
  }
}

TEST(NnOps, AdaptiveAvgPool2dMatchesTorch) {
  const auto names = case_names("adaptive");
  if (names.empty()) GTEST_SKIP() << kMissing;
  for (const auto& name : names) {
    SCOPED_TRACE(name);
    const Case c(name);
    for (DType dt : kDTypes) {
      Tensor x = c.leaf("input", dt);
      Tensor out = F::adaptive_avg_pool2d(x, c.i("out_h"), c.i("out_w"));
      EXPECT_TRUE(close_to(out.to(DType::Float64), c.t("out"), tol(dt)));
      check_grads(out, c.t("grad_out", dt), {{x, c.t("grad_input")}}, dt);
    }
  }
}

TEST(NnOps, PoolGradcheck) {
  Generator gen(9);
  gradcheck([](const std::vector<Tensor>& v) { return F::max_pool2d(v[0], 3, 2, 1, 1, true); },
            {randn({1, 2, 6, 5}, {}, &gen)});
  gradcheck([](const std::vector<Tensor>& v) { return F::adaptive_avg_pool2d(v[0], 3, 2); },
            {randn({2, 1, 5, 7}, {}, &gen)});
}

TEST(NnOps, PoolErrors) {
  EXPECT_THROW(F::max_pool2d(zeros({3, 8, 8}), 2, 2, 0), Error);           // rank
  EXPECT_THROW(F::max_pool2d(zeros({1, 1, 8, 8}), 0, 1, 0), Error);        // kernel
  EXPECT_THROW(F::max_pool2d(zeros({1, 1, 8, 8}), 3, 2, 2), Error);        // padding > k/2
  EXPECT_THROW(F::max_pool2d(zeros({1, 1, 2, 2}), 3, 1, 0), Error);        // output < 1
  EXPECT_THROW(F::adaptive_avg_pool2d(zeros({1, 1, 4, 4}), 0, 1), Error);  // output size
  EXPECT_THROW(F::adaptive_avg_pool2d(zeros({1, 4, 4}), 1, 1), Error);     // rank
}

// ============================================================ softmax, losses, linear

TEST(NnOps, SoftmaxMatchesTorch) {
  for (const char* prefix : {"softmax", "log_softmax"}) {
    const bool log = std::string(prefix) == "log_softmax";
    GRAFT_REQUIRE_FIXTURE(std::string("nn_ops/") + prefix + "0/params.txt");
    for (int i = 0; Case::exists(prefix + std::to_string(i)); ++i) {
      SCOPED_TRACE(prefix + std::to_string(i));
      const Case c(prefix + std::to_string(i));
      for (DType dt : kDTypes) {
        Tensor x = c.leaf("input", dt);
        Tensor out = log ? F::log_softmax(x, c.i("dim")) : F::softmax(x, c.i("dim"));
        EXPECT_TRUE(close_to(out.to(DType::Float64), c.t("out"), tol(dt)));
        // The gradient, y * (go - sum(go * y)) (log: go - y * sum(go)), has
        // float32 rounding errors of order 2^-24 * D * max|go| whatever its own
        // size; where the softmax saturates (the scale-30 cases: y within 1e-8
        // of 0 or 1) it is thousands of times smaller than go, and an error
        // relative to max|grad| alone would measure the data, not the code.
        // So the bound is relative to max(max|grad|, max|go|).
        const Tensor go = c.t("grad_out", dt), expected = c.t("grad_input");
        out.backward(go);
        ASSERT_TRUE(x.grad().defined());
        const double err = max_abs_diff(x.grad().to(DType::Float64), expected);
        const double scale = std::max(max_abs(expected), max_abs(go.to(DType::Float64)));
        EXPECT_LE(err, tol(dt) * scale);
      }
    }
  }
}

TEST(NnOps, CrossEntropyMatchesTorch) {
  const auto names = case_names("ce");
  if (names.empty()) GTEST_SKIP() << kMissing;
  for (const auto& name : names) {
    SCOPED_TRACE(name);
    const Case c(name);
    for (DType dt : kDTypes) {
      Tensor x = c.leaf("input", dt);
      Tensor out = F::cross_entropy(x, c.t("target"), static_cast<F::Reduction>(c.i("reduction")),
                                    c.i("ignore_index"), c.d("label_smoothing"));
      EXPECT_TRUE(close_to(out.to(DType::Float64), c.t("out"), tol(dt)));
      check_grads(out, c.t("grad_out", dt), {{x, c.t("grad_input")}}, dt);
    }
  }
}

TEST(NnOps, NllLossMatchesTorch) {
  int found = 0;
  for (int i = 0; i < 10; ++i) {
    if (!Case::exists("nll" + std::to_string(i))) continue;
    ++found;
    SCOPED_TRACE("nll" + std::to_string(i));
    const Case c("nll" + std::to_string(i));
    for (DType dt : kDTypes) {
      Tensor x = c.leaf("input", dt);
      Tensor out = F::nll_loss(x, c.t("target"), static_cast<F::Reduction>(c.i("reduction")),
                               c.i("ignore_index"));
      EXPECT_TRUE(close_to(out.to(DType::Float64), c.t("out"), tol(dt)));
      check_grads(out, c.t("grad_out", dt), {{x, c.t("grad_input")}}, dt);
    }
  }
  if (found == 0) GTEST_SKIP() << "nll fixtures missing: run tests/fixtures/generate.sh";
}

TEST(NnOps, LinearMatchesTorch) {
  const auto names = case_names("linear");
  if (names.empty()) GTEST_SKIP() << kMissing;
  for (const auto& name : names) {
    SCOPED_TRACE(name);
    const Case c(name);
    for (DType dt : kDTypes) {
      Tensor x = c.leaf("input", dt), w = c.leaf("weight", dt), b = c.leaf("bias", dt);
      Tensor out = F::linear(x, w, b);
      EXPECT_TRUE(close_to(out.to(DType::Float64), c.t("out"), tol(dt)));
      check_grads(out, c.t("grad_out", dt),
                  {{x, c.t("grad_input")}, {w, c.t("grad_weight")}, {b, c.t("grad_bias")}}, dt);
    }
  }
}

TEST(NnOps, SoftmaxLossLinearGradcheck) {
  Generator gen(10);
  gradcheck([](const std::vector<Tensor>& v) { return F::softmax(v[0], 1); },
            {randn({3, 4, 2}, {}, &gen)});
  gradcheck([](const std::vector<Tensor>& v) { return F::log_softmax(v[0], -1); },
            {randn({3, 5}, {}, &gen)});
  const Tensor target = tensor<int64_t>({1, -100, 3, 0, 2});
  gradcheck(
      [&](const std::vector<Tensor>& v) {
        return F::cross_entropy(v[0], target, F::Reduction::Mean, -100, 0.15);
      },
      {randn({5, 4}, {}, &gen)});
  gradcheck(
      [&](const std::vector<Tensor>& v) {
        return F::nll_loss(v[0], target, F::Reduction::None, -100);
      },
      {randn({5, 4}, {}, &gen)});
  gradcheck([](const std::vector<Tensor>& v) { return F::linear(v[0], v[1], v[2]); },
            {randn({2, 3, 4}, {}, &gen), randn({5, 4}, {}, &gen), randn({5}, {}, &gen)});
}

TEST(NnOps, LossErrors) {
  Tensor x = zeros({4, 3});
  EXPECT_THROW(F::cross_entropy(x, tensor<int64_t>({0, 1, 3, 0})), Error);  // class 3 of 3
  EXPECT_THROW(F::cross_entropy(x, tensor<int64_t>({0, 1, 2})), Error);     // batch mismatch
  EXPECT_THROW(F::cross_entropy(x, zeros({4})), Error);                     // float target
  EXPECT_THROW(F::cross_entropy(zeros({4}), tensor<int64_t>({0})), Error);  // rank
  EXPECT_THROW(F::nll_loss(x, tensor<int64_t>({0, -1, 1, 1})), Error);      // negative class
  EXPECT_THROW(F::cross_entropy(x, tensor<int64_t>({0, 1, 2, 0}), F::Reduction::Mean, -100, 1.5),
               Error);
  EXPECT_THROW(F::linear(zeros({2, 3}), zeros({4, 5}), Tensor()), Error);
  EXPECT_THROW(F::softmax(x, 2), Error);
}

TEST(NnOps, CrossEntropyAllIgnoredIsNan) {
  // torch: mean over zero counted rows is 0/0.
  Tensor loss = F::cross_entropy(zeros({2, 3}), tensor<int64_t>({-100, -100}));
  EXPECT_TRUE(std::isnan(loss.item()));
}

// ============================================================ dropout

TEST(NnOps, Dropout) {
  Tensor x = ones({1000}, opts(DType::Float64)).set_requires_grad(true);
  EXPECT_TRUE(F::dropout(x, 0.3, false).is_same(x));  // eval: identity
  Generator g1(42), g2(42);
  Tensor a = F::dropout(x, 0.3, true, &g1), b = F::dropout(x, 0.3, true, &g2);
  EXPECT_TRUE(close_to(a, b, 0));  // same seed, same mask
  const std::vector<double> v = a.detach().to_vector<double>();
  int64_t kept = 0;
  for (double e : v) {
    ASSERT_TRUE(e == 0.0 || std::abs(e - 1.0 / 0.7) < 1e-12) << e;
    kept += e != 0.0;
  }
  EXPECT_NEAR(static_cast<double>(kept) / 1000.0, 0.7, 0.06);
  sum(a).backward();
  EXPECT_TRUE(close_to(x.grad(), a.detach(), 0));  // grad = mask * 1/(1-p)
  EXPECT_EQ(sum(F::dropout(x, 1.0, true)).item(), 0.0);
  EXPECT_THROW(F::dropout(x, 1.5, true), Error);
}

}  // namespace
}  // namespace graft

// ---- GELU against torch.nn.functional.gelu (tests/fixtures/gen_gelu.py) ----
namespace graft {
namespace {

// max_i |a_i - e_i| / (|e_i| + |s_i|): the error relative to the size of the
// terms the result is made of. GELU's forward x * Phi(x) loses the relative
// accuracy of Phi(x) = (1 + erf) / 2 in the left tail (1 + erf cancels), so
// one ulp of erf there is an error of order ulp * |x|: s = x. The gradient
// g * (Phi(x) + x phi(x)) cancels near its zero (x ~ -0.75) where both terms
// are of order |g|: s = g.
double gelu_error(const Tensor& actual, const Tensor& expected, const Tensor& scale) {
  const auto a = actual.to_vector<double>(), e = expected.to_vector<double>(),
             s = scale.to_vector<double>();
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i)
    worst = std::max(worst, std::fabs(a[i] - e[i]) / (std::fabs(e[i]) + std::fabs(s[i]) + 1e-300));
  return worst;
}

Tensor gelu_fixture(const std::string& name) {
  return io::load_npy(testing::fixture("gelu_" + name + ".npy"));
}

TEST(Gelu, ValuesAndGradientsMatchTorch) {
  GRAFT_REQUIRE_FIXTURE("gelu_complete");
  // float64: both sides evaluate the same formulas (torch's, in
  // aten/src/ATen/native/cpu/Activation.cpp) in double with erf/exp/tanh
  // accurate to about an ulp (glibc here, SLEEF's u10 in torch), so a few ulps
  // (~1e-15) of the term sizes separate them; 1e-12 leaves three orders of
  // margin and still catches any wrong constant or formula (errors >= 1e-7).
  // float32: the same in float (ulp 1.2e-7, SLEEF's erff/tanhf against
  // glibc's): a few ulps; 2e-6 (~16 ulps) bounds it with margin.
  for (const auto& [suffix, tol] : {std::pair{"f64", 1e-12}, std::pair{"f32", 2e-6}}) {
    const Tensor x_ref = gelu_fixture(std::string("x_") + suffix);
    const Tensor gy = gelu_fixture(std::string("gy_") + suffix);
    for (const std::string approximate : {"none", "tanh"}) {
      SCOPED_TRACE(std::string(suffix) + " approximate=" + approximate);
      Tensor x = x_ref.clone();
      x.set_requires_grad(true);
      const Tensor y = nn::functional::gelu(x, approximate);
      EXPECT_EQ(y.dtype(), x.dtype());
      y.backward(gy);
      const Tensor y_ref = gelu_fixture("y_" + approximate + "_" + suffix);
      const Tensor gx_ref = gelu_fixture("gx_" + approximate + "_" + suffix);
      EXPECT_LE(gelu_error(y, y_ref, x_ref), tol);
      EXPECT_LE(gelu_error(x.grad(), gx_ref, gy), tol);
    }
  }
}

TEST(Gelu, GradcheckFloat64) {
  Generator gen(7);
  const Tensor x = mul(randn({40}, opts(DType::Float64), &gen), 3.0);
  for (const std::string approximate : {"none", "tanh"}) {
    SCOPED_TRACE("approximate=" + approximate);
    gradcheck([&](const std::vector<Tensor>& v) { return nn::functional::gelu(v[0], approximate); },
              {x});
  }
}

TEST(Gelu, ModuleIntegerInputsAndBadApproximate) {
  nn::GELU exact, tanh_form("tanh");
  EXPECT_EQ(exact.repr(), "GELU(approximate='none')");
  EXPECT_EQ(tanh_form.repr(), "GELU(approximate='tanh')");
  const Tensor x = tensor<double>({-2, -0.5, 0, 0.5, 2});
  EXPECT_TRUE(allclose(exact.forward(x), gelu(x), 0, 0));
  EXPECT_TRUE(allclose(tanh_form.forward(x), gelu_tanh(x), 0, 0));
  // gelu(1) = Phi(1) = 0.8413447460685429 (exact); integer inputs compute in
  // float32, as torch does, and the two forms differ there by ~1.6e-4.
  const Tensor yi = gelu(tensor<int64_t>({1}));
  EXPECT_EQ(yi.dtype(), DType::Float32);
  EXPECT_NEAR(yi.to_vector<double>()[0], 0.8413447460685429, 1e-7);
  EXPECT_GT(std::fabs(gelu_tanh(tensor<double>({1})).to_vector<double>()[0] - 0.8413447460685429),
            1e-4);
  EXPECT_THROW(nn::GELU("exact"), Error);
  EXPECT_THROW(nn::functional::gelu(x, "Tanh"), Error);
}

}  // namespace
}  // namespace graft
