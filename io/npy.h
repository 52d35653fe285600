// NumPy .npy files (format versions 1.0, 2.0 and 3.0).
//
// Reading accepts little-endian (or byte-order-free) bool, uint8, int8, int16,
// int32, int64, float16, float32 and float64 arrays, in C or Fortran order; a
// Fortran-order array becomes a tensor with column-major strides (no copy of
// the layout). Everything in the file is validated: magic, header syntax,
// shape overflow, and that the data is not truncated.
#pragma once

#include <string>
#include <string_view>

#include "core/tensor.h"

namespace graft::io {

Tensor load_npy(const std::string& path);
// Parses .npy bytes held in memory; `name` is used in error messages.
Tensor parse_npy(std::string_view bytes, const std::string& name = "<npy>");

// Writes `t` (any device and layout; stored C-contiguous) as a version 1.0
// file (2.0 when the header needs it), atomically. bfloat16 has no NumPy
// type and is rejected.
void save_npy(const std::string& path, const Tensor& t);
std::string npy_bytes(const Tensor& t);

// NumPy type string ("<f4", "|b1", ...) for a dtype; throws for bfloat16.
std::string npy_descr(DType dtype);

}  // namespace graft::io
