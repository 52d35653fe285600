// Loader throughput: images/s for decode + RandomResizedCrop(224) +
// RandomHorizontalFlip + ToTensor + Normalize through DataLoader, on a folder
// of JPEGs (benchmarks/gen_jpegs.py). Also times bare JPEG decoding with
// libjpeg-turbo vs stb_image on one thread.
//
//   bench_loader [folder] [--workers N] [--batch B] [--epochs E]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "data/dataset.h"
#include "data/image.h"
#include "data/loader.h"

using namespace graft::data;
using Clock = std::chrono::steady_clock;

namespace {
double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

double decode_rate(const ImageFolder& ds, bool stb) {
  set_prefer_stb_jpeg(stb);
  std::vector<std::vector<uint8_t>> files;
  for (const auto& s : ds.samples()) files.push_back(read_file_bytes(s.first));
  const auto t0 = Clock::now();
  int64_t pixels = 0;
  for (const auto& f : files) pixels += decode_image(f).height;
  const double dt = seconds_since(t0);
  set_prefer_stb_jpeg(false);
  return pixels > 0 ? static_cast<double>(files.size()) / dt : 0.0;
}
}  // namespace

int main(int argc, char** argv) {
  std::string root = "benchmarks/data/jpegs";
  int workers = 2, epochs = 3;
  int64_t batch = 32;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--workers" && i + 1 < argc)
      workers = std::atoi(argv[++i]);
    else if (a == "--batch" && i + 1 < argc)
      batch = std::atoll(argv[++i]);
    else if (a == "--epochs" && i + 1 < argc)
      epochs = std::atoi(argv[++i]);
    else if (a.rfind("--", 0) != 0)
      root = a;
    else {
      std::fprintf(stderr, "usage: %s [folder] [--workers N] [--batch B] [--epochs E]\n", argv[0]);
      return 2;
    }
  }
  try {
    ImageFolder::Options o;
    o.transform = imagenet_train_transform(224);
    auto ds = std::make_shared<ImageFolder>(root, o);
    std::printf("graft: %lld images in %s, %d workers, batch %lld, JPEG decoder %s\n",
                static_cast<long long>(ds->size()), root.c_str(), workers,
                static_cast<long long>(batch), jpeg_decoder_name());
    std::printf("decode only, 1 thread: libjpeg-turbo %.1f img/s, stb_image %.1f img/s\n",
                decode_rate(*ds, false), decode_rate(*ds, true));
    DataLoader dl(ds, {.batch_size = batch, .shuffle = true, .num_workers = workers, .seed = 0});
    for (Batch& b : dl) (void)b;  // warm-up epoch (page cache, allocator)
    const auto t0 = Clock::now();
    int64_t n = 0;
    for (int e = 0; e < epochs; ++e)
      for (Batch& b : dl) n += b.images.size(0);
    const double rate = static_cast<double>(n) / seconds_since(t0);
    std::printf("graft loader: %.1f images/s\n", rate);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_loader: %s\n", e.what());
    return 1;
  }
  return 0;
}
