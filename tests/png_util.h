// A tiny ImageFolder for the CLI tests: one-colour PNGs with a little noise
// (stb_image_write, compiled into each test binary that includes this).
#pragma once

#include "stb_write.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace graft::testing {

// A 24x24 PNG of one colour with a little noise.
inline void write_png(const std::filesystem::path& p, std::array<int, 3> rgb, unsigned seed) {
  std::filesystem::create_directories(p.parent_path());
  std::vector<uint8_t> px(24 * 24 * 3);
  for (size_t i = 0; i < px.size(); ++i) {
    seed = seed * 1103515245u + 12345u;
    px[i] = static_cast<uint8_t>(std::clamp(rgb[i % 3] + static_cast<int>(seed >> 28) - 8, 0, 255));
  }
  ASSERT_TRUE(stbi_write_png(p.string().c_str(), 24, 24, 3, px.data(), 24 * 3));
}

inline const std::map<std::string, std::array<int, 3>> kColours = {
    {"apple", {220, 30, 30}}, {"banana", {30, 220, 30}}, {"cherry", {30, 30, 220}}};

// root/<class>/<i>.png for the three classes of kColours.
inline void write_split(const std::filesystem::path& root, int per_class, unsigned seed) {
  for (const auto& [name, rgb] : kColours)
    for (int i = 0; i < per_class; ++i)
      write_png(root / name / (std::to_string(i) + ".png"), rgb, seed + static_cast<unsigned>(i));
}

}  // namespace graft::testing
