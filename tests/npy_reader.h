// Minimal .npy reader for test fixtures (little-endian float64/float32/int64/
// int32/bool, C order), used until io/npy.h is available to the tests.
#pragma once

#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include "core/ops.h"

namespace graft::testing {

inline Tensor load_npy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  GRAFT_CHECK(in, "load_npy: cannot open ", path);
  char magic[8];
  in.read(magic, 8);
  GRAFT_CHECK(in && std::string(magic, 6) == "\x93NUMPY", "load_npy: ", path, " is not .npy");
  uint32_t header_len = 0;
  if (magic[6] == 1) {
    uint8_t b[2];
    in.read(reinterpret_cast<char*>(b), 2);
    header_len = b[0] | (b[1] << 8);
  } else {
    uint8_t b[4];
    in.read(reinterpret_cast<char*>(b), 4);
    header_len = b[0] | (b[1] << 8) | (b[2] << 16) | (static_cast<uint32_t>(b[3]) << 24);
  }
  std::string header(header_len, '\0');
  in.read(header.data(), header_len);
  GRAFT_CHECK(in && header.find("'fortran_order': False") != std::string::npos, "load_npy: ", path,
              ": bad or Fortran-ordered header");
  auto field = [&](const std::string& key) {
    const size_t k = header.find("'" + key + "':");
    GRAFT_CHECK(k != std::string::npos, "load_npy: ", path, ": no ", key);
    return k + key.size() + 3;
  };
  size_t d = header.find('\'', field("descr")) + 1;
  const std::string descr = header.substr(d, header.find('\'', d) - d);
  DType dtype;
  if (descr == "<f8")
    dtype = DType::Float64;
  else if (descr == "<f4")
    dtype = DType::Float32;
  else if (descr == "<i8")
    dtype = DType::Int64;
  else if (descr == "<i4")
    dtype = DType::Int32;
  else if (descr == "|b1")
    dtype = DType::Bool;
  else
    GRAFT_FAIL("load_npy: ", path, ": unsupported dtype ", descr);
  size_t s = header.find('(', field("shape")) + 1;
  const size_t e = header.find(')', s);
  Shape shape;
  while (s < e) {
    while (s < e && (header[s] == ' ' || header[s] == ',')) ++s;
    if (s >= e) break;
    size_t used = 0;
    shape.push_back(std::stoll(header.substr(s, e - s), &used));
    s += used;
  }
  std::vector<char> data(static_cast<size_t>(shape_numel(shape)) * itemsize(dtype));
  in.read(data.data(), static_cast<std::streamsize>(data.size()));
  GRAFT_CHECK(in || data.empty(), "load_npy: ", path, " is truncated");
  return from_buffer(data.data(), shape, dtype);
}

}  // namespace graft::testing
