#include "io/file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/error.h"

namespace graft::io {

std::shared_ptr<MappedFile> MappedFile::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  GRAFT_CHECK(fd >= 0, "cannot open ", path, ": ", std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    GRAFT_FAIL("cannot read ", path, ": not a regular file");
  }
  std::shared_ptr<MappedFile> f(new MappedFile());
  f->path_ = path;
  f->size_ = static_cast<size_t>(st.st_size);
  if (f->size_ > 0) {
    // Private and writable: pages are shared with the page cache until a
    // tensor viewing them is modified in place, which then copies the page.
    void* p = ::mmap(nullptr, f->size_, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      int e = errno;
      ::close(fd);
      GRAFT_FAIL("cannot map ", path, ": ", std::strerror(e));
    }
    f->data_ = static_cast<uint8_t*>(p);
    f->mapped_ = true;
  }
  ::close(fd);
  return f;
}

std::shared_ptr<MappedFile> MappedFile::from_bytes(std::string_view bytes, std::string name) {
  std::shared_ptr<MappedFile> f(new MappedFile());
  f->path_ = std::move(name);
  f->size_ = bytes.size();
  // uint64_t words: element views of the copy are aligned for every dtype.
  f->owned_.resize(bytes.size() / 8 + 1);
  f->data_ = reinterpret_cast<uint8_t*>(f->owned_.data());
  if (!bytes.empty()) std::memcpy(f->data_, bytes.data(), bytes.size());
  return f;
}

MappedFile::~MappedFile() {
  if (mapped_) ::munmap(data_, size_);
}

Storage storage_view(const MappedFilePtr& file, size_t offset, size_t nbytes) {
  GRAFT_CHECK(offset <= file->size() && nbytes <= file->size() - offset, file->path(),
              ": storage of ", nbytes, " bytes at offset ", offset, " exceeds the file size ",
              file->size());
  MappedFilePtr keep = file;
  return std::make_shared<StorageImpl>(file->mutable_data() + offset, nbytes, Device::cpu(),
                                       [keep](void*) mutable { keep.reset(); });
}

bool checked_mul(uint64_t a, uint64_t b, uint64_t limit, uint64_t* out) {
  if (a != 0 && b > limit / a) return false;
  *out = a * b;
  return *out <= limit;
}

AtomicFileWriter::AtomicFileWriter(std::string path) : path_(std::move(path)) {
  tmp_path_ = path_ + ".tmp.XXXXXX";
  fd_ = ::mkstemp(tmp_path_.data());
  GRAFT_CHECK(fd_ >= 0, "cannot create a temporary file next to ", path_, ": ",
              std::strerror(errno));
  ::fchmod(fd_, 0644);
  buf_.reserve(1 << 20);
}

AtomicFileWriter::~AtomicFileWriter() {
  if (!committed_) {
    if (fd_ >= 0) ::close(fd_);
    ::unlink(tmp_path_.c_str());
  }
}

void AtomicFileWriter::write_raw(const char* p, size_t len) {
  size_t done = 0;
  while (done < len) {
    ssize_t n = ::write(fd_, p + done, len - done);
    if (n < 0 && errno == EINTR) continue;
    GRAFT_CHECK(n > 0, "write to ", tmp_path_, " failed: ", std::strerror(errno));
    done += static_cast<size_t>(n);
  }
}

void AtomicFileWriter::flush() {
  write_raw(buf_.data(), buf_.size());
  buf_.clear();
}

void AtomicFileWriter::write(const void* data, size_t n) {
  pos_ += n;
  if (buf_.size() + n > (1u << 20)) flush();
  if (n >= (1u << 20)) {  // large blocks (tensor data) go straight to the file
    write_raw(static_cast<const char*>(data), n);
    return;
  }
  buf_.append(static_cast<const char*>(data), n);
}

void AtomicFileWriter::commit() {
  GRAFT_CHECK(!committed_, "AtomicFileWriter: already committed");
  flush();
  GRAFT_CHECK(::fsync(fd_) == 0, "fsync ", tmp_path_, " failed: ", std::strerror(errno));
  GRAFT_CHECK(::close(fd_) == 0, "close ", tmp_path_, " failed: ", std::strerror(errno));
  fd_ = -1;
  GRAFT_CHECK(::rename(tmp_path_.c_str(), path_.c_str()) == 0, "rename ", tmp_path_, " -> ", path_,
              " failed: ", std::strerror(errno));
  committed_ = true;
  // Make the rename itself durable.
  const std::filesystem::path parent = std::filesystem::path(path_).parent_path();
  const std::string dir = parent.empty() ? std::string(".") : parent.string();
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

}  // namespace graft::io
