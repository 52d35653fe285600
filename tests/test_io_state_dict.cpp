// safetensors I/O (io/safetensors.h), load_state_dict and load_weights_file (io/state_dict.h).
#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "core/ops.h"
#include "io/npy.h"
#include "io/safetensors.h"
#include "io/state_dict.h"
#include "test_util.h"

using namespace graft;
using graft::testing::fixture;

namespace {

::testing::AssertionResult bit_equal(const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype() || a.sizes() != b.sizes())
    return ::testing::AssertionFailure() << a.meta_str() << " vs " << b.meta_str();
  Tensor ca = a.contiguous(), cb = b.contiguous();
  if (std::memcmp(ca.raw_data(), cb.raw_data(), ca.nbytes()) != 0)
    return ::testing::AssertionFailure() << "bytes differ for " << a.meta_str();
  return ::testing::AssertionSuccess();
}

std::string temp_path(const std::string& stem) {
  return ::testing::TempDir() + stem + "_" + std::to_string(::getpid());
}

// A destination like a model's parameters: fresh zero tensors with the given shapes.
io::NamedTensors zeros_like_sd(const io::NamedTensors& sd) {
  io::NamedTensors out;
  for (const auto& [k, t] : sd) out.emplace_back(k, zeros_like(t));
  return out;
}

}  // namespace

TEST(IoSafetensors, ReadsTorchValuesZeroCopy) {
  GRAFT_REQUIRE_FIXTURE("io_mixed.safetensors");
  io::SafetensorsFile f = io::load_safetensors(fixture("io_mixed.safetensors"));
  ASSERT_EQ(f.tensors.size(), 14u);
  EXPECT_EQ(f.tensors.front().first, "f32");  // header order kept
  ASSERT_EQ(f.metadata.size(), 2u);
  EXPECT_EQ(f.metadata[1], (std::pair<std::string, std::string>{"epoch", "3"}));
  io::NamedTensors pth = io::extract_state_dict(io::load_pth(fixture("io_mixed.pth")).root);
  for (const auto& [name, t] : f.tensors) {
    EXPECT_TRUE(bit_equal(t, *io::find_tensor(pth, name))) << name;
    // f32 and f64 start at aligned offsets (0 and 48), so they view the mapping;
    // misaligned records (odd-sized ones before them) are copied.
    if (name == "f32" || name == "f64") {
      auto* p = static_cast<const uint8_t*>(t.raw_data());
      EXPECT_TRUE(p >= f.file->data() && p < f.file->data() + f.file->size()) << name;
    }
  }
}

TEST(IoSafetensors, RoundTripAndBadHeaders) {
  GRAFT_REQUIRE_FIXTURE("io_bad_offsets.safetensors");
  io::NamedTensors sd = {{"a", randn({3, 4}).t()},
                         {"b", randn({5}).to(DType::BFloat16)},
                         {"c", scalar_tensor(9, opts(DType::Int64))}};
  std::string p = temp_path("rt.safetensors");
  io::save_safetensors(sd, p, {{"format", "pt"}});
  io::SafetensorsFile back = io::load_safetensors(p);
  ASSERT_EQ(back.tensors.size(), 3u);
  for (size_t i = 0; i < 3; ++i) EXPECT_TRUE(bit_equal(back.tensors[i].second, sd[i].second));
  EXPECT_EQ(back.metadata.at(0).second, "pt");
  std::remove(p.c_str());
  for (const char* bad :
       {"io_bad_offsets.safetensors", "io_bad_size.safetensors", "io_bad_dtype.safetensors",
        "io_bad_nesting.safetensors", "io_bad_json.safetensors"})
    EXPECT_THROW(io::load_safetensors(fixture(bad)), Error) << bad;
}

TEST(IoStateDict, GlobMatching) {
  EXPECT_TRUE(io::glob_match("fc.*", "fc.weight"));
  EXPECT_TRUE(io::glob_match("*", "layer1.0.conv1.weight"));
  EXPECT_TRUE(io::glob_match("layer*.bn?.weight", "layer1.0.bn1.weight"));
  EXPECT_FALSE(io::glob_match("fc.*", "fc"));
  EXPECT_FALSE(io::glob_match("fc.*", "afc.weight"));
  EXPECT_TRUE(io::glob_match("*num_batches_tracked", "bn1.num_batches_tracked"));
  EXPECT_FALSE(io::glob_match(std::string(50, '*') + "b", std::string(10000, 'a')));
}

TEST(IoStateDict, StrictLoadCopiesEverythingInPlace) {
  GRAFT_REQUIRE_FIXTURE("io_resnet18.pth");
  io::NamedTensors src = io::load_weights_file(fixture("io_resnet18.pth"));
  io::NamedTensors dst = zeros_like_sd(src);
  io::LoadReport r = io::load_state_dict(dst, src);
  EXPECT_TRUE(r.ok()) << r.str();
  EXPECT_EQ(r.loaded.size(), src.size());
  for (size_t i = 0; i < src.size(); ++i)
    EXPECT_TRUE(bit_equal(dst[i].second, src[i].second)) << src[i].first;
  // The same tensors through safetensors, dispatched on content.
  io::NamedTensors st = io::load_weights_file(fixture("io_resnet18.safetensors"));
  ASSERT_EQ(st.size(), src.size());
  for (size_t i = 0; i < src.size(); ++i) EXPECT_TRUE(bit_equal(st[i].second, src[i].second));
}

TEST(IoStateDict, PrefixRemapSkipAndFineTuneHead) {
  GRAFT_REQUIRE_FIXTURE("io_nested.pth");
  io::NamedTensors src = io::load_weights_file(fixture("io_nested.pth"));  // 'module.' names
  io::NamedTensors dst;
  for (const auto& [k, t] : src) dst.emplace_back(k.substr(7), zeros_like(t));
  // A new head with a different shape, as when fine-tuning on fewer classes.
  for (auto& [k, t] : dst)
    if (k == "2.weight") t = zeros({5, 4});
  try {
    io::load_state_dict(dst, src);
    ADD_FAILURE() << "strict load without remapping succeeded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unexpected"), std::string::npos);
  }
  EXPECT_EQ(sum(abs(dst[0].second)).item(), 0) << "strict failure must not modify the target";

  io::LoadOptions o;
  o.strip_prefix("module.").strict = false;
  io::LoadReport r = io::load_state_dict(dst, src, o);
  ASSERT_EQ(r.shape_mismatch.size(), 1u) << r.str();
  EXPECT_EQ(r.shape_mismatch[0].expected, (Shape{5, 4}));
  EXPECT_EQ(r.shape_mismatch[0].got, (Shape{2, 4}));
  EXPECT_NE(r.str().find("2.weight: checkpoint [2, 4], model [5, 4]"), std::string::npos)
      << r.str();
  EXPECT_EQ(r.loaded.size(), src.size() - 1);
  EXPECT_TRUE(bit_equal(dst[0].second, src[0].second));

  io::LoadOptions o2;
  o2.strip_prefix("module.").skip("2.*");
  io::LoadReport r2 = io::load_state_dict(dst, src, o2);  // strict passes: head skipped
  EXPECT_TRUE(r2.ok()) << r2.str();
  EXPECT_EQ(r2.skipped, (std::vector<std::string>{"2.weight", "2.bias"}));
  EXPECT_EQ(r2.loaded.size(), src.size() - 2);

  io::LoadOptions o3;
  o3.rename("^module\\.(\\d+)\\.", "$1.").skip("2.*").dry_run = true;
  io::NamedTensors fresh;
  for (const auto& [k, t] : dst) fresh.emplace_back(k, zeros_like(t));
  io::LoadReport r3 = io::load_state_dict(fresh, src, o3);
  EXPECT_TRUE(r3.ok()) << r3.str();
  EXPECT_EQ(sum(abs(fresh[0].second)).item(), 0) << "dry run must not copy";
}

TEST(IoStateDict, WeightsFileDispatchNpyAndErrors) {
  GRAFT_REQUIRE_FIXTURE("io_f32.npy");
  io::NamedTensors one = io::load_weights_file(fixture("io_f32.npy"));
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].first, "io_f32");
  std::string dir = temp_path("npydir");
  std::filesystem::create_directories(dir);
  io::save_npy(dir + "/b.npy", ones({2}));
  io::save_npy(dir + "/a.npy", zeros({3}));
  io::NamedTensors d = io::load_weights_file(dir);
  ASSERT_EQ(d.size(), 2u);
  EXPECT_EQ(d[0].first, "a");
  std::filesystem::remove_all(dir);
  EXPECT_THROW(io::load_weights_file(fixture("io_badmagic.npy")), Error);
  EXPECT_THROW(io::load_weights_file(fixture("io_malicious.pth")), Error);
}
