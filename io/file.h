// Low-level file access shared by the checkpoint readers and writers:
// a read-only memory map (so tensors can view file bytes without copying)
// and an atomic writer (temp file + fsync + rename, so a crash mid-save never
// leaves a half-written checkpoint under the final name).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/storage.h"

namespace graft::io {

// A whole file mapped copy-on-write (MAP_PRIVATE, PROT_READ|PROT_WRITE): tensors
// that view it may be modified in place without touching the file.
class MappedFile {
 public:
  static std::shared_ptr<MappedFile> open(const std::string& path);
  // Wraps bytes already in memory (tests, fuzzers); the bytes are copied.
  static std::shared_ptr<MappedFile> from_bytes(std::string_view bytes, std::string name = "<memory>");
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  uint8_t* mutable_data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }
  std::string_view bytes() const { return {reinterpret_cast<const char*>(data_), size_}; }

 private:
  MappedFile() = default;
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
  bool mapped_ = false;
  std::vector<uint64_t> owned_;  // from_bytes: 8-byte aligned copy
  std::string path_;
};
using MappedFilePtr = std::shared_ptr<MappedFile>;

// A CPU Storage viewing [offset, offset+nbytes) of `file`; keeps the mapping alive.
Storage storage_view(const MappedFilePtr& file, size_t offset, size_t nbytes);

// Buffered sequential writer to a temporary file next to `path`; commit()
// flushes, fsyncs and renames it over `path`. Destroying an uncommitted
// writer removes the temporary file.
class AtomicFileWriter {
 public:
  explicit AtomicFileWriter(std::string path);
  ~AtomicFileWriter();
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  void write(const void* data, size_t n);
  void write(std::string_view s) { write(s.data(), s.size()); }
  uint64_t position() const { return pos_; }
  void commit();

 private:
  void flush();
  void write_raw(const char* p, size_t n);
  std::string path_, tmp_path_;
  int fd_ = -1;
  std::string buf_;
  uint64_t pos_ = 0;
  bool committed_ = false;
};

// Little-endian integer helpers (all formats here are little-endian).
inline uint16_t rd_u16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
inline uint32_t rd_u32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
         (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
}
inline uint64_t rd_u64(const uint8_t* p) {
  return static_cast<uint64_t>(rd_u32(p)) | (static_cast<uint64_t>(rd_u32(p + 4)) << 32);
}
inline void put_u16(std::string& s, uint16_t v) {
  s.push_back(static_cast<char>(v & 0xff));
  s.push_back(static_cast<char>(v >> 8));
}
inline void put_u32(std::string& s, uint32_t v) {
  for (int i = 0; i < 4; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
inline void put_u64(std::string& s, uint64_t v) {
  for (int i = 0; i < 8; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

// Multiplies non-negative sizes, failing (instead of wrapping) past `limit`.
bool checked_mul(uint64_t a, uint64_t b, uint64_t limit, uint64_t* out);

}  // namespace graft::io
