// Zip archives as PyTorch writes them (torch.save since 1.6): a read-only,
// bounds-checked reader over a memory-mapped file, and a writer of stored
// (uncompressed) entries whose data start 64-byte aligned, as torch does.
//
// The reader handles zip64 end records and extra fields (torch writes them for
// files over 4 GiB), stored and deflate entries. Stored entries are returned
// as zero-copy views of the mapping; deflate entries are inflated with zlib,
// with the output bounded by the maximum deflate ratio so no small file can
// make us allocate without limit.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/storage.h"
#include "io/file.h"

namespace graft::io {

struct ZipEntry {
  std::string name;
  uint16_t method = 0;  // 0 stored, 8 deflate
  uint32_t crc32 = 0;
  uint64_t compressed_size = 0;
  uint64_t size = 0;         // uncompressed
  uint64_t data_offset = 0;  // of the (compressed) data in the file
};

class ZipReader {
 public:
  // Parses the central directory; throws graft::Error on any inconsistency.
  explicit ZipReader(MappedFilePtr file);
  static ZipReader open(const std::string& path) { return ZipReader(MappedFile::open(path)); }

  const std::vector<ZipEntry>& entries() const { return entries_; }
  const ZipEntry* find(std::string_view name) const;
  const ZipEntry& at(std::string_view name) const;  // throws naming the entry
  const MappedFilePtr& file() const { return file_; }

  // The entry's bytes: a view of the mapping for stored entries, an inflated
  // copy for deflate ones. With verify_crc the CRC-32 is checked too.
  Storage storage(const ZipEntry& e, bool verify_crc = false) const;
  // The entry's bytes as a string (small metadata records); CRC always checked.
  std::string read(const ZipEntry& e, uint64_t max_size = uint64_t{1} << 32) const;

 private:
  void parse();
  std::string_view raw(const ZipEntry& e) const;
  MappedFilePtr file_;
  std::vector<ZipEntry> entries_;
  std::unordered_map<std::string, size_t> index_;
};

// True when the bytes start like a zip archive (local header or empty archive).
bool looks_like_zip(std::string_view head);

// Streams stored entries to `out`. Data records start on 64-byte boundaries
// (the local header's extra field is padded, like torch's writer), so mapped
// tensors are aligned when read back. Zip64 records are written only when an
// offset or size needs them.
class ZipWriter {
 public:
  explicit ZipWriter(AtomicFileWriter& out) : out_(out) {}
  void add(const std::string& name, const void* data, size_t size);
  void add(const std::string& name, std::string_view data) { add(name, data.data(), data.size()); }
  // Writes the central directory and end records; call once, then commit `out`.
  void finish();

 private:
  struct Record {
    std::string name;
    uint32_t crc;
    uint64_t size, offset;
  };
  AtomicFileWriter& out_;
  std::vector<Record> records_;
  bool finished_ = false;
};

uint32_t crc32_of(const void* data, size_t size);

}  // namespace graft::io
