#include "tests/test_util.h"

#include <filesystem>

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

}  // namespace graft::testing
