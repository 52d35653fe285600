// Helpers for tests that run the built `graft` binary (GRAFT_CLI_PATH).
#pragma once

// GCC 12 reports a false -Wrestrict inside std::string's operator+ at -O3
// (GCC PR 105329); these tests build command lines with it.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wrestrict"
#endif

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/pth.h"
#include "test_util.h"

namespace graft::testing {

namespace fs = std::filesystem;

struct CliResult {
  int rc = -1;
  std::string output;  // stdout and stderr
  bool has(const std::string& s) const { return output.find(s) != std::string::npos; }
  // Lines of output that start with "graft: error:".
  int error_lines() const {
    std::istringstream in(output);
    std::string line;
    int n = 0;
    while (std::getline(in, line)) n += line.rfind("graft: error:", 0) == 0;
    return n;
  }
};

inline std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char ch : s) {
    if (ch == '\'')
      q.append("'\\''");
    else
      q.push_back(ch);
  }
  return q + "'";
}

// Runs `graft ARGS` through sh, after `prefix` (e.g. "cd DIR && ", "VAR=1 ").
// OpenMP threads sleep instead of spinning while they wait: on a loaded
// machine (CI running tests in parallel) spinning made each run 10x slower.
inline CliResult run_graft(const std::vector<std::string>& args, const std::string& prefix = "") {
  std::string cmd = prefix + "OMP_WAIT_POLICY=passive " + shell_quote(GRAFT_CLI_PATH);
  for (const auto& a : args) cmd += " " + shell_quote(a);
  cmd += " 2>&1";
  CliResult r;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf{};
  size_t n = 0;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.output.append(buf.data(), n);
  const int status = pclose(p);
  r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
  return r;
}

// A fresh folder under the system temp dir, removed at exit.
struct CliTempDir {
  fs::path path;
  explicit CliTempDir(const std::string& tag) {
    static int counter = 0;
    path = fs::temp_directory_path() /
           ("graft_" + tag + "_" + std::to_string(getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~CliTempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

inline std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

// metrics.csv without the timing columns (seconds, images_per_sec), which no
// two runs share.
inline std::string metrics_without_timing(const std::string& path) {
  std::istringstream in(read_file(path));
  std::string line, out;
  while (std::getline(in, line)) {
    std::vector<std::string> f;
    std::stringstream ss(line);
    std::string cell;
    while (std::getline(ss, cell, ',')) f.push_back(cell);
    for (size_t i = 0; i < f.size(); ++i)
      if (i != 5 && i != 6) out += f[i] + ",";
    out += "\n";
  }
  return out;
}

// `graft train` on the training fixtures of tests/fixtures/gen_train.py (a
// 10-class resnet18, 8 images at 64x64 with int64 labels), then `extra`.
inline std::vector<std::string> fixture_train_args(const std::vector<std::string>& extra) {
  std::vector<std::string> a = {"train",
                                "--arch",
                                "resnet18",
                                "--weights",
                                fixture("train_init.pth"),
                                "--train-npy",
                                fixture("train_X.npy"),
                                "--train-labels",
                                fixture("train_Y.npy")};
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

inline bool train_fixtures_present() {
  for (const char* f : {"train_init.pth", "train_X.npy", "train_Y.npy"})
    if (!fixture_exists(f)) return false;
  return true;
}

inline bool folder_empty_or_absent(const std::string& dir) {
  std::error_code ec;
  return !fs::exists(dir, ec) || fs::is_empty(dir, ec);
}

}  // namespace graft::testing
