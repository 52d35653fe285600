// The CUDA backend as a separate library: this binary links libgraft alone
// (graft::graft, not graft::cuda). Asking for a CUDA device must load
// libgraft_cuda from beside libgraft.so, so that its kernel registrations take
// effect, or say why it cannot: built without CUDA, the library not loadable
// (GRAFT_CUDA_LIBRARY pointing nowhere: the test_device_load_missing entry),
// or no device. tests/CMakeLists.txt says how graft was built:
// GRAFT_TEST_CUDA_BACKEND is "none", "shared" or "static".
#include <cstdlib>
#include <string>

#include "core/device.h"
#include "core/kernels.h"
#include "optim/kernels.h"
#include "tests/test_util.h"

namespace graft {
namespace {

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

TEST(DeviceLoad, CudaBackendIsLoadedOnDemandOrTheErrorSaysWhy) {
  const std::string backend = GRAFT_TEST_CUDA_BACKEND;
  // Nothing linked or loaded the backend yet: no CUDA kernel is registered.
  EXPECT_FALSE(kernel::unary.has(DeviceType::CUDA));
  EXPECT_FALSE(kernel::conv2d_forward.has(DeviceType::CUDA));

  const std::string why = device_unavailable_reason(DeviceType::CUDA);
  const char* override_path = std::getenv("GRAFT_CUDA_LIBRARY");
  if (backend == "none") {
    EXPECT_EQ(why,
              "CUDA not available: graft was built without the CUDA backend (rebuild with "
              "-DGRAFT_CUDA=ON)");
  } else if (backend == "static") {
    EXPECT_TRUE(contains(why, "does not link graft's CUDA backend (graft::cuda")) << why;
  } else if (override_path && *override_path) {
    // Named by the environment, and missing: the loader's own error is shown.
    EXPECT_TRUE(contains(why, "CUDA not available: cannot load the CUDA backend")) << why;
    EXPECT_TRUE(contains(why, override_path)) << why;
    EXPECT_TRUE(contains(why, "No such file")) << why;
  } else {
    // Loaded from beside libgraft.so: every registration ran.
    EXPECT_FALSE(contains(why, "cannot load")) << why;
    EXPECT_TRUE(kernel::unary.has(DeviceType::CUDA));
    EXPECT_TRUE(kernel::conv2d_forward.has(DeviceType::CUDA));
    EXPECT_TRUE(kernel::sgd_step.has(DeviceType::CUDA));
    if (!why.empty()) {
      // A real-CUDA build on a machine without a GPU (CI).
      EXPECT_TRUE(contains(why, "CUDA not available: ")) << why;
      EXPECT_FALSE(cuda_available());
      return;
    }
    ASSERT_TRUE(cuda_available());
    const Tensor a = tensor<float>({1, 2, 3}), b = tensor<float>({10, 20, 30});
    const Tensor c = add(a.to(Device::cuda()), b.to(Device::cuda()));
    EXPECT_TRUE(c.device().is_cuda());
    EXPECT_EQ(c.to(Device::cpu()).to_vector<float>(), (std::vector<float>{11, 22, 33}));
    return;
  }
  // No backend: nothing was registered, and using CUDA throws the same reason.
  EXPECT_FALSE(kernel::unary.has(DeviceType::CUDA));
  EXPECT_FALSE(cuda_available());
  try {
    (void)ones({2}).to(Device::cuda());
    FAIL() << "moving a tensor to CUDA without a backend did not throw";
  } catch (const Error& e) {
    EXPECT_TRUE(contains(e.what(), why)) << e.what();
  }
}

}  // namespace
}  // namespace graft
