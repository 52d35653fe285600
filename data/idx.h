// IDX files (the MNIST / Fashion-MNIST container): a 4-byte magic
// (0, 0, element type, number of dims), big-endian int32 dims, then the
// big-endian elements. Files ending in .gz (or any gzip data) are inflated
// with zlib on the fly.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "core/tensor.h"

namespace graft::data {

// Reads a whole IDX file into a CPU tensor: UInt8, Int8, Int16, Int32, Float32
// or Float64 by the element-type byte. Throws graft::Error naming the file for
// a bad magic, an unknown type, or data shorter or longer than the header says.
Tensor read_idx(const std::string& path);
// The same for IDX bytes already in memory (not gzip); `name` is used in errors.
Tensor parse_idx(std::span<const uint8_t> bytes, const std::string& name = "<idx>");

// An image file and its label file: images UInt8 [N, H, W], labels Int64 [N].
// Errors when the counts differ or a label is negative.
struct LabeledImages {
  Tensor images;
  Tensor labels;
};
LabeledImages read_idx_pair(const std::string& images_path, const std::string& labels_path);

}  // namespace graft::data
