// The layout rules of kernels/ (kernels/README.md) and the reduction kernels'
// row contract (core/kernels.h, ReduceRows).
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include "core/kernels.h"
#include "core/ops.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace graft;

namespace {

std::string read_file(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

const fs::path kKernels = fs::path(GRAFT_SOURCE_DIR) / "kernels";

}  // namespace

// Kernels only compute: layouts, views with autograd and the op API belong
// to the front ends.
TEST(KernelLayout, NoKernelFileIncludesTheOpApiOrAutograd) {
  const std::regex banned(R"re(#include\s+"core/(ops|ops_nn|autograd)\.h")re");
  int files = 0;
  for (const auto& e : fs::recursive_directory_iterator(kKernels)) {
    if (!e.is_regular_file()) continue;
    const std::string ext = e.path().extension().string();
    if (ext != ".cpp" && ext != ".cu" && ext != ".h" && ext != ".cuh") continue;
    ++files;
    EXPECT_FALSE(std::regex_search(read_file(e.path()), banned)) << e.path();
  }
  EXPECT_GT(files, 20);  // the walk found the kernel sources
}

// A kernel's twin is found by its file name: every file that registers
// kernels on one backend has a namesake on the other (kernels/README.md).
TEST(KernelLayout, CpuAndCudaKernelFilesMirrorEachOther) {
  std::set<std::string> cpu, cuda;
  for (const auto& e : fs::directory_iterator(kKernels / "cpu"))
    if (e.path().extension() == ".cpp" &&
        read_file(e.path()).find("GRAFT_REGISTER_KERNEL(") != std::string::npos)
      cpu.insert(e.path().stem().string());
  for (const auto& e : fs::directory_iterator(kKernels / "cuda"))
    if (e.path().extension() == ".cu" &&
        read_file(e.path()).find("GRAFT_REGISTER_CUDA_KERNEL(") != std::string::npos)
      cuda.insert(e.path().stem().string());
  EXPECT_GE(cpu.size(), 10u);
  EXPECT_EQ(cpu, cuda);
}

// A contiguous [A, K, B] input reduced over A and B is read in place
// (inner = B); the same values behind other strides go through the permuted
// copy. Each row takes its elements in the same order either way, so the
// results are equal to the bit.
TEST(ReduceRows, InPlaceRowsEqualThePermutedCopyExactly) {
  Generator gen(5);
  for (DType dt : {DType::Float32, DType::Float64}) {
    Tensor x = randn({6, 5, 7}, opts(dt), &gen).mul(100.0);
    x.select(0, 3).select(0, 2).select(0, 4).fill_(NAN);  // row 2 has a NaN
    // Same values, non-contiguous strides: the front end copies.
    const Tensor xs = x.transpose(0, 2).contiguous().transpose(0, 2);
    ASSERT_FALSE(xs.is_contiguous());
    for (auto f : {+[](const Tensor& t) {
                     return sum(t, {0, 2});
                   },
                   +[](const Tensor& t) {
                     return mean(t, {0, 2});
                   },
                   +[](const Tensor& t) {
                     return prod(t.div(100.0), {0, 2});
                   },
                   +[](const Tensor& t) {
                     return amax(t, {0, 2});
                   },
                   +[](const Tensor& t) {
                     return amin(t, {0, 2});
                   }}) {
      const Tensor a = f(x), b = f(xs);
      ASSERT_EQ(a.sizes(), b.sizes());
      EXPECT_EQ(std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()), 0) << dtype_name(dt);
    }
    EXPECT_TRUE(std::isnan(amax(x, {0, 2}).select(0, 2).item()));
  }
}

TEST(ReduceRows, KernelsRejectInputsNotLaidOutAsRows) {
  const Tensor x = ones({4, 6});
  const Tensor out = empty({4});
  // 4 rows of 5 cannot be a 24-element input.
  EXPECT_THROW(kernel::reduce(x.device())(ReduceOp::Sum, x, ReduceRows{4, 5, 5}, out),
               graft::Error);
  // inner must divide len.
  EXPECT_THROW(kernel::reduce(x.device())(ReduceOp::Sum, x, ReduceRows{4, 6, 4}, out),
               graft::Error);
  // arg_reduce and var take plain rows only (inner == len).
  const Tensor idx = empty({4}, opts(DType::Int64));
  EXPECT_THROW(
      kernel::arg_reduce(x.device())(ArgReduceOp::Max, x, ReduceRows{4, 6, 3}, Tensor(), idx),
      graft::Error);
  EXPECT_THROW(kernel::var(x.device())(x, ReduceRows{4, 6, 2}, 1.0, out), graft::Error);
  // A non-contiguous input is not rows.
  EXPECT_THROW(kernel::reduce(x.device())(ReduceOp::Sum, x.t(), ReduceRows{6, 4, 4}, empty({6})),
               graft::Error);
  kernel::reduce(x.device())(ReduceOp::Sum, x, ReduceRows{4, 6, 6}, out);
  EXPECT_EQ(out.to_vector<float>(), std::vector<float>(4, 6.0f));
}
