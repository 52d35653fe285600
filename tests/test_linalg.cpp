// matmul/mm/bmm, joining and indexing ops: values against naive loops,
// gradients by finite differences, and error cases.
#include <gtest/gtest.h>

#include <cmath>
#include <iostream>
#include <limits>
#include <vector>

#include "core/autograd.h"
#include "core/gradcheck.h"
#include "core/ops.h"
#include "core/ops_nn.h"
#include "core/parallel.h"
#include "tests/test_util.h"

namespace graft {
namespace {

// Reference matrix product of the last two dims of 2-D tensors, in double.
Tensor naive_mm(const Tensor& a, const Tensor& b) {
  const int64_t m = a.size(0), k = a.size(1), n = b.size(1);
  const auto va = a.to_vector<double>(), vb = b.to_vector<double>();
  std::vector<double> out(static_cast<size_t>(m * n), 0.0);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j)
      for (int64_t p = 0; p < k; ++p) out[i * n + j] += va[i * k + p] * vb[p * n + j];
  return tensor(out, {m, n});
}

TEST(Matmul, MatchesNaiveForAllLayouts) {
  Generator gen(1);
  for (int64_t m : {1, 7, 33}) {
    for (int64_t k : {1, 5, 64}) {
      for (int64_t n : {1, 9, 40}) {
        Tensor a = randn({m, k}, opts(DType::Float64), &gen);
        Tensor b = randn({k, n}, opts(DType::Float64), &gen);
        Tensor ref = naive_mm(a, b);
        // Transposed operands are multiplied through strides, without a copy.
        Tensor at = a.t().contiguous().t();
        Tensor bt = b.t().contiguous().t();
        // float64, K <= 64 N(0,1) products: the worst-case summation error
        // K * 2^-53 * sum|a||b| / max|ref| is below 1e-13 in any order.
        EXPECT_TRUE(testing::close_to(mm(a, b), ref, 1e-12));
        EXPECT_TRUE(testing::close_to(mm(at, b), ref, 1e-12));
        EXPECT_TRUE(testing::close_to(mm(a, bt), ref, 1e-12));
        EXPECT_TRUE(testing::close_to(mm(at, bt), ref, 1e-12));
        // A step slice is neither row nor column major: copied first.
        Tensor wide = randn({m, 2 * k}, opts(DType::Float64), &gen);
        Tensor sliced = wide.slice(1, 0, 2 * k, 2);
        EXPECT_TRUE(testing::close_to(mm(sliced, b), naive_mm(sliced.contiguous(), b), 1e-12));
      }
    }
  }
}

TEST(Matmul, Float32AndIntegers) {
  Generator gen(2);
  Tensor a = randn({20, 30}, {}, &gen), b = randn({30, 10}, {}, &gen);
  // float32, K = 30: worst case 30 * 2^-24 * sum|a||b| / max|ref| ~ 2e-6 in
  // any summation order (Eigen's blocking, SIMD width).
  EXPECT_TRUE(testing::close_to(mm(a, b), naive_mm(a, b), 1e-5));
  Tensor ai = randint(-5, 5, {4, 6}, {DType::Int64}, &gen);
  Tensor bi = randint(-5, 5, {6, 3}, {DType::Int64}, &gen);
  Tensor r = mm(ai, bi);
  EXPECT_EQ(r.dtype(), DType::Int64);
  EXPECT_TRUE(testing::close_to(r, naive_mm(ai, bi), 0));
  Tensor ah = a.to(DType::BFloat16), bh = b.to(DType::BFloat16);
  Tensor rh = mm(ah, bh);
  EXPECT_EQ(rh.dtype(), DType::BFloat16);
  // bfloat16 output: rounding to 8 significant bits (2^-8 = 4e-3 relative).
  EXPECT_TRUE(testing::close_to(rh, naive_mm(ah, bh), 2e-2));
}

// Every compiled copy of the CPU GEMM (the build's -march, and the AVX-512
// copy chosen at run time where the CPU has it; core/parallel.h) against the
// bound on a dot product's rounding error that holds for any summation order,
// blocking and vector width, FMA included (Higham, Accuracy and Stability of
// Numerical Algorithms, eq. 3.5): |c - c_exact| <= gamma_K sum_p |a_ip b_pj|,
// gamma_K = K u / (1 - K u), u = 2^-24 (float32) or 2^-53 (float64). The exact
// product is taken in long double (u = 2^-64 on x86-64: its own error is
// ~2^-40 of float64's bound and is covered by the 1% margin). K = 600 spans
// more than one of Eigen's K blocks, m and n are not multiples of any register
// tile, so packing, edges and every layout (transposed operands are read
// through strides) are exercised.
template <typename T>
void expect_gemm_within_bound(CpuIsa isa) {
  set_cpu_gemm_isa(isa);
  const int64_t m = 67, k = 600, n = 129;
  const DType dt = DType::Float64 == dtype_of<T> ? DType::Float64 : DType::Float32;
  Generator gen(7);
  Tensor a = randn({m, k}, opts(dt), &gen), b = randn({k, n}, opts(dt), &gen);
  Tensor bias = randn({n}, opts(dt), &gen);
  const auto va = a.to_vector<T>(), vb = b.to_vector<T>(), vbias = bias.to_vector<T>();
  std::vector<long double> exact(m * n), absdot(m * n);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      long double s = 0, sa = 0;
      for (int64_t p = 0; p < k; ++p) {
        const long double t = static_cast<long double>(va[i * k + p]) * vb[p * n + j];
        s += t;
        sa += std::fabs(t);
      }
      exact[i * n + j] = s;
      absdot[i * n + j] = sa;
    }
  const long double u = std::numeric_limits<T>::epsilon() / 2;
  // Worst element's error over its bound; <= 1 when the bound holds.
  auto worst = [&](const Tensor& c, bool with_bias) {
    const int64_t terms = k + (with_bias ? 1 : 0);
    const long double gamma = terms * u / (1 - terms * u) * 1.01L;
    const auto vc = c.to_vector<T>();
    long double w = 0;
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        const long double bj = with_bias ? vbias[j] : 0;
        const long double err = std::fabs(vc[i * n + j] - (exact[i * n + j] + bj));
        w = std::max(w, err / (gamma * (absdot[i * n + j] + std::fabs(bj))));
      }
    return static_cast<double>(w);
  };
  const Tensor at = a.t().contiguous().t(), bt = b.t().contiguous().t();
  const char* isa_name = cpu_isa_name(isa);
  EXPECT_LE(worst(mm(a, b), false), 1.0) << isa_name;
  EXPECT_LE(worst(mm(at, b), false), 1.0) << isa_name;
  EXPECT_LE(worst(mm(a, bt), false), 1.0) << isa_name;
  EXPECT_LE(worst(mm(at, bt), false), 1.0) << isa_name;
  // linear: x @ w^T + bias, the GEMM accumulating onto the broadcast bias.
  EXPECT_LE(worst(F::linear(a, b.t().contiguous(), bias), true), 1.0) << isa_name;
}

TEST(CpuGemm, EveryCompiledCopyMeetsTheSummationBound) {
  const CpuIsa before = cpu_gemm_isa();
  std::vector<CpuIsa> isas = {CpuIsa::Baseline};
  if (cpu_gemm_isa_available(CpuIsa::Avx512)) {
    isas.push_back(CpuIsa::Avx512);
  } else {
    // A copy this CPU cannot run is refused, never silently replaced.
    EXPECT_THROW(set_cpu_gemm_isa(CpuIsa::Avx512), Error);
    std::cout << "[ note ] no AVX-512 here: only the baseline GEMM is checked\n";
  }
  for (CpuIsa isa : isas) {
    expect_gemm_within_bound<float>(isa);
    expect_gemm_within_bound<double>(isa);
    EXPECT_EQ(cpu_gemm_isa(), isa);
  }
  set_cpu_gemm_isa(before);
}

TEST(Matmul, NumpySemantics) {
  Generator gen(3);
  Tensor v = randn({4}, opts(DType::Float64), &gen);
  Tensor w = randn({4}, opts(DType::Float64), &gen);
  Tensor m = randn({3, 4}, opts(DType::Float64), &gen);
  Tensor m2 = randn({4, 5}, opts(DType::Float64), &gen);
  Tensor dot = matmul(v, w);
  EXPECT_EQ(dot.dim(), 0);
  EXPECT_NEAR(dot.item(), sum(mul(v, w)).item(), 1e-12);
  EXPECT_EQ(matmul(m, v).sizes(), (Shape{3}));
  EXPECT_TRUE(testing::close_to(matmul(m, v), naive_mm(m, v.unsqueeze(1)).squeeze(1), 1e-12));
  EXPECT_EQ(matmul(v, m2).sizes(), (Shape{5}));
  // Batched with broadcasting batch dims: [2,1,3,4] @ [5,4,6] -> [2,5,3,6]
  Tensor a = randn({2, 1, 3, 4}, opts(DType::Float64), &gen);
  Tensor b = randn({5, 4, 6}, opts(DType::Float64), &gen);
  Tensor r = matmul(a, b);
  ASSERT_EQ(r.sizes(), (Shape{2, 5, 3, 6}));
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t j = 0; j < 5; ++j)
      EXPECT_TRUE(testing::close_to(r.select(0, i).select(0, j),
                                    naive_mm(a.select(0, i).select(0, 0), b.select(0, j)), 1e-12));
  // N-D @ 1-D and N-D @ 2-D (batch folded into rows)
  EXPECT_EQ(matmul(a, v).sizes(), (Shape{2, 1, 3}));
  EXPECT_EQ(matmul(b, randn({6, 2}, opts(DType::Float64), &gen)).sizes(), (Shape{5, 4, 2}));
  EXPECT_EQ(matmul(v, b.transpose(1, 2).contiguous().transpose(1, 2)).sizes(), (Shape{5, 6}));
}

TEST(Matmul, Errors) {
  Tensor a = zeros({2, 3}), b = zeros({4, 5});
  EXPECT_THROW(mm(a, b), Error);
  EXPECT_THROW(matmul(a, b), Error);
  EXPECT_THROW(mm(a, zeros({3, 2}, opts(DType::Float64))), Error);  // dtype mismatch
  EXPECT_THROW(bmm(zeros({2, 2, 3}), zeros({3, 3, 2})), Error);     // batch mismatch
  EXPECT_THROW(matmul(zeros({}), a), Error);
  try {
    mm(a, b);
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("[2, 3]"), std::string::npos) << e.what();
  }
}

TEST(Matmul, BatchedMatchesPerMatrix) {
  Generator gen(4);
  Tensor a = randn({16, 8, 12}, {}, &gen), b = randn({16, 12, 4}, {}, &gen);
  Tensor r = bmm(a, b.transpose(1, 2).contiguous().transpose(1, 2));
  for (int64_t i = 0; i < 16; ++i)
    // float32, K = 12: worst case below 1e-6 in any order.
    EXPECT_TRUE(testing::close_to(r.select(0, i), naive_mm(a.select(0, i), b.select(0, i)), 1e-5));
}

TEST(Matmul, Gradcheck) {
  Generator gen(5);
  auto check = [](const GradcheckFn& fn, const std::vector<Tensor>& in) {
    GradcheckResult res = gradcheck(fn, in);
    EXPECT_TRUE(res.ok) << res.message;
  };
  check([](const std::vector<Tensor>& x) { return mm(x[0], x[1]); },
        {randn({3, 4}, {}, &gen), randn({4, 2}, {}, &gen)});
  check([](const std::vector<Tensor>& x) { return matmul(x[0], x[1]); },
        {randn({2, 1, 3, 4}, {}, &gen), randn({2, 4, 2}, {}, &gen)});
  check([](const std::vector<Tensor>& x) { return matmul(x[0], x[1]); },
        {randn({4}, {}, &gen), randn({4}, {}, &gen)});
  check([](const std::vector<Tensor>& x) { return matmul(x[0], x[1]); },
        {randn({2, 3, 4}, {}, &gen), randn({4}, {}, &gen)});
  check([](const std::vector<Tensor>& x) { return bmm(x[0].transpose(1, 2), x[1]); },
        {randn({2, 4, 3}, {}, &gen), randn({2, 4, 5}, {}, &gen)});
}

TEST(Joining, CatAndStack) {
  Tensor a = arange(6, opts(DType::Float64)).view({2, 3});
  Tensor b = arange(6, 10, 1, opts(DType::Float64)).view({2, 2});
  Tensor c = cat({a, b}, 1);
  EXPECT_EQ(c.sizes(), (Shape{2, 5}));
  EXPECT_EQ(c.to_vector<double>(), (std::vector<double>{0, 1, 2, 6, 7, 3, 4, 5, 8, 9}));
  EXPECT_EQ(cat({a, a.to(DType::Int64)}, 0).dtype(), DType::Float64);
  Tensor s = stack({a, a}, 1);
  EXPECT_EQ(s.sizes(), (Shape{2, 2, 3}));
  EXPECT_TRUE(testing::close_to(s.select(1, 1), a, 0));
  EXPECT_THROW(cat({a, b}, 0), Error);
  EXPECT_THROW(cat({a, b}, 2), Error);
  EXPECT_THROW(stack({a, b}), Error);
  EXPECT_THROW(cat({}), Error);
  GradcheckResult r = gradcheck(
      [](const std::vector<Tensor>& x) {
        return cat({x[0], mul(x[1], 2.0), x[0]}, -1);
      },
      {randn({2, 3}), randn({2, 4})});
  EXPECT_TRUE(r.ok) << r.message;
  r = gradcheck(
      [](const std::vector<Tensor>& x) {
        return stack({x[0], x[1]}, 0);
      },
      {randn({2, 3}), randn({2, 3})});
  EXPECT_TRUE(r.ok) << r.message;
}

TEST(Indexing, IndexSelectGatherScatterAdd) {
  Tensor a = arange(12, opts(DType::Float64)).view({3, 4});
  Tensor idx = tensor<int64_t>({2, 0, 2});
  Tensor r = index_select(a, 0, idx);
  EXPECT_EQ(r.to_vector<double>(), (std::vector<double>{8, 9, 10, 11, 0, 1, 2, 3, 8, 9, 10, 11}));
  EXPECT_EQ(index_select(a, 1, tensor<int64_t>({3, 1})).to_vector<double>(),
            (std::vector<double>{3, 1, 7, 5, 11, 9}));
  EXPECT_THROW(index_select(a, 0, tensor<int64_t>({3})), Error);
  EXPECT_THROW(index_select(a, 0, tensor<double>({1.0})), Error);
  // A 0-d input holds one element: one index selects it into a 0-d output, and
  // more than one is an error (it used to write past the 1-element output).
  const Tensor zero_d = scalar_tensor(5.0, opts(DType::Float64));
  const Tensor picked = index_select(zero_d, 0, tensor<int64_t>({0}));
  EXPECT_EQ(picked.dim(), 0);
  EXPECT_EQ(picked.item(), 5.0);
  EXPECT_EQ(index_select(zero_d, -1, tensor<int64_t>({-1})).item(), 5.0);
  EXPECT_THROW(index_select(zero_d, 0, tensor<int64_t>({0, 0, 0})), Error);
  EXPECT_THROW(index_select(zero_d, 0, tensor<int64_t>({1})), Error);

  Tensor gi = tensor<int64_t>({1, 0, 3, 3}, {2, 2});
  Tensor g = gather(a, 1, gi);
  EXPECT_EQ(g.to_vector<double>(), (std::vector<double>{1, 0, 7, 7}));
  EXPECT_THROW(gather(a, 1, tensor<int64_t>({4}, {1, 1})), Error);

  Tensor s =
      scatter_add(zeros({2, 4}, opts(DType::Float64)), 1, gi, tensor<double>({1, 2, 3, 4}, {2, 2}));
  EXPECT_EQ(s.to_vector<double>(), (std::vector<double>{2, 1, 0, 0, 0, 0, 0, 7}));

  Tensor oh = one_hot(tensor<int64_t>({0, 2, 1}));
  EXPECT_EQ(oh.sizes(), (Shape{3, 3}));
  EXPECT_EQ(oh.to_vector<int64_t>(), (std::vector<int64_t>{1, 0, 0, 0, 0, 1, 0, 1, 0}));
  EXPECT_EQ(one_hot(tensor<int64_t>({1}), 4).sizes(), (Shape{1, 4}));
  EXPECT_THROW(one_hot(tensor<int64_t>({4}), 4), Error);
  EXPECT_THROW(one_hot(tensor<int64_t>({-1})), Error);

  auto ok = [](const GradcheckResult& res) { EXPECT_TRUE(res.ok) << res.message; };
  ok(gradcheck([&](const std::vector<Tensor>& x) { return index_select(x[0], 0, idx); },
               {randn({3, 4})}));
  ok(gradcheck([&](const std::vector<Tensor>& x) { return gather(x[0], 1, gi); }, {randn({3, 4})}));
  ok(gradcheck([&](const std::vector<Tensor>& x) { return scatter_add(x[0], 1, gi, x[1]); },
               {randn({2, 4}), randn({2, 3})}));
}

TEST(Reductions, VarStdMaxMinArg) {
  Tensor a = tensor<double>({1, 5, 2, 8, 3, 3}, {2, 3});
  // sum of squared deviations from the mean 22/6 is 94/3
  // Small integers: exact up to the final division (~1e-15).
  EXPECT_NEAR(var(a).item(), 94.0 / 3 / 5, 1e-12);
  EXPECT_NEAR(var(a, {}, 0).item(), 94.0 / 3 / 6, 1e-12);
  EXPECT_TRUE(testing::close_to(var(a, {1}), tensor<double>({13.0 / 3, 25.0 / 3}), 1e-14));
  EXPECT_NEAR(graft::std(a, {1}, 1, true).to_vector<double>()[1], std::sqrt(25.0 / 3), 1e-12);
  ValuesIndices mx = max(a, 1);
  EXPECT_EQ(mx.values.to_vector<double>(), (std::vector<double>{5, 8}));
  EXPECT_EQ(mx.indices.to_vector<int64_t>(), (std::vector<int64_t>{1, 0}));
  ValuesIndices mn = min(a, 0, true);
  EXPECT_EQ(mn.values.sizes(), (Shape{1, 3}));
  EXPECT_EQ(mn.indices.to_vector<int64_t>(), (std::vector<int64_t>{0, 1, 0}));
  EXPECT_EQ(argmax(a).item(), 3);
  EXPECT_EQ(argmin(a, 1).to_vector<int64_t>(), (std::vector<int64_t>{0, 1}));  // first of ties
  EXPECT_THROW(max(a, 2), Error);
  EXPECT_THROW(argmax(zeros({0})), Error);
  auto ok = [](const GradcheckResult& res) { EXPECT_TRUE(res.ok) << res.message; };
  ok(gradcheck([](const std::vector<Tensor>& x) { return var(x[0], {1}); }, {randn({3, 4})}));
  ok(gradcheck([](const std::vector<Tensor>& x) { return graft::std(x[0], {0}, 0, true); },
               {randn({3, 4})}));
  ok(gradcheck([](const std::vector<Tensor>& x) { return max(x[0], 1).values; }, {randn({3, 4})}));
  ok(gradcheck([](const std::vector<Tensor>& x) { return min(x[0], 0, true).values; },
               {randn({3, 4})}));
}

}  // namespace
}  // namespace graft
