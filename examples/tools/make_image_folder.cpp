// Writes a small ImageFolder for the examples' CI run:
// ROOT/{train,val}/<class>/<i>.png, with each class a different dominant
// colour plus per-pixel noise, so a classifier can learn it in a few epochs.
//
//   make_image_folder ROOT [classes=3] [train per class=12] [val per class=6] [size=32]
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: make_image_folder ROOT [classes] [train] [val] [size]\n");
    return 2;
  }
  const std::filesystem::path root = argv[1];
  const int classes = argc > 2 ? std::stoi(argv[2]) : 3;
  const int counts[2] = {argc > 3 ? std::stoi(argv[3]) : 12, argc > 4 ? std::stoi(argv[4]) : 6};
  const int size = argc > 5 ? std::stoi(argv[5]) : 32;
  const char* splits[2] = {"train", "val"};
  std::mt19937 rng(0);
  std::uniform_int_distribution<int> noise(0, 60);
  std::vector<uint8_t> px(static_cast<size_t>(size) * size * 3);
  for (int s = 0; s < 2; ++s) {
    for (int c = 0; c < classes; ++c) {
      const auto dir = root / splits[s] / ("class" + std::to_string(c));
      std::filesystem::create_directories(dir);
      for (int i = 0; i < counts[s]; ++i) {
        for (size_t p = 0; p < px.size(); ++p)  // channel c % 3 bright, the others dark
          px[p] = static_cast<uint8_t>((static_cast<int>(p % 3) == c % 3 ? 170 : 30) + noise(rng));
        const auto file = dir / (std::to_string(i) + ".png");
        if (!stbi_write_png(file.c_str(), size, size, 3, px.data(), size * 3)) {
          std::fprintf(stderr, "make_image_folder: cannot write %s\n", file.c_str());
          return 1;
        }
      }
    }
  }
  return 0;
}
