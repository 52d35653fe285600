// Checkpoint loading speed: resnet50's state_dict (~98 MiB, torch zip format)
// loaded by graft vs. just reading the file's bytes from the page cache.
// The file comes from tests/fixtures/gen_io.py; set GRAFT_BENCH_PTH to use
// another. benchmarks/bench_io_torch.py times torch.load on the same file.
//
//   ReadFileBytes    read() the whole file into a buffer (the baseline)
//   LoadPth          load_pth + extract_state_dict (tensors view the mapping)
//   LoadPthTouch     ... then read one byte per 4 KiB page of every tensor
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <vector>

#include "core/ops.h"
#include "io/pth.h"

namespace {

std::string bench_file() {
  if (const char* p = std::getenv("GRAFT_BENCH_PTH")) return p;
  for (const char* p :
       {"tests/fixtures/data/io_resnet50.pth", "../tests/fixtures/data/io_resnet50.pth"})
    if (std::filesystem::exists(p)) return p;
  return "";
}

bool have_file(benchmark::State& state, std::string& path) {
  path = bench_file();
  if (path.empty()) state.SkipWithError("run tests/fixtures/generate.sh or set GRAFT_BENCH_PTH");
  return !path.empty();
}

void ReadFileBytes(benchmark::State& state) {
  std::string path;
  if (!have_file(state, path)) return;
  size_t size = std::filesystem::file_size(path);
  std::vector<char> buf(size);
  for (auto _ : state) {
    int fd = ::open(path.c_str(), O_RDONLY);
    size_t done = 0;
    while (done < size) {
      ssize_t n = ::read(fd, buf.data() + done, size - done);
      if (n <= 0) break;
      done += static_cast<size_t>(n);
    }
    ::close(fd);
    benchmark::DoNotOptimize(buf.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * size));
}

void LoadPth(benchmark::State& state) {
  std::string path;
  if (!have_file(state, path)) return;
  for (auto _ : state) {
    graft::io::NamedTensors sd = graft::io::extract_state_dict(graft::io::load_pth(path).root);
    benchmark::DoNotOptimize(sd.data());
  }
  state.SetBytesProcessed(
      static_cast<int64_t>(state.iterations() * std::filesystem::file_size(path)));
}

void LoadPthTouch(benchmark::State& state) {
  std::string path;
  if (!have_file(state, path)) return;
  for (auto _ : state) {
    graft::io::NamedTensors sd = graft::io::extract_state_dict(graft::io::load_pth(path).root);
    unsigned sum = 0;
    for (const auto& [k, t] : sd) {
      const auto* p = static_cast<const volatile uint8_t*>(t.raw_data());
      for (size_t i = 0; i < t.nbytes(); i += 4096) sum += p[i];
    }
    benchmark::DoNotOptimize(sum);
  }
  state.SetBytesProcessed(
      static_cast<int64_t>(state.iterations() * std::filesystem::file_size(path)));
}

BENCHMARK(ReadFileBytes)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(LoadPth)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(LoadPthTouch)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
