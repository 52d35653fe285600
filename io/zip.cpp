#include "io/zip.h"

#include <zlib.h>

#include <algorithm>
#include <cstring>

#include "core/error.h"

namespace graft::io {
namespace {

constexpr uint32_t kLocalSig = 0x04034b50, kCentralSig = 0x02014b50, kEocdSig = 0x06054b50,
                   kEocd64Sig = 0x06064b50, kLocator64Sig = 0x07064b50;
constexpr size_t kLocalLen = 30, kCentralLen = 46, kEocdLen = 22, kEocd64Len = 56,
                 kLocator64Len = 20;
constexpr uint32_t kMax32 = 0xffffffffu;
constexpr uint16_t kDosDate = (0 << 9) | (1 << 5) | 1;  // 1980-01-01: deterministic archives

}  // namespace

uint32_t crc32_of(const void* data, size_t size) {
  return static_cast<uint32_t>(::crc32_z(0, static_cast<const Bytef*>(data), size));
}

bool looks_like_zip(std::string_view head) {
  return head.size() >= 4 && (rd_u32(reinterpret_cast<const uint8_t*>(head.data())) == kLocalSig ||
                              rd_u32(reinterpret_cast<const uint8_t*>(head.data())) == kEocdSig);
}

ZipReader::ZipReader(MappedFilePtr file) : file_(std::move(file)) { parse(); }

void ZipReader::parse() {
  const uint8_t* d = file_->data();
  const uint64_t n = file_->size();
  const std::string& name = file_->path();
  GRAFT_CHECK(n >= kEocdLen, name, ": not a zip archive (file too small)");
  // The end record sits in the last 22 + 65535 (comment) bytes; scan backwards.
  uint64_t eocd = UINT64_MAX;
  uint64_t lowest = n >= kEocdLen + 65535 ? n - kEocdLen - 65535 : 0;
  for (uint64_t p = n - kEocdLen + 1; p-- > lowest;) {
    if (rd_u32(d + p) == kEocdSig && p + kEocdLen + rd_u16(d + p + 20) <= n) {
      eocd = p;
      break;
    }
  }
  GRAFT_CHECK(eocd != UINT64_MAX, name, ": not a zip archive (no end of central directory record)");
  uint64_t count = rd_u16(d + eocd + 10), cd_size = rd_u32(d + eocd + 12),
           cd_offset = rd_u32(d + eocd + 16);
  GRAFT_CHECK(rd_u16(d + eocd + 4) == 0 && rd_u16(d + eocd + 6) == 0, name,
              ": multi-disk zip archives are not supported");
  if (count == 0xffff || cd_size == kMax32 || cd_offset == kMax32) {
    // Zip64: the locator precedes the end record and points at the zip64 end record.
    GRAFT_CHECK(eocd >= kLocator64Len && rd_u32(d + eocd - kLocator64Len) == kLocator64Sig, name,
                ": zip64 end of central directory locator missing");
    uint64_t e64 = rd_u64(d + eocd - kLocator64Len + 8);
    GRAFT_CHECK(n >= kEocd64Len && e64 <= n - kEocd64Len && rd_u32(d + e64) == kEocd64Sig, name,
                ": bad zip64 end of central directory record");
    count = rd_u64(d + e64 + 32);
    cd_size = rd_u64(d + e64 + 40);
    cd_offset = rd_u64(d + e64 + 48);
  }
  GRAFT_CHECK(cd_offset <= n && cd_size <= n - cd_offset, name,
              ": central directory lies outside the file (offset ", cd_offset, ", size ", cd_size,
              ", file ", n, " bytes)");
  GRAFT_CHECK(count <= cd_size / kCentralLen, name, ": central directory claims ", count,
              " entries in ", cd_size, " bytes");
  entries_.reserve(count);
  uint64_t p = cd_offset, end = cd_offset + cd_size;
  for (uint64_t i = 0; i < count; ++i) {
    GRAFT_CHECK(end - p >= kCentralLen && rd_u32(d + p) == kCentralSig, name,
                ": corrupt central directory at entry ", i);
    const uint8_t* c = d + p;
    ZipEntry e;
    uint16_t flags = rd_u16(c + 8);
    e.method = rd_u16(c + 10);
    e.crc32 = rd_u32(c + 16);
    e.compressed_size = rd_u32(c + 20);
    e.size = rd_u32(c + 24);
    uint64_t name_len = rd_u16(c + 28), extra_len = rd_u16(c + 30), comment_len = rd_u16(c + 32);
    uint64_t local = rd_u32(c + 42);
    GRAFT_CHECK(end - p - kCentralLen >= name_len + extra_len + comment_len, name,
                ": central directory entry ", i, " overruns the directory");
    e.name.assign(reinterpret_cast<const char*>(c + kCentralLen), name_len);
    // Zip64 extended information: only the fields saturated above are present, in order.
    const uint8_t* x = c + kCentralLen + name_len;
    for (uint64_t q = 0; q + 4 <= extra_len;) {
      uint16_t id = rd_u16(x + q), len = rd_u16(x + q + 2);
      GRAFT_CHECK(q + 4 + len <= extra_len, name, ": corrupt extra field in entry '", e.name, "'");
      if (id == 0x0001) {
        const uint8_t* f = x + q + 4;
        uint64_t left = len;
        auto take = [&](uint64_t& v) {
          if (v != kMax32) return;
          GRAFT_CHECK(left >= 8, name, ": short zip64 extra field in entry '", e.name, "'");
          v = rd_u64(f);
          f += 8;
          left -= 8;
        };
        take(e.size);
        take(e.compressed_size);
        take(local);
      }
      q += 4 + len;
    }
    GRAFT_CHECK(!(flags & 1), name, ": entry '", e.name, "' is encrypted");
    GRAFT_CHECK(e.method == 0 || e.method == 8, name, ": entry '", e.name,
                "' uses unsupported compression method ", e.method);
    GRAFT_CHECK(e.method != 0 || e.compressed_size == e.size, name, ": stored entry '", e.name,
                "' has different compressed and uncompressed sizes");
    // Deflate cannot expand by more than ~1032:1; a larger claim is a zip bomb or corrupt.
    GRAFT_CHECK(e.method != 8 || e.size / 1032 <= e.compressed_size + 1, name, ": entry '", e.name,
                "' claims an impossible compression ratio");
    GRAFT_CHECK(n >= kLocalLen && local <= n - kLocalLen && rd_u32(d + local) == kLocalSig, name,
                ": bad local header for entry '", e.name, "'");
    uint64_t data = local + kLocalLen + rd_u16(d + local + 26) + rd_u16(d + local + 28);
    GRAFT_CHECK(data <= n && e.compressed_size <= n - data, name, ": data of entry '", e.name,
                "' (", e.compressed_size, " bytes) runs past the end of the file");
    e.data_offset = data;
    GRAFT_CHECK(index_.emplace(e.name, entries_.size()).second, name, ": duplicate entry '", e.name,
                "'");
    entries_.push_back(std::move(e));
    p += kCentralLen + name_len + extra_len + comment_len;
  }
}

const ZipEntry* ZipReader::find(std::string_view name) const {
  auto it = index_.find(std::string(name));
  return it == index_.end() ? nullptr : &entries_[it->second];
}

const ZipEntry& ZipReader::at(std::string_view name) const {
  const ZipEntry* e = find(name);
  GRAFT_CHECK(e, file_->path(), ": archive has no entry '", name, "'");
  return *e;
}

std::string_view ZipReader::raw(const ZipEntry& e) const {
  return file_->bytes().substr(e.data_offset, e.compressed_size);
}

static void inflate_into(std::string_view in, uint8_t* out, uint64_t size,
                         const std::string& what) {
  z_stream zs{};
  GRAFT_CHECK(inflateInit2(&zs, -MAX_WBITS) == Z_OK, what, ": zlib init failed");
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.next_out = out;
  uint64_t in_left = in.size(), out_left = size;
  int rc = Z_OK;
  while (rc == Z_OK) {
    uInt ci = static_cast<uInt>(std::min<uint64_t>(in_left, 1u << 30));
    uInt co = static_cast<uInt>(std::min<uint64_t>(out_left, 1u << 30));
    zs.avail_in = ci;
    zs.avail_out = co;
    rc = inflate(&zs, Z_NO_FLUSH);
    in_left -= ci - zs.avail_in;
    out_left -= co - zs.avail_out;
    if (rc == Z_OK && ci == zs.avail_in && co == zs.avail_out) rc = Z_BUF_ERROR;  // no progress
  }
  inflateEnd(&zs);
  GRAFT_CHECK(rc == Z_STREAM_END && out_left == 0, what, ": corrupt deflate data");
}

Storage ZipReader::storage(const ZipEntry& e, bool verify_crc) const {
  std::string what = file_->path() + ":" + e.name;
  Storage s;
  if (e.method == 0) {
    s = storage_view(file_, e.data_offset, e.size);
  } else {
    s = std::make_shared<StorageImpl>(e.size, Device::cpu());
    inflate_into(raw(e), static_cast<uint8_t*>(s->data()), e.size, what);
    verify_crc = true;  // already paid for the pass over the data
  }
  if (verify_crc)
    GRAFT_CHECK(crc32_of(s->data(), e.size) == e.crc32, what, ": CRC-32 mismatch (corrupt file)");
  return s;
}

std::string ZipReader::read(const ZipEntry& e, uint64_t max_size) const {
  std::string what = file_->path() + ":" + e.name;
  GRAFT_CHECK(e.size <= max_size, what, ": record of ", e.size, " bytes exceeds the limit of ",
              max_size);
  std::string out;
  if (e.method == 0) {
    out.assign(raw(e));
  } else {
    out.resize(e.size);
    inflate_into(raw(e), reinterpret_cast<uint8_t*>(out.data()), e.size, what);
  }
  GRAFT_CHECK(crc32_of(out.data(), out.size()) == e.crc32, what,
              ": CRC-32 mismatch (corrupt file)");
  return out;
}

void ZipWriter::add(const std::string& name, const void* data, size_t size) {
  GRAFT_CHECK(!finished_, "ZipWriter: add after finish");
  GRAFT_CHECK(name.size() < 0xffff, "ZipWriter: entry name too long");
  Record r{name, crc32_of(data, size), size, out_.position()};
  bool z64 = size >= kMax32;
  std::string h;
  put_u32(h, kLocalSig);
  put_u16(h, z64 ? 45 : 20);  // version needed
  put_u16(h, 0);              // flags
  put_u16(h, 0);              // stored
  put_u16(h, 0);              // time
  put_u16(h, kDosDate);
  put_u32(h, r.crc);
  put_u32(h, z64 ? kMax32 : static_cast<uint32_t>(size));
  put_u32(h, z64 ? kMax32 : static_cast<uint32_t>(size));
  std::string extra;
  if (z64) {
    put_u16(extra, 0x0001);
    put_u16(extra, 16);
    put_u64(extra, size);
    put_u64(extra, size);
  }
  // Pad with a private extra field ("FB", as torch does) so the data starts on a
  // 64-byte boundary.
  uint64_t before = r.offset + kLocalLen + name.size() + extra.size() + 4;
  uint64_t pad = (64 - before % 64) % 64;
  put_u16(extra, 0x4246);
  put_u16(extra, static_cast<uint16_t>(pad));
  extra.append(pad, 'Z');
  put_u16(h, static_cast<uint16_t>(name.size()));
  put_u16(h, static_cast<uint16_t>(extra.size()));
  h += name;
  h += extra;
  out_.write(h);
  out_.write(data, size);
  records_.push_back(std::move(r));
}

void ZipWriter::finish() {
  GRAFT_CHECK(!finished_, "ZipWriter: finish called twice");
  finished_ = true;
  uint64_t cd_offset = out_.position();
  std::string cd;
  for (const Record& r : records_) {
    bool z64 = r.size >= kMax32 || r.offset >= kMax32;
    std::string extra;
    if (z64) {
      put_u16(extra, 0x0001);
      put_u16(extra, 24);
      put_u64(extra, r.size);
      put_u64(extra, r.size);
      put_u64(extra, r.offset);
    }
    put_u32(cd, kCentralSig);
    put_u16(cd, z64 ? 45 : 20);  // version made by
    put_u16(cd, z64 ? 45 : 20);  // version needed
    put_u16(cd, 0);
    put_u16(cd, 0);
    put_u16(cd, 0);
    put_u16(cd, kDosDate);
    put_u32(cd, r.crc);
    put_u32(cd, z64 ? kMax32 : static_cast<uint32_t>(r.size));
    put_u32(cd, z64 ? kMax32 : static_cast<uint32_t>(r.size));
    put_u16(cd, static_cast<uint16_t>(r.name.size()));
    put_u16(cd, static_cast<uint16_t>(extra.size()));
    put_u16(cd, 0);  // comment
    put_u16(cd, 0);  // disk
    put_u16(cd, 0);  // internal attributes
    put_u32(cd, 0);  // external attributes
    put_u32(cd, z64 ? kMax32 : static_cast<uint32_t>(r.offset));
    cd += r.name;
    cd += extra;
  }
  out_.write(cd);
  uint64_t cd_size = cd.size(), count = records_.size();
  std::string end;
  bool z64 = cd_offset >= kMax32 || count >= 0xffff || cd_size >= kMax32;
  if (z64) {
    uint64_t e64 = out_.position();
    put_u32(end, kEocd64Sig);
    put_u64(end, kEocd64Len - 12);
    put_u16(end, 45);
    put_u16(end, 45);
    put_u32(end, 0);
    put_u32(end, 0);
    put_u64(end, count);
    put_u64(end, count);
    put_u64(end, cd_size);
    put_u64(end, cd_offset);
    put_u32(end, kLocator64Sig);
    put_u32(end, 0);
    put_u64(end, e64);
    put_u32(end, 1);
  }
  put_u32(end, kEocdSig);
  put_u16(end, 0);
  put_u16(end, 0);
  put_u16(end, z64 ? 0xffff : static_cast<uint16_t>(count));
  put_u16(end, z64 ? 0xffff : static_cast<uint16_t>(count));
  put_u32(end, z64 ? kMax32 : static_cast<uint32_t>(cd_size));
  put_u32(end, z64 ? kMax32 : static_cast<uint32_t>(cd_offset));
  put_u16(end, 0);
  out_.write(end);
}

}  // namespace graft::io
