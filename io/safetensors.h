// safetensors files (https://github.com/huggingface/safetensors): an 8-byte
// little-endian header length, a JSON header naming each tensor's dtype, shape
// and byte range, then the raw data. Reading maps the file and returns
// zero-copy views; the header is parsed with depth and size limits and every
// range is checked against the data section.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "io/file.h"
#include "io/pth.h"

namespace graft::io {

struct SafetensorsFile {
  NamedTensors tensors;                                       // in header order
  std::vector<std::pair<std::string, std::string>> metadata;  // "__metadata__"
  MappedFilePtr file;
};

SafetensorsFile load_safetensors(const std::string& path);
SafetensorsFile load_safetensors(MappedFilePtr file);

// Writes contiguous copies of the tensors (safetensors has no strides or
// shared storage), atomically.
void save_safetensors(const NamedTensors& tensors, const std::string& path,
                      const std::vector<std::pair<std::string, std::string>>& metadata = {});

// True when the bytes look like a safetensors header ("<u64 length>{").
bool looks_like_safetensors(std::string_view head, uint64_t file_size);

}  // namespace graft::io
