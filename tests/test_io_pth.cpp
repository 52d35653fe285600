// PyTorch checkpoint reading and writing (io/zip.h, io/pickle.h, io/pth.h)
// against files written by torch.save in tests/fixtures/gen_io.py.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "core/ops.h"
#include "io/npy.h"
#include "io/pth.h"
#include "io/zip.h"
#include "test_util.h"

using namespace graft;
using graft::testing::fixture;

namespace {

::testing::AssertionResult same(const Tensor& a, const Tensor& b) {
  if (a.sizes() != b.sizes())
    return ::testing::AssertionFailure() << a.meta_str() << " vs " << b.meta_str();
  auto va = a.to(DType::Float64).to_vector<double>(), vb = b.to(DType::Float64).to_vector<double>();
  for (size_t i = 0; i < va.size(); ++i)
    if (!(va[i] == vb[i]))
      return ::testing::AssertionFailure() << "element " << i << ": " << va[i] << " vs " << vb[i];
  return ::testing::AssertionSuccess();
}

// Bitwise equality including dtype (catches any conversion on the way).
::testing::AssertionResult bit_equal(const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype() || a.sizes() != b.sizes())
    return ::testing::AssertionFailure() << a.meta_str() << " vs " << b.meta_str();
  Tensor ca = a.contiguous(), cb = b.contiguous();
  // nbytes() == 0: an empty tensor may have no data pointer (memcmp needs one).
  if (ca.nbytes() > 0 && std::memcmp(ca.raw_data(), cb.raw_data(), ca.nbytes()) != 0)
    return ::testing::AssertionFailure() << "bytes differ for " << a.meta_str();
  return ::testing::AssertionSuccess();
}

// Compares every tensor of `sd` with the flat float32 reference written by the generator.
void expect_matches_flat_ref(const io::NamedTensors& sd, const std::string& ref_name) {
  Tensor ref = io::load_npy(fixture(ref_name));
  int64_t off = 0;
  for (const auto& [name, t] : sd) {
    ASSERT_LE(off + t.numel(), ref.numel()) << name;
    Tensor want = ref.narrow(0, off, t.numel()).reshape(t.sizes());
    EXPECT_TRUE(same(t, want)) << name;
    off += t.numel();
  }
  EXPECT_EQ(off, ref.numel()) << "tensor count or sizes differ from torch's";
}

std::string python_with_torch() {
  for (const char* py : {"/usr/bin/python3", "python3"}) {
    std::string cmd = std::string(py) + " -c 'import torch' >/dev/null 2>&1";
    if (std::system(cmd.c_str()) == 0) return py;
  }
  return "";
}

std::string temp_path(const std::string& stem) {
  return ::testing::TempDir() + stem + "_" + std::to_string(::getpid());
}

void expect_load_error(const std::string& path, const std::string& needle) {
  try {
    io::Checkpoint c = io::load_pth(path);
    ADD_FAILURE() << path << " loaded without error: " << c.root->repr();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

}  // namespace

TEST(IoPth, ResNet18ZipMatchesTorchAndIsZeroCopy) {
  GRAFT_REQUIRE_FIXTURE("io_resnet18.pth");
  io::Checkpoint c = io::load_pth(fixture("io_resnet18.pth"));
  EXPECT_EQ(c.format, "zip");
  io::NamedTensors sd = io::extract_state_dict(c.root);
  ASSERT_EQ(sd.size(), 122u);
  EXPECT_EQ(sd.front().first, "conv1.weight");
  EXPECT_EQ(sd.front().second.sizes(), (Shape{64, 3, 7, 7}));
  const Tensor* nbt = io::find_tensor(sd, "bn1.num_batches_tracked");
  ASSERT_TRUE(nbt);
  EXPECT_EQ(nbt->dtype(), DType::Int64);
  EXPECT_EQ(nbt->dim(), 0);
  expect_matches_flat_ref(sd, "io_resnet18_ref.npy");
  // Stored records are views of the mapped file, 64-byte aligned.
  for (const auto& [name, t] : sd) {
    auto* p = static_cast<const uint8_t*>(t.raw_data());
    EXPECT_TRUE(p >= c.file->data() && p < c.file->data() + c.file->size()) << name;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.storage()->data()) % 64, 0u) << name;
  }
}

TEST(IoPth, ResNet50ZipMatchesTorch) {
  GRAFT_REQUIRE_FIXTURE("io_resnet50.pth");
  io::NamedTensors sd = io::extract_state_dict(io::load_pth(fixture("io_resnet50.pth")).root);
  EXPECT_EQ(sd.size(), 320u);
  expect_matches_flat_ref(sd, "io_resnet50_ref.npy");
}

TEST(IoPth, LegacyFormatMatchesTorch) {
  GRAFT_REQUIRE_FIXTURE("io_resnet18_legacy.pth");
  io::Checkpoint c = io::load_pth(fixture("io_resnet18_legacy.pth"));
  EXPECT_EQ(c.format, "legacy");
  expect_matches_flat_ref(io::extract_state_dict(c.root), "io_resnet18_ref.npy");
}

class IoPthMixed : public ::testing::TestWithParam<const char*> {};

TEST_P(IoPthMixed, EveryDtypeLayoutAndSharedStorage) {
  GRAFT_REQUIRE_FIXTURE(GetParam());
  io::NamedTensors sd = io::extract_state_dict(io::load_pth(fixture(GetParam())).root);
  ASSERT_EQ(sd.size(), 17u);
  const std::pair<const char*, DType> dtypes[] = {
      {"f32", DType::Float32},   {"f64", DType::Float64}, {"f16", DType::Float16},
      {"bf16", DType::BFloat16}, {"i64", DType::Int64},   {"i32", DType::Int32},
      {"i16", DType::Int16},     {"i8", DType::Int8},     {"u8", DType::UInt8},
      {"b", DType::Bool}};
  for (auto [name, dt] : dtypes) EXPECT_EQ(io::find_tensor(sd, name)->dtype(), dt) << name;
  for (const auto& [name, t] : sd) {
    std::string ref = "io_mixed__" + name + (t.dtype() == DType::BFloat16 ? ".f32.npy" : ".npy");
    Tensor want = io::load_npy(fixture(ref));
    if (t.dtype() == DType::BFloat16)
      EXPECT_TRUE(same(t, want)) << name;
    else
      EXPECT_TRUE(bit_equal(t, want)) << name;
  }
  const Tensor& tr = *io::find_tensor(sd, "transposed");
  EXPECT_EQ(tr.sizes(), (Shape{6, 4}));
  EXPECT_EQ(tr.strides(), (Shape{1, 6}));
  const Tensor& a = *io::find_tensor(sd, "shared_a");
  const Tensor& b = *io::find_tensor(sd, "shared_b");
  const Tensor& s = *io::find_tensor(sd, "strided");
  EXPECT_EQ(a.storage().get(), b.storage().get()) << "shared storage loaded twice";
  EXPECT_EQ(a.storage().get(), s.storage().get());
  EXPECT_EQ(b.storage_offset(), 4);
  EXPECT_EQ(s.strides(), (Shape{3}));
  EXPECT_EQ(io::find_tensor(sd, "scalar")->dim(), 0);
  EXPECT_EQ(io::find_tensor(sd, "scalar")->item(), 42);
  EXPECT_EQ(io::find_tensor(sd, "empty")->sizes(), (Shape{0, 5}));
}

INSTANTIATE_TEST_SUITE_P(Formats, IoPthMixed,
                         ::testing::Values("io_mixed.pth", "io_mixed_legacy.pth",
                                           "io_mixed_proto4.pth"));

TEST(IoPth, NestedCheckpointWithPrefixesAndMetadata) {
  GRAFT_REQUIRE_FIXTURE("io_nested.pth");
  io::Checkpoint c = io::load_pth(fixture("io_nested.pth"));
  ASSERT_TRUE(c.root->get("epoch"));
  EXPECT_EQ(c.root->get("epoch")->integer, 7);
  EXPECT_EQ(c.root->get("arch")->str, "tiny");
  EXPECT_EQ(c.root->get("best_acc")->real, 0.75);
  EXPECT_EQ(c.root->get("history")->repr(), "[1, 2, (3, 'x')]");
  EXPECT_TRUE(c.root->get("flag")->is(io::Value::Kind::None));
  io::NamedTensors sd = io::extract_state_dict(c.root);  // finds 'state_dict'
  EXPECT_EQ(sd.size(), 9u);
  for (const auto& [name, t] : sd) {
    EXPECT_EQ(name.rfind("module.", 0), 0u) << name;
    EXPECT_TRUE(bit_equal(t, io::load_npy(fixture("io_nested__" + name + ".npy")))) << name;
  }
  EXPECT_EQ(io::extract_state_dict(c.root, "state_dict").size(), 9u);
  EXPECT_THROW(io::extract_state_dict(c.root, "optimizer"), Error);
}

TEST(IoPth, MaliciousPicklesAreRejectedNotExecuted) {
  GRAFT_REQUIRE_FIXTURE("io_malicious.pth");
  std::remove(fixture("io_PWNED").c_str());
  expect_load_error(fixture("io_malicious.pth"), "refusing to load global 'posix.system'");
  EXPECT_FALSE(graft::testing::fixture_exists("io_PWNED"));
  std::ifstream f(fixture("io_malicious_eval.pkl"), std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(f)), {});
  try {
    io::unpickle(bytes, nullptr, "eval.pkl");
    ADD_FAILURE() << "builtins.eval accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("builtins.eval"), std::string::npos) << e.what();
  }
}

TEST(IoPth, CorruptFilesFailCleanly) {
  GRAFT_REQUIRE_FIXTURE("io_truncated.pth");
  expect_load_error(fixture("io_truncated.pth"), "");
  expect_load_error(fixture("io_baddir.pth"), "central directory");
  expect_load_error(fixture("io_badsize.pth"), "");
  expect_load_error(fixture("io_f32.npy"), "not a PyTorch checkpoint");
  // Every prefix of a small checkpoint fails with an Error, never a crash.
  std::ifstream f(fixture("io_mixed_legacy.pth"), std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(f)), {});
  for (size_t n = 0; n < bytes.size(); n += 7)
    EXPECT_THROW(io::load_pth(io::MappedFile::from_bytes(bytes.substr(0, n))), Error) << n;
}

TEST(IoPth, HostilePickles) {
  auto fails = [](const std::string& p, const std::string& needle) {
    try {
      io::unpickle(p, nullptr, "t");
      ADD_FAILURE() << "accepted " << ::testing::PrintToString(p);
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  fails(std::string("\x80\x02]q\x00h\x00"
                    "a.",
                    9),
        "cyclic");                                     // l.append(l)
  fails(std::string(100000, '(') + "]", "truncated");  // marks only
  fails("\x80\x02" + std::string(1000, ']') + std::string(999, 'a') + ".", "nesting deeper");
  fails("\x80\x02h\x05.", "memo has no entry 5");
  fails("\x80\x02\xff.", "unsupported pickle opcode 0xff");
  fails(
      "\x80\x02"
      "cos\nsystem\n.",
      "os.system");
  fails("\x80\x02\x8c\x02os\x8c\x06system\x93.", "os.system");  // STACK_GLOBAL
  fails(std::string("\x80\x02"
                    "ccollections\nOrderedDict\nX\x01\x00\x00\x00"
                    "a\x85R.",
                    36),
        "with arguments");
  fails("\x80\x02N)R.", "REDUCE on a None");
  fails(
      "\x80\x02"
      "a.",
      "underflow");
  fails(std::string("\x80\x02}q\x00K\x01h\x00s.", 11), "cyclic");  // d[1] = d
}

TEST(IoPth, GraftRoundTripKeepsDtypesLayoutAndSharing) {
  Tensor base = randn({10});
  io::NamedTensors sd = {
      {"w", randn({3, 4})},
      {"t", randn({4, 6}).t()},
      {"a", base.narrow(0, 0, 6).view({2, 3})},
      {"b", base.narrow(0, 4, 6)},
      {"h", randn({5}).to(DType::Float16)},
      {"bf", randn({5}).to(DType::BFloat16)},
      {"n", scalar_tensor(3, opts(DType::Int64))},
  };
  std::string p = temp_path("rt.pth");
  io::save_pth(sd, p);
  io::NamedTensors back = io::extract_state_dict(io::load_pth(p).root);
  ASSERT_EQ(back.size(), sd.size());
  for (size_t i = 0; i < sd.size(); ++i) {
    EXPECT_EQ(back[i].first, sd[i].first);
    EXPECT_TRUE(bit_equal(back[i].second, sd[i].second)) << sd[i].first;
    EXPECT_EQ(back[i].second.strides(), sd[i].second.strides()) << sd[i].first;
  }
  EXPECT_EQ(back[2].second.storage().get(), back[3].second.storage().get());
  // The archive is a valid zip with 64-byte aligned records.
  io::ZipReader z = io::ZipReader::open(p);
  for (const auto& e : z.entries()) EXPECT_EQ(e.data_offset % 64, 0u) << e.name;
  std::remove(p.c_str());
}

TEST(IoPth, GraftToTorchToGraftBitExact) {
  std::string py = python_with_torch();
  if (py.empty()) GTEST_SKIP() << "python3 with torch not available";
  GRAFT_REQUIRE_FIXTURE("io_resnet18.pth");
  // resnet18 as graft reads it, plus awkward layouts, written by graft.
  io::NamedTensors sd = io::extract_state_dict(io::load_pth(fixture("io_resnet18.pth")).root);
  Tensor base = randn({10});
  sd.emplace_back("x.transposed", randn({4, 6}).t());
  sd.emplace_back("x.shared_a", base.narrow(0, 0, 6));
  sd.emplace_back("x.shared_b", base.narrow(0, 4, 6));
  sd.emplace_back("x.bf16", randn({5}).to(DType::BFloat16));
  sd.emplace_back("x.f16", randn({5}).to(DType::Float16));
  std::string p = temp_path("g2t.pth"), p2 = temp_path("t2g.pth");
  io::save_pth(sd, p);
  std::string script =
      "import sys, torch, collections\n"
      "sd = torch.load(sys.argv[1], weights_only=True)\n"
      "ref = torch.load(sys.argv[3])\n"
      "assert type(sd) is collections.OrderedDict, type(sd)\n"
      "for k, v in ref.items():\n"
      "    assert sd[k].dtype == v.dtype and torch.equal(sd[k], v), k\n"
      "n = sd['bn1.num_batches_tracked']\n"
      "assert n.dtype == torch.int64 and n.dim() == 0\n"
      "assert sd['x.transposed'].stride() == (1, 6)\n"
      "assert sd['x.shared_a'].storage().data_ptr() == sd['x.shared_b'].storage().data_ptr()\n"
      "assert sd['x.bf16'].dtype == torch.bfloat16 and sd['x.f16'].dtype == torch.float16\n"
      "torch.save(sd, sys.argv[2])\n";
  std::string sp = temp_path("check.py");
  std::ofstream(sp) << script;
  std::string cmd = py + " " + sp + " " + p + " " + p2 + " " + fixture("io_resnet18.pth");
  ASSERT_EQ(std::system(cmd.c_str()), 0) << "torch rejected or misread graft's file";
  io::NamedTensors back = io::extract_state_dict(io::load_pth(p2).root);
  ASSERT_EQ(back.size(), sd.size());
  for (size_t i = 0; i < sd.size(); ++i) {
    EXPECT_EQ(back[i].first, sd[i].first);
    EXPECT_TRUE(bit_equal(back[i].second, sd[i].second)) << sd[i].first;
  }
  for (const auto& f : {p, p2, sp}) std::remove(f.c_str());
}

// Inputs found by the libFuzzer targets (tests/fuzz): each must load or fail
// with graft::Error, never crash or trip a sanitizer.
// The fuzzers' crash regressions (tests/fuzz/regressions/<target>/) are
// replayed by the ctest tests fuzz_replay_<target> (tests/fuzz/CMakeLists.txt).
