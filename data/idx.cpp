#include "data/idx.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "core/ops.h"

namespace graft::data {

namespace {

// Reads the whole file; zlib's gzread passes non-gzip data through unchanged,
// so plain and compressed IDX files share this path.
std::vector<uint8_t> read_maybe_gz(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  GRAFT_CHECK(f, "read_idx: cannot open ", path, ": ", std::strerror(errno));
  gzbuffer(f, 1 << 16);
  // Read straight into the output's tail, growing it geometrically: no
  // per-call megabyte buffers (small files are read as often as large ones).
  std::vector<uint8_t> out;
  size_t used = 0;
  for (;;) {
    if (out.size() - used < (1 << 16)) out.resize(std::max<size_t>(2 * out.size(), used + (1 << 16)));
    const int n = gzread(f, out.data() + used, static_cast<unsigned>(out.size() - used));
    if (n < 0) {
      int code = 0;
      const std::string msg = gzerror(f, &code);
      gzclose(f);
      GRAFT_FAIL("read_idx: ", path, ": corrupt gzip data (", msg, ")");
    }
    if (n == 0) break;
    used += static_cast<size_t>(n);
  }
  out.resize(used);
  int code = 0;
  const std::string msg = gzerror(f, &code);
  gzclose(f);
  // A gzip stream cut short reads as EOF with Z_BUF_ERROR pending.
  GRAFT_CHECK(code == Z_OK || code == Z_STREAM_END, "read_idx: ", path,
              ": corrupt or truncated gzip data (", msg, ")");
  return out;
}

uint32_t be32(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

}  // namespace

Tensor read_idx(const std::string& path) { return parse_idx(read_maybe_gz(path), path); }

Tensor parse_idx(std::span<const uint8_t> bytes, const std::string& path) {
  GRAFT_CHECK(bytes.size() >= 4, "read_idx: ", path, ": too short for an IDX header (",
              bytes.size(), " bytes)");
  GRAFT_CHECK(bytes[0] == 0 && bytes[1] == 0, "read_idx: ", path,
              ": bad magic (not an IDX file; first bytes must be 0 0)");
  DType dtype;
  switch (bytes[2]) {
    case 0x08:
      dtype = DType::UInt8;
      break;
    case 0x09:
      dtype = DType::Int8;
      break;
    case 0x0B:
      dtype = DType::Int16;
      break;
    case 0x0C:
      dtype = DType::Int32;
      break;
    case 0x0D:
      dtype = DType::Float32;
      break;
    case 0x0E:
      dtype = DType::Float64;
      break;
    default:
      GRAFT_FAIL("read_idx: ", path, ": unknown element type 0x", std::hex, int(bytes[2]));
  }
  const int ndim = bytes[3];
  GRAFT_CHECK(ndim >= 1, "read_idx: ", path, ": zero dimensions in header");
  const size_t header = 4 + 4 * static_cast<size_t>(ndim);
  GRAFT_CHECK(bytes.size() >= header, "read_idx: ", path, ": truncated header (", ndim,
              " dims need ", header, " bytes, file has ", bytes.size(), ")");
  Shape shape(ndim);
  // `extent` is the product with 0-sized dims counted as 1: a 0-element shape
  // can still have strides that overflow.
  uint64_t count = 1, extent = 1;
  for (int d = 0; d < ndim; ++d) {
    const uint32_t s = be32(bytes.data() + 4 + 4 * d);
    GRAFT_CHECK(s <= static_cast<uint32_t>(INT32_MAX), "read_idx: ", path, ": dim ", d,
                " is too large (", s, ")");
    shape[d] = s;
    count *= s;
    extent *= std::max<uint64_t>(s, 1);
    GRAFT_CHECK(extent <= (uint64_t(1) << 40), "read_idx: ", path, ": implausible size ",
                shape_str(shape));
  }
  const size_t isz = itemsize(dtype);
  const uint64_t payload = bytes.size() - header;
  GRAFT_CHECK(payload == count * isz, "read_idx: ", path, ": header says ", shape_str(shape), " (",
              count * isz, " bytes of ", dtype_name(dtype), ") but the file holds ", payload,
              " data bytes", payload < count * isz ? " (truncated)" : " (trailing data)");
  Tensor t = empty(shape, opts(dtype));
  auto* dst = static_cast<uint8_t*>(t.raw_data());
  const uint8_t* src = bytes.data() + header;
  if (count == 0) return t;  // an empty tensor has no buffer to copy into
  if (isz == 1) {
    std::memcpy(dst, src, count);
  } else {
    // IDX is big-endian; graft tensors are host (little-endian) order.
    for (uint64_t i = 0; i < count; ++i)
      for (size_t b = 0; b < isz; ++b) dst[i * isz + b] = src[i * isz + (isz - 1 - b)];
  }
  return t;
}

LabeledImages read_idx_pair(const std::string& images_path, const std::string& labels_path) {
  Tensor images = read_idx(images_path);
  Tensor labels = read_idx(labels_path);
  GRAFT_CHECK(images.dim() == 3 && images.dtype() == DType::UInt8, "read_idx_pair: ", images_path,
              ": expected uint8 images [N, H, W], got ", images.meta_str());
  GRAFT_CHECK(labels.dim() == 1, "read_idx_pair: ", labels_path, ": expected labels [N], got ",
              labels.meta_str());
  GRAFT_CHECK(images.size(0) == labels.size(0), "read_idx_pair: ", images_path, " holds ",
              images.size(0), " images but ", labels_path, " holds ", labels.size(0), " labels");
  Tensor l64 = labels.to(DType::Int64).contiguous();
  const int64_t* l = l64.data_ptr<int64_t>();
  for (int64_t i = 0; i < l64.numel(); ++i)
    GRAFT_CHECK(l[i] >= 0, "read_idx_pair: ", labels_path, ": negative label ", l[i], " at ", i);
  return {images, l64};
}

}  // namespace graft::data
