#include "tests/test_util.h"

#include <Eigen/Core>
#include <cstdlib>
#include <filesystem>
#include <iostream>

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

// libgraft applies GRAFT_TEST_CACHE_SIZES when it loads (core/parallel.cpp);
// this only reports the sizes in force, so a variant run's log shows them.
class CacheSizeReport : public ::testing::Environment {
 public:
  void SetUp() override {
    if (const char* env = std::getenv("GRAFT_TEST_CACHE_SIZES"); env && *env)
      std::cerr << "GRAFT_TEST_CACHE_SIZES: Eigen blocking for l1=" << Eigen::l1CacheSize()
                << " l2=" << Eigen::l2CacheSize() << " l3=" << Eigen::l3CacheSize() << " bytes\n";
  }
};

[[maybe_unused]] const ::testing::Environment* const kCacheSizeReport =
    ::testing::AddGlobalTestEnvironment(new CacheSizeReport);

}  // namespace

}  // namespace graft::testing
