// Tensor metadata, views and strides, dtype conversion and promotion,
// factories, generators and printing.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "core/autograd.h"
#include "core/env.h"
#include "core/ops.h"
#include "tests/test_util.h"

namespace graft {
namespace {

TEST(Views, StridesAndSharing) {
  Tensor a = arange(24, opts(DType::Float64)).view({2, 3, 4});
  EXPECT_EQ(a.strides(), (Shape{12, 4, 1}));
  EXPECT_TRUE(a.is_contiguous());
  Tensor t = a.transpose(0, 2);
  EXPECT_EQ(t.sizes(), (Shape{4, 3, 2}));
  EXPECT_EQ(t.strides(), (Shape{1, 4, 12}));
  EXPECT_FALSE(t.is_contiguous());
  EXPECT_EQ(t.storage().get(), a.storage().get());
  Tensor s = a.slice(2, 1, 4, 2);  // columns 1 and 3
  EXPECT_EQ(s.sizes(), (Shape{2, 3, 2}));
  EXPECT_EQ(s.strides(), (Shape{12, 4, 2}));
  EXPECT_EQ(s.storage_offset(), 1);
  EXPECT_EQ(s.to_vector<double>()[3], 7);
  Tensor sel = a.select(1, -1);
  EXPECT_EQ(sel.sizes(), (Shape{2, 4}));
  EXPECT_EQ(sel.storage_offset(), 8);
  // writes through a view are visible in the base
  fill_(sel, -1.0);
  EXPECT_EQ(a.to_vector<double>()[8], -1);
  EXPECT_EQ(a.to_vector<double>()[23], -1);
  Tensor c = t.contiguous();
  EXPECT_TRUE(c.is_contiguous());
  EXPECT_NE(c.storage().get(), a.storage().get());
  EXPECT_EQ(c.to_vector<double>(), t.to_vector<double>());
  EXPECT_TRUE(a.contiguous().is_same(a));
  Tensor e = tensor<double>({1, 2, 3}).unsqueeze(0).expand({4, 3});
  EXPECT_EQ(e.strides(), (Shape{0, 1}));
  EXPECT_EQ(sum(e).item(), 24);
  EXPECT_EQ(a.flatten(1).sizes(), (Shape{2, 12}));
  EXPECT_EQ(a.unsqueeze(-1).squeeze(-1).sizes(), a.sizes());
  EXPECT_EQ(a.view({-1, 4}).sizes(), (Shape{6, 4}));
  EXPECT_TRUE(zeros({0, 3}).slice(1, 0, 3, 2).is_contiguous());  // empty: trivially contiguous
}

TEST(Views, ViewOfNonContiguousMemory) {
  Tensor a = arange(12).view({3, 4});
  Tensor t = a.t();  // [4, 3], strides [1, 4]
  EXPECT_THROW(t.view({12}), Error);
  try {
    t.view({12});
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("reshape"), std::string::npos) << e.what();
  }
  // reshape copies instead; splitting a dim is a valid view even here
  Tensor r = t.reshape({12});
  EXPECT_EQ(r.to_vector<double>()[1], 4);
  EXPECT_EQ(t.view({2, 2, 3}).strides(), (Shape{2, 1, 4}));
  // columns 0 and 2 of every row form one stride-2 run: a valid view
  EXPECT_EQ(a.slice(1, 0, 4, 2).view({6}).strides(), (Shape{2}));
  // rows 0 and 2 leave a gap between them: no single stride covers them
  EXPECT_THROW(a.slice(0, 0, 3, 2).view({8}), Error);
}

TEST(Views, ErrorsNameShapes) {
  Tensor a = zeros({2, 3});
  EXPECT_THROW(a.view({4}), Error);
  EXPECT_THROW(a.view({-1, -1}), Error);
  EXPECT_THROW(a.permute({0, 0}), Error);
  EXPECT_THROW(a.select(2, 0), Error);
  EXPECT_THROW(a.select(0, 2), Error);
  EXPECT_THROW(a.narrow(1, 2, 2), Error);
  EXPECT_THROW(a.expand({3, 3}), Error);
  EXPECT_THROW(a.size(-3), Error);
  EXPECT_THROW(sum(a, {2}), Error);
  try {
    a.transpose(0, 5);
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("out of range"), std::string::npos) << e.what();
  }
}

TEST(DType, PromotionAndConversion) {
  Tensor i = tensor<int64_t>({1, 2, 3});
  Tensor f = tensor<float>({0.5f, 0.5f, 0.5f});
  EXPECT_EQ(add(i, f).dtype(), DType::Float32);
  EXPECT_EQ(add(f, f.to(DType::Float64)).dtype(), DType::Float64);
  EXPECT_EQ(div(i, i).dtype(), DType::Float32);  // true division
  EXPECT_EQ(add(i, 2.0).dtype(), DType::Int64);
  EXPECT_EQ(add(i, 2.5).dtype(), DType::Float32);
  EXPECT_EQ(gt(i, 1.0).dtype(), DType::Bool);
  EXPECT_EQ(add(i, tensor<int32_t>({1, 1, 1})).dtype(), DType::Int64);
  EXPECT_EQ(sum(i).dtype(), DType::Int64);
  EXPECT_EQ(tensor<double>({2.7, -2.7}).to(DType::Int64).to_vector<int64_t>(),
            (std::vector<int64_t>{2, -2}));  // truncation, as in C and torch
}

TEST(DType, HalfAndBFloat16RoundTrip) {
  // Values exactly representable in both formats survive the round trip.
  std::vector<float> exact = {0.f, -0.f, 1.f, -2.5f, 0.125f, 1024.f, 3.f / 65536.f};
  for (DType t : {DType::Float16, DType::BFloat16}) {
    Tensor r = tensor<float>(exact).to(t).to(DType::Float32);
    EXPECT_EQ(r.to_vector<float>(), exact) << dtype_name(t);
  }
  // Rounding: to nearest, ties to even
  EXPECT_EQ(tensor<float>({1.0f + 1.0f / 2048}).to(DType::Float16).to_vector<float>()[0], 1.0f);
  EXPECT_EQ(tensor<float>({1.0f + 3.0f / 2048}).to(DType::Float16).to_vector<float>()[0],
            1.0f + 2.0f / 1024);
  EXPECT_EQ(tensor<float>({70000.f}).to(DType::Float16).to_vector<float>()[0],
            std::numeric_limits<float>::infinity());
  EXPECT_EQ(tensor<float>({6e-8f}).to(DType::Float16).to_vector<float>()[0], 5.9604645e-8f);
  EXPECT_TRUE(std::isnan(tensor<float>({NAN}).to(DType::BFloat16).to_vector<float>()[0]));
  EXPECT_EQ(tensor<float>({1.00390625f}).to(DType::BFloat16).to_vector<float>()[0], 1.0f);
  // Relative error bound of each format on random values
  Generator gen(7);
  Tensor x = randn({1000}, {}, &gen);
  EXPECT_TRUE(testing::close_to(x.to(DType::Float16).to(DType::Float32), x, 1.0 / 1024));
  EXPECT_TRUE(testing::close_to(x.to(DType::BFloat16).to(DType::Float32), x, 1.0 / 128));
  // Ops on half compute in float32 and store half
  Tensor h = x.to(DType::Float16);
  EXPECT_EQ(add(h, h).dtype(), DType::Float16);
  EXPECT_EQ(sum(h).dtype(), DType::Float32);
}

TEST(Factories, ShapesValuesAndGenerators) {
  EXPECT_EQ(zeros({2, 3}).to_vector<float>(), std::vector<float>(6, 0.f));
  EXPECT_EQ(full({2}, 3.5, opts(DType::Float64)).to_vector<double>(),
            (std::vector<double>{3.5, 3.5}));
  EXPECT_EQ(arange(1, 2, 0.25, opts(DType::Float64)).to_vector<double>(),
            (std::vector<double>{1, 1.25, 1.5, 1.75}));
  EXPECT_EQ(arange(5, opts(DType::Int64)).dtype(), DType::Int64);
  EXPECT_THROW(arange(0, 1, 0), Error);
  EXPECT_THROW(zeros({-1}), Error);
  // 2^41 float64 elements are 16 TiB, past the 4 TiB that empty() treats as a
  // bug; refused before anything is allocated, naming the factory and shape.
  EXPECT_NE(testing::error_of([] {
              empty({int64_t{1} << 21, int64_t{1} << 20}, opts(DType::Float64));
            }).find("empty: shape [2097152, 1048576] is too large"),
            std::string::npos);
  Generator g1(42), g2(42), g3(43);
  Tensor a = randn({100}, {}, &g1), b = randn({100}, {}, &g2), c = randn({100}, {}, &g3);
  EXPECT_EQ(a.to_vector<float>(), b.to_vector<float>());
  EXPECT_NE(a.to_vector<float>(), c.to_vector<float>());
  manual_seed(5);
  Tensor d = rand({50});
  manual_seed(5);
  EXPECT_EQ(rand({50}).to_vector<float>(), d.to_vector<float>());
  // moments of 10^5 draws
  Generator g(1);
  Tensor n = randn({100000}, opts(DType::Float64), &g);
  EXPECT_NEAR(mean(n).item(), 0.0, 0.02);
  EXPECT_NEAR(var(n).item(), 1.0, 0.02);
  Tensor u = rand({100000}, opts(DType::Float64), &g);
  EXPECT_GE(amin(u).item(), 0.0);
  EXPECT_LT(amax(u).item(), 1.0);
  EXPECT_NEAR(mean(u).item(), 0.5, 0.01);
  Tensor ri = randint(3, 7, {1000}, {DType::Int64}, &g);
  EXPECT_EQ(amin(ri).item(), 3);
  EXPECT_EQ(amax(ri).item(), 6);
  Tensor p = randperm(20, &g);
  std::vector<int64_t> pv = p.to_vector<int64_t>();
  std::sort(pv.begin(), pv.end());
  for (int64_t i = 0; i < 20; ++i) EXPECT_EQ(pv[i], i);
}

// The CPU allocator pools the pages of freed blocks of 1 MiB and more
// (core/cpu_alloc.cpp): a request takes the head of the smallest free range
// that fits, or, when none does, free ranges moved together under one new
// address; a small block never enters the pool, and empty_cpu_cache()
// returns it all. Sizes here are whole pages, so the byte counts are exact.
// Under AddressSanitizer the pool is off (every block is malloc'd so its
// redzones stay), and the test says so.
TEST(Factories, CpuAllocatorReusesFreedPages) {
  constexpr int64_t kMiB = int64_t{1} << 20;
  constexpr int64_t kFloatsPerMiB = kMiB / 4;
  empty_cpu_cache();
  {
    Tensor a = full({4 * kFloatsPerMiB}, 1.0);
    Tensor b = full({4 * kFloatsPerMiB}, 2.0);
  }
  if (cpu_memory_stats().cached == 0)
    GTEST_SKIP() << "CPU page pool off (ASan build, or GRAFT_CPU_CACHE_MB=0)";
  EXPECT_EQ(cpu_memory_stats().cached, size_t{8 * kMiB});
  void* whole = nullptr;
  {
    // No free range holds 8 MiB: both 4 MiB ranges move under one address,
    // and no new memory is needed. The tensor spans both and reads back what
    // was written across the seam.
    Tensor c = empty({8 * kFloatsPerMiB});
    whole = c.data_ptr<float>();
    EXPECT_EQ(cpu_memory_stats().cached, size_t{0});
    float* pc = c.data_ptr<float>();
    for (int64_t i = 0; i < c.numel(); ++i) pc[i] = static_cast<float>(i);
    int64_t wrong = 0;
    for (int64_t i = 0; i < c.numel(); ++i) wrong += pc[i] != static_cast<float>(i);
    EXPECT_EQ(wrong, 0);
  }
  EXPECT_EQ(cpu_memory_stats().cached, size_t{8 * kMiB});
  {
    // A smaller request takes the head of the free range; the tail stays free.
    Tensor d = empty({2 * kFloatsPerMiB});
    EXPECT_EQ(d.data_ptr<float>(), whole);
    EXPECT_EQ(cpu_memory_stats().cached, size_t{6 * kMiB});
    Tensor e = empty({6 * kFloatsPerMiB});
    EXPECT_EQ(cpu_memory_stats().cached, size_t{0});
    // Reused memory is not zeroed by empty(); zeros() still is.
    e.fill_(1.0);
    e = Tensor();
    Tensor z = zeros({6 * kFloatsPerMiB});
    EXPECT_EQ(z.data_ptr<float>(), d.data_ptr<float>() + 2 * kFloatsPerMiB);
    EXPECT_EQ(max(z).item(), 0.0);
  }
  const size_t cached = cpu_memory_stats().cached;
  EXPECT_EQ(cached, size_t{8 * kMiB});
  { Tensor small = empty({1000}); }  // 4 KB: malloc's, not the pool's
  EXPECT_EQ(cpu_memory_stats().cached, cached);
  empty_cpu_cache();
  EXPECT_EQ(cpu_memory_stats().cached, size_t{0});
}

// cpu_memory_stats() counts the bytes tensors asked for, pooled or not (so
// also under ASan): live bytes rise and fall with a tensor, the peak keeps its
// high-water mark until reset_cpu_peak_stats(). This test allocates on one
// thread only, so the counts are exact.
TEST(Factories, CpuMemoryStatsCountLiveAndPeakBytes) {
  const size_t before = cpu_memory_stats().allocated;
  reset_cpu_peak_stats();
  EXPECT_EQ(cpu_memory_stats().peak_allocated, before);
  {
    Tensor big = empty({3 << 18});  // 3 MiB of float32
    Tensor small = empty({1000});   // 4000 bytes, from malloc
    EXPECT_EQ(cpu_memory_stats().allocated, before + (size_t{3} << 20) + 4000);
  }
  EXPECT_EQ(cpu_memory_stats().allocated, before);
  EXPECT_EQ(cpu_memory_stats().peak_allocated, before + (size_t{3} << 20) + 4000);
  reset_cpu_peak_stats();
  EXPECT_EQ(cpu_memory_stats().peak_allocated, before);
}

// Many blocks of mixed sizes allocated and freed in a shuffled order, each
// filled with its own value and checked before it is freed: pages moved
// between blocks must never be shared by two live tensors. The number of the
// process's memory mappings must stay bounded while the pool's ranges are cut
// and joined (the pool keeps no piece under 1 MiB).
TEST(Factories, CpuAllocatorKeepsLiveBlocksApart) {
  auto mappings = [] {
    std::ifstream maps("/proc/self/maps");
    std::string line;
    int64_t n = 0;
    while (std::getline(maps, line)) ++n;
    return n;
  };
  empty_cpu_cache();
  const int64_t before = mappings();
  std::mt19937 rng(7);
  std::uniform_int_distribution<int64_t> floats(1 << 18, 6 << 18);  // 1-6 MiB
  std::vector<std::pair<Tensor, float>> live;
  for (int step = 0; step < 600; ++step) {
    if (live.size() < 12 && (live.empty() || rng() % 3 != 0)) {
      const float value = static_cast<float>(step);
      live.emplace_back(full({floats(rng)}, value), value);
      continue;
    }
    const size_t victim = rng() % live.size();
    const Tensor& t = live[victim].first;
    EXPECT_EQ(min(t).item(), live[victim].second) << "step " << step;
    EXPECT_EQ(max(t).item(), live[victim].second) << "step " << step;
    live.erase(live.begin() + static_cast<std::ptrdiff_t>(victim));
  }
  for (const auto& [t, value] : live) {
    EXPECT_EQ(min(t).item(), value);
    EXPECT_EQ(max(t).item(), value);
  }
  live.clear();
  // Everything is free now, so every piece is in the pool, and none is under
  // 1 MiB: the mappings added are at most the pool's MiB (a few more for
  // glibc's own). Without that bound each split would add one for good.
  const size_t pooled_mib = cpu_memory_stats().cached >> 20;
  if (pooled_mib == 0)  // ASan's allocator keeps freed blocks mapped in its quarantine
    GTEST_SKIP() << "CPU page pool off (ASan build, or GRAFT_CPU_CACHE_MB=0): contents checked, "
                    "the bound on mappings is the pool's";
  EXPECT_LE(mappings() - before, static_cast<int64_t>(pooled_mib) + 8);
  empty_cpu_cache();
}

TEST(Env, ChoiceTakesOneOfItsValuesOrRefuses) {
  // GRAFT_CONV_CPU and GRAFT_CPU_ISA read this: a typo must not quietly
  // select the default.
  const char* name = "GRAFT_TEST_ENV_CHOICE";
  ::unsetenv(name);
  EXPECT_EQ(env_choice(name, {"auto", "gemm", "winograd"}, 0), size_t{0});
  ::setenv(name, "", 1);
  EXPECT_EQ(env_choice(name, {"auto", "gemm", "winograd"}, 1), size_t{1});
  ::setenv(name, "winograd", 1);
  EXPECT_EQ(env_choice(name, {"auto", "gemm", "winograd"}, 0), size_t{2});
  ::setenv(name, "gemm", 1);
  EXPECT_EQ(env_choice(name, {"auto", "gemm", "winograd"}, 0), size_t{1});
  for (const char* bad : {"wino", "Gemm", " gemm", "1"}) {
    ::setenv(name, bad, 1);
    try {
      env_choice(name, {"auto", "gemm", "winograd"}, 0);
      ADD_FAILURE() << bad << " was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("expected auto, gemm or winograd"), std::string::npos)
          << e.what();
    }
  }
  ::unsetenv(name);
}

TEST(Env, FlagTakesOnOffOrRefuses) {
  // The CUDA kernel switches (GRAFT_CONV=native|cudnn, ...) read this: a typo
  // must not quietly select the default.
  const char* name = "GRAFT_TEST_ENV_FLAG";
  ::unsetenv(name);
  EXPECT_FALSE(env_flag(name, "native", "cudnn"));
  ::setenv(name, "", 1);
  EXPECT_FALSE(env_flag(name, "native", "cudnn"));
  ::setenv(name, "cudnn", 1);
  EXPECT_FALSE(env_flag(name, "native", "cudnn"));
  ::setenv(name, "native", 1);
  EXPECT_TRUE(env_flag(name, "native", "cudnn"));
  for (const char* bad : {"nativ", "winograd", "1", "Native"}) {
    ::setenv(name, bad, 1);
    try {
      env_flag(name, "native", "cudnn");
      ADD_FAILURE() << bad << " was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("expected native or cudnn"), std::string::npos)
          << e.what();
    }
  }
  ::unsetenv(name);
}

TEST(Printing, TorchFormat) {
  Tensor a = tensor<double>({1, 2.5, -3, 4}, {2, 2});
  EXPECT_EQ(a.str(), "tensor([[ 1.0000,  2.5000],\n        [-3.0000,  4.0000]], dtype=float64)");
  EXPECT_EQ(tensor<float>({1, 2, 3}).str(), "tensor([1., 2., 3.])");
  EXPECT_EQ(tensor<int64_t>({10, -2}).str(), "tensor([10, -2])");
  EXPECT_EQ(gt(tensor<int64_t>({1, 3}), 2.0).str(), "tensor([False,  True])");
  EXPECT_EQ(scalar_tensor(0.5).str(), "tensor(0.5000)");
  EXPECT_EQ(zeros({0, 3}).str(), "tensor([], size=[0, 3])");
  Tensor x = ones({2});
  x.set_requires_grad(true);
  EXPECT_EQ(x.str(), "tensor([1., 1.], requires_grad=True)");
  EXPECT_NE(mul(x, 2.0).str().find("grad_fn=<mul>"), std::string::npos) << mul(x, 2.0).str();
  EXPECT_EQ(tensor<float>({1e-5f, 1.f}).str(), "tensor([1.0000e-05, 1.0000e+00])");
  EXPECT_EQ(arange(2000, opts(DType::Int64)).str(),
            "tensor([   0,    1,    2,  ..., 1997, 1998, 1999])");
  const std::string big = arange(2000).view({40, 50}).str();
  EXPECT_NE(big.find("...,\n"), std::string::npos) << big;
  std::ostringstream os;
  os << tensor<int64_t>({7});
  EXPECT_EQ(os.str(), "tensor([7])");
}

}  // namespace
}  // namespace graft
