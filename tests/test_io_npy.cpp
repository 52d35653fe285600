// .npy reading and writing (io/npy.h) against files written by tests/fixtures/gen_io.py.
#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "core/ops.h"
#include "io/npy.h"
#include "test_util.h"

using namespace graft;
using graft::testing::fixture;

namespace {

// Exact equality of values and shapes, any layout.
::testing::AssertionResult same(const Tensor& a, const Tensor& b) {
  if (a.sizes() != b.sizes() || a.dtype() != b.dtype())
    return ::testing::AssertionFailure() << a.meta_str() << " vs " << b.meta_str();
  auto va = a.to(DType::Float64).to_vector<double>(), vb = b.to(DType::Float64).to_vector<double>();
  for (size_t i = 0; i < va.size(); ++i)
    if (va[i] != vb[i]) return ::testing::AssertionFailure() << "element " << i << ": " << va[i] << " vs " << vb[i];
  return ::testing::AssertionSuccess();
}

std::string temp_path(const std::string& stem) {
  return ::testing::TempDir() + stem + "_" + std::to_string(::getpid());
}

}  // namespace

TEST(IoNpy, ReadsEveryDtypeLikeTorch) {
  GRAFT_REQUIRE_FIXTURE("io_f64.npy");
  Tensor ref = io::load_npy(fixture("io_f64.npy"));
  EXPECT_EQ(ref.dtype(), DType::Float64);
  EXPECT_EQ(ref.sizes(), (Shape{3, 4, 5}));
  EXPECT_TRUE(same(io::load_npy(fixture("io_f32.npy")), ref.to(DType::Float32)));
  EXPECT_TRUE(same(io::load_npy(fixture("io_f16.npy")), ref.to(DType::Float16)));
  // torch truncates toward zero when casting to integers, as does graft's to().
  Tensor scaled = mul(ref, scalar_tensor(1000, opts(DType::Float64)));
  EXPECT_TRUE(same(io::load_npy(fixture("io_i64.npy")), scaled.to(DType::Int64)));
  EXPECT_TRUE(same(io::load_npy(fixture("io_i32.npy")), scaled.to(DType::Int32)));
  Tensor b = io::load_npy(fixture("io_bool.npy"));
  ASSERT_EQ(b.dtype(), DType::Bool);
  auto bv = b.to(DType::Float64).to_vector<double>();
  auto rv = ref.to_vector<double>();
  for (size_t i = 0; i < rv.size(); ++i) EXPECT_EQ(bv[i] != 0, rv[i] > 0) << i;
  Tensor u = io::load_npy(fixture("io_u8.npy"));
  EXPECT_EQ(u.dtype(), DType::UInt8);
  EXPECT_EQ(u.sizes(), (Shape{3, 4, 5}));
}

TEST(IoNpy, HeaderVersionsScalarsEmptyAndFortranOrder) {
  GRAFT_REQUIRE_FIXTURE("io_f32.npy");
  Tensor c = io::load_npy(fixture("io_f32.npy"));
  EXPECT_TRUE(same(io::load_npy(fixture("io_v2.npy")), c));
  EXPECT_TRUE(same(io::load_npy(fixture("io_v3.npy")), c));
  Tensor f = io::load_npy(fixture("io_fortran.npy"));
  EXPECT_EQ(f.strides(), (Shape{1, 3, 12}));  // kept as a column-major view
  EXPECT_FALSE(f.is_contiguous());
  EXPECT_TRUE(same(f, c));
  Tensor s = io::load_npy(fixture("io_scalar.npy"));
  EXPECT_EQ(s.dim(), 0);
  EXPECT_EQ(s.item(), 3.25);
  Tensor e = io::load_npy(fixture("io_empty.npy"));
  EXPECT_EQ(e.sizes(), (Shape{0, 3}));
}

TEST(IoNpy, RejectsBadFilesWithClearErrors) {
  GRAFT_REQUIRE_FIXTURE("io_truncated.npy");
  auto expect_error = [](const std::string& name, const std::string& needle) {
    try {
      io::load_npy(fixture(name));
      ADD_FAILURE() << name << " loaded without error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error("io_truncated.npy", "truncated");
  expect_error("io_badmagic.npy", "bad magic");
  expect_error("io_bigendian.npy", "big-endian");
  expect_error("io_complex.npy", "unsupported .npy dtype '<c8'");
  EXPECT_THROW(io::load_npy(temp_path("does_not_exist")), Error);
  // Hostile headers: huge shapes, garbage, unterminated strings.
  const std::string magic = std::string("\x93NUMPY\x01\x00", 8);
  for (std::string h : {"{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 4), }",
                        "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000, 1000000000, 1000000000), }",
                        "{'descr': '<f4', 'fortran_order': False}", "{'descr: '<f4", "garbage",
                        "{'descr': '<f4', 'fortran_order': Maybe, 'shape': (), }"}) {
    std::string bytes = magic;
    bytes.push_back(static_cast<char>(h.size() & 0xff));
    bytes.push_back(static_cast<char>(h.size() >> 8));
    bytes += h + std::string(64, '\0');
    EXPECT_THROW(io::parse_npy(bytes), Error) << h;
  }
}

TEST(IoNpy, RoundTripsEveryNumpyDtype) {
  std::string p = temp_path("rt.npy");
  for (DType d : {DType::Float32, DType::Float64, DType::Float16, DType::Int64, DType::Int32,
                  DType::Int16, DType::Int8, DType::UInt8, DType::Bool}) {
    Tensor t = randn({2, 3, 4}, opts(DType::Float64)).to(d);
    Tensor nc = t.transpose(0, 2);  // written as C order from a strided view
    io::save_npy(p, nc);
    EXPECT_TRUE(same(io::load_npy(p), nc)) << dtype_name(d);
  }
  io::save_npy(p, scalar_tensor(7, opts(DType::Int64)));
  EXPECT_EQ(io::load_npy(p).dim(), 0);
  EXPECT_THROW(io::save_npy(p, zeros({2}, opts(DType::BFloat16))), Error);
  std::remove(p.c_str());
}

TEST(IoNpy, WrittenFilesReadByNumpy) {
  if (std::system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "python3 with numpy not available";
  std::string p = temp_path("np.npy");
  Tensor t = arange(24, opts(DType::Float32)).view({2, 3, 4}).permute({2, 0, 1});
  io::save_npy(p, t);
  std::string cmd = "/usr/bin/python3 -c \"import numpy as np; a=np.load('" + p +
                    "'); assert a.shape==(4,2,3) and a.dtype==np.float32; "
                    "assert (a==np.arange(24,dtype=np.float32).reshape(2,3,4).transpose(2,0,1)).all()\"";
  EXPECT_EQ(std::system(cmd.c_str()), 0);
  std::remove(p.c_str());
}
