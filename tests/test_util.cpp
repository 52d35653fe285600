#include "tests/test_util.h"

#include <Eigen/Core>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <sstream>
#include <vector>

namespace graft::testing {

std::string fixture(const std::string& name) { return std::string(GRAFT_FIXTURE_DIR) + "/" + name; }

bool fixture_exists(const std::string& name) { return std::filesystem::exists(fixture(name)); }

::testing::AssertionResult close_to(const Tensor& actual, const Tensor& expected, double tol) {
  if (actual.sizes() != expected.sizes())
    return ::testing::AssertionFailure() << "shape " << shape_str(actual.sizes()) << " vs expected "
                                         << shape_str(expected.sizes());
  const double err = max_rel_error(actual, expected);
  if (err <= tol) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "relative error " << err << " exceeds " << tol;
}

namespace {

// GRAFT_TEST_CACHE_SIZES="l1,l2,l3" (bytes) overrides the cache sizes Eigen
// detects at run time. Eigen derives its GEMM blocking, and with it the float
// summation order, from them, so this reproduces on one machine the rounding
// of machines with other caches: the suite must stay green under any setting.
// Eigen keeps the sizes in inline-function statics that libgraft shares with
// the test binary (one definition per process), so this reaches every kernel.
class CacheSizeEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    const char* env = std::getenv("GRAFT_TEST_CACHE_SIZES");
    if (!env || !*env) return;
    std::vector<std::ptrdiff_t> sizes;
    std::stringstream ss(env);
    for (std::string part; std::getline(ss, part, ',');) {
      char* end = nullptr;
      const long long v = std::strtoll(part.c_str(), &end, 10);
      if (part.empty() || *end != '\0' || v <= 0) break;
      sizes.push_back(static_cast<std::ptrdiff_t>(v));
    }
    ASSERT_EQ(sizes.size(), 3u) << "GRAFT_TEST_CACHE_SIZES must be \"l1,l2,l3\" in bytes, got \""
                                << env << "\"";
    Eigen::setCpuCacheSizes(sizes[0], sizes[1], sizes[2]);
    std::cerr << "GRAFT_TEST_CACHE_SIZES: Eigen blocking for l1=" << Eigen::l1CacheSize()
              << " l2=" << Eigen::l2CacheSize() << " l3=" << Eigen::l3CacheSize() << " bytes\n";
  }
};

[[maybe_unused]] const ::testing::Environment* const kCacheSizes =
    ::testing::AddGlobalTestEnvironment(new CacheSizeEnvironment);

}  // namespace

}  // namespace graft::testing
