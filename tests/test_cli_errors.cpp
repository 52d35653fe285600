// Bad input gets a clear error (issue 11 part 5): each case runs the `graft`
// binary and asserts exactly one "graft: error:" line naming the file or flag,
// a non-zero exit, and that nothing was written to the --out folder.
#include <gtest/gtest.h>

#include "cli_util.h"
#include "train/checkpoint.h"

namespace {

using namespace graft::testing;
namespace fs = std::filesystem;

bool have_fixtures() {
  for (const char* f : {"train_init.pth", "train_X.npy", "train_Y.npy"})
    if (!fixture_exists(f)) return false;
  return true;
}
#define REQUIRE_FIXTURES() \
  if (!have_fixtures()) GTEST_SKIP() << "train fixtures missing: run tests/fixtures/generate.sh"

void write_bytes(const std::string& path, const std::string& bytes) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << bytes;
}

// One error line containing every `names` entry, rc != 0, nothing under `out`.
void expect_clean_failure(const std::vector<std::string>& args, const std::string& out,
                          const std::vector<std::string>& names, const std::string& prefix = "") {
  const CliResult r = run_graft(args, prefix);
  EXPECT_NE(r.rc, 0) << r.output;
  EXPECT_EQ(r.error_lines(), 1) << r.output;
  for (const auto& n : names) EXPECT_TRUE(r.has(n)) << "no '" << n << "' in:\n" << r.output;
  if (!out.empty()) {
    EXPECT_TRUE(folder_empty_or_absent(out)) << out << " was written to";
  }
}

std::vector<std::string> train_args(const std::string& weights, const std::string& x,
                                    const std::string& y, const std::string& out) {
  return {"train", "--arch",       "resnet18", "--weights",
          weights, "--train-npy",  x,          "--train-labels",
          y,       "--batch-size", "4",        "--epochs",
          "1",     "--quiet",      "--out",    out};
}

// The CPU GEMM's instruction set is chosen from CPUID unless GRAFT_CPU_ISA
// says otherwise; a value that is not one of the choices is refused, not
// ignored.
TEST(CliErrors, UnknownCpuIsaIsRefused) {
  expect_clean_failure({"info"}, "", {"GRAFT_CPU_ISA", "avx9000", "auto, baseline or avx512"},
                       "GRAFT_CPU_ISA=avx9000 ");
}

// Likewise the CPU convolution algorithm (core/parallel.h).
TEST(CliErrors, UnknownCpuConvAlgoIsRefused) {
  expect_clean_failure({"info"}, "",
                       {"GRAFT_CONV_CPU", "wino", "auto, gemm, winograd or winograd4"},
                       "GRAFT_CONV_CPU=wino ");
}

TEST(CliErrors, TruncatedPth) {
  REQUIRE_FIXTURES();
  CliTempDir dir("err");
  const std::string full = read_file(fixture("train_init.pth"));
  write_bytes(dir / "trunc.pth", full.substr(0, full.size() / 2));
  expect_clean_failure(
      train_args(dir / "trunc.pth", fixture("train_X.npy"), fixture("train_Y.npy"), dir / "out"),
      dir / "out", {"trunc.pth"});
}

TEST(CliErrors, PickleThatCallsOsSystem) {
  REQUIRE_FIXTURES();
  CliTempDir dir("err");
  const std::string marker = dir / "pwned";
  // pickle.dumps of an object whose __reduce__ is (os.system, ('touch MARKER',)), protocol 2.
  const std::string cmd = "touch " + marker;
  std::string p =
      "\x80\x02"
      "cposix\nsystem\nq\x00X";
  const uint32_t n = static_cast<uint32_t>(cmd.size());
  p.append(reinterpret_cast<const char*>(&n), 4);
  p += cmd + "q\x01\x85q\x02Rq\x03.";
  write_bytes(dir / "evil.pth", p);
  expect_clean_failure(
      train_args(dir / "evil.pth", fixture("train_X.npy"), fixture("train_Y.npy"), dir / "out"),
      dir / "out", {"evil.pth"});
  EXPECT_FALSE(fs::exists(marker)) << "the pickle ran os.system";
}

TEST(CliErrors, NpyHeaderLiesAboutItsSize) {
  REQUIRE_FIXTURES();
  CliTempDir dir("err");
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1000, 3, 32, 32), }";
  header.resize(118, ' ');
  header += '\n';
  std::string npy = std::string("\x93NUMPY\x01\x00", 8);
  const uint16_t hl = static_cast<uint16_t>(header.size());
  npy.append(reinterpret_cast<const char*>(&hl), 2);
  npy += header + std::string(64, '\0');  // far fewer than 1000*3*32*32 floats
  write_bytes(dir / "liar.npy", npy);
  expect_clean_failure(
      train_args(fixture("train_init.pth"), dir / "liar.npy", fixture("train_Y.npy"), dir / "out"),
      dir / "out", {"liar.npy"});
}

TEST(CliErrors, JpegThatIsText) {
  REQUIRE_FIXTURES();
  CliTempDir dir("err");
  write_bytes(dir / "data/cat/a.jpg", "this is not a jpeg, just text\n");
  write_bytes(dir / "data/dog/b.jpg", "neither is this\n");
  expect_clean_failure(
      {"train", "--weights", fixture("train_init.pth"), "--data", dir / "data", "--image-size",
       "16", "--batch-size", "2", "--quiet", "--workers", "0", "--out", dir / "out"},
      dir / "out", {".jpg"});
}

TEST(CliErrors, EmptyClassFolder) {
  REQUIRE_FIXTURES();
  CliTempDir dir("err");
  write_bytes(dir / "data/cat/a.jpg", "x");
  fs::create_directories(dir / "data/dog");
  expect_clean_failure({"train", "--weights", fixture("train_init.pth"), "--data", dir / "data",
                        "--quiet", "--out", dir / "out"},
                       dir / "out", {"dog"});
}

TEST(CliErrors, LabelOutOfRange) {
  REQUIRE_FIXTURES();
  CliTempDir dir("err");
  // Training: labels need more classes than --num-classes gives.
  expect_clean_failure(
      [&] {
        auto a = train_args(fixture("train_init.pth"), fixture("train_X.npy"),
                            fixture("train_Y.npy"), dir / "out");
        a.insert(a.end(), {"--num-classes", "1"});
        return a;
      }(),
      dir / "out", {"--num-classes"});
  // Evaluation: a label past the checkpoint's 10 classes.
  std::string header = "{'descr': '<i8', 'fortran_order': False, 'shape': (8,), }";
  header.resize(118, ' ');
  header += '\n';
  std::string npy = std::string("\x93NUMPY\x01\x00", 8);
  const uint16_t hl = static_cast<uint16_t>(header.size());
  npy.append(reinterpret_cast<const char*>(&hl), 2);
  npy += header;
  for (int64_t i = 0; i < 8; ++i) {
    const int64_t v = i == 5 ? 12 : 1;
    npy.append(reinterpret_cast<const char*>(&v), 8);
  }
  write_bytes(dir / "bad_labels.npy", npy);
  expect_clean_failure({"eval", "--weights", fixture("train_init.pth"), "--val-npy",
                        fixture("train_X.npy"), "--val-labels", dir / "bad_labels.npy"},
                       "", {"--val-labels", "bad_labels.npy", "12"});
}

TEST(CliErrors, NumClassesConflictsWithTheWeights) {
  REQUIRE_FIXTURES();
  CliTempDir dir("err");
  expect_clean_failure({"forward", "--weights", fixture("train_init.pth"), "--num-classes", "3",
                        "--input", fixture("train_X.npy"), "--output", dir / "out/y.npy"},
                       dir / "out", {"--num-classes 3", "10 rows"});
}

TEST(CliErrors, ResumeOfAFolderFromAnotherArchitecture) {
  REQUIRE_FIXTURES();
  CliTempDir dir("err");
  const std::string run = dir / "run";
  CliResult r = run_graft(
      train_args(fixture("train_init.pth"), fixture("train_X.npy"), fixture("train_Y.npy"), run));
  ASSERT_EQ(r.rc, 0) << r.output;
  expect_clean_failure({"train", "--resume", run, "--arch", "resnet34"}, "",
                       {"--arch", "--resume"});
  // A folder whose config says another architecture than its last.pth.
  std::string cfg = read_file(run + "/config.json");
  cfg.replace(cfg.find("\"resnet18\""), 10, "\"resnet34\"");
  write_bytes(run + "/config.json", cfg);
  const std::string before = read_file(run + "/last.pth");
  expect_clean_failure({"train", "--resume", run, "--epochs", "2", "--quiet"}, "",
                       {"last.pth", "resnet18", "resnet34"});
  EXPECT_TRUE(read_file(run + "/last.pth") == before);
}

// A full disk on save: RLIMIT_FSIZE (ulimit -f, with SIGXFSZ ignored so
// write() fails with EFBIG) stops the 45 MB checkpoint but not metrics.csv.
// The previous checkpoints survive byte for byte, and no temporary is left.
// The error names whichever checkpoint was written first (best.pth when the
// epoch improved on the best score, else last.pth).
TEST(CliErrors, FullDiskOnSaveKeepsThePreviousCheckpoint) {
  REQUIRE_FIXTURES();
  CliTempDir dir("err");
  const std::string run = dir / "run";
  CliResult r = run_graft(
      train_args(fixture("train_init.pth"), fixture("train_X.npy"), fixture("train_Y.npy"), run));
  ASSERT_EQ(r.rc, 0) << r.output;
  const std::string before = read_file(run + "/last.pth");
  const bool had_best = fs::exists(run + "/best.pth");
  const std::string best_before = had_best ? read_file(run + "/best.pth") : "";
  ASSERT_GT(before.size(), 1000000u);
  r = run_graft({"train", "--resume", run, "--epochs", "2", "--quiet"},
                "trap '' XFSZ; ulimit -f 4096; ");
  EXPECT_NE(r.rc, 0) << r.output;
  EXPECT_EQ(r.error_lines(), 1) << r.output;
  EXPECT_TRUE(r.has("last.pth") || r.has("best.pth")) << r.output;
  EXPECT_TRUE(r.has("File too large")) << r.output;
  EXPECT_TRUE(read_file(run + "/last.pth") == before) << "last.pth changed";
  if (had_best) {
    EXPECT_TRUE(read_file(run + "/best.pth") == best_before) << "best.pth changed";
  }
  for (const auto& e : fs::directory_iterator(run))
    EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << e.path();
}

}  // namespace
