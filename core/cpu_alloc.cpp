// The CPU allocator (core/device.h: cpu_allocator()).
//
// Small blocks come from malloc. Blocks of kLargeBlock and more are mapped
// from the OS and, when freed, kept in a cache and handed out again: the
// smallest cached block that fits a request (best fit). Reuse of any size
// matters for memory: a forward pass frees large activations and then asks for
// smaller ones; exact-size reuse alone kept an inference pass ~25% above
// PyTorch's resident memory, best fit within 2x ~15%, best fit ~3%. A training
// step allocates the same activation and gradient sizes in every step; without
// the cache each of them was a fresh mmap from glibc, paid again every step
// with a page fault per 4 KiB page and the kernel zeroing it (about 190,000
// faults per ResNet18 224² batch-32 step, ~6% of its time). The cache holds at most
// GRAFT_CPU_CACHE_MB (default 4096; 0 turns caching off
// and every block comes from malloc, as under ASan) and is emptied by
// empty_cpu_cache() and before any mapping the OS refuses. (Transparent huge
// pages were tried, madvise(MADV_HUGEPAGE): no gain in a steady step, and
// whole benchmark runs 4x slower when the kernel compacted memory to find
// them right after another large process exited.)
//
// Under AddressSanitizer every block comes from malloc, so its redzones keep
// catching overflows of tensor data.
#include <sys/mman.h>

#include <cstdint>
#include <cstdlib>
#include <map>
#include <mutex>
#include <unordered_map>

#include "core/device.h"
#include "core/env.h"
#include "core/error.h"

#if defined(__SANITIZE_ADDRESS__)
#define GRAFT_CPU_ALLOC_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GRAFT_CPU_ALLOC_ASAN 1
#endif
#endif

namespace graft {

namespace {

constexpr size_t kLargeBlock = size_t{1} << 20;

// Large sizes round up to one of eight steps per power of two (at most 12.5%
// more than asked), so that blocks of nearly equal size share a class.
size_t size_class(size_t nbytes) {
  size_t pow2 = kLargeBlock;
  while (pow2 * 2 <= nbytes) pow2 *= 2;
  const size_t step = pow2 / 8;
  return (nbytes + step - 1) / step * step;
}

void* malloc_block(size_t nbytes) {
  void* p = std::aligned_alloc(64, (nbytes + 63) / 64 * 64);
  if (!p) GRAFT_FAIL("out of CPU memory allocating ", nbytes, " bytes");
  return p;
}

class CpuAllocator final : public Allocator {
 public:
  CpuAllocator() {
#ifndef GRAFT_CPU_ALLOC_ASAN
    const int64_t mb = env_int("GRAFT_CPU_CACHE_MB", 4096);
    GRAFT_CHECK(mb >= 0, "GRAFT_CPU_CACHE_MB must be >= 0, got ", mb);
    cap_ = static_cast<size_t>(mb) << 20;
    // Without a cache, mapping each large block afresh would cost more than
    // malloc, whose heap reuses freed blocks up to its mmap threshold (a demo
    // run took 8x as long): 0 gives the plain malloc allocator.
    large_blocks_ = cap_ > 0;
#endif
  }

  void* allocate(size_t nbytes, int) override {
    if (nbytes == 0) return nullptr;
    if (!large_blocks_ || nbytes < kLargeBlock) return malloc_block(nbytes);
    const size_t size = size_class(nbytes);
    {
      std::lock_guard<std::mutex> lock(mu_);
      // The smallest cached block that fits. A larger block's pages are
      // resident already, so handing it to a smaller tensor costs no memory,
      // while mapping a fresh block would.
      auto it = free_.lower_bound(size);
      if (it != free_.end()) {
        void* p = it->second;
        cached_ -= it->first;
        live_[p] = it->first;
        free_.erase(it);
        return p;
      }
    }
    void* p = map_block(size);
    if (!p) {
      empty_cache();
      p = map_block(size);
    }
    if (!p) GRAFT_FAIL("out of CPU memory allocating ", nbytes, " bytes");
    std::lock_guard<std::mutex> lock(mu_);
    live_[p] = size;
    return p;
  }

  void deallocate(void* ptr, size_t nbytes, int) override {
    if (!ptr) return;
    if (!large_blocks_ || nbytes < kLargeBlock) return std::free(ptr);
    size_t size = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      const auto it = live_.find(ptr);
      GRAFT_CHECK(it != live_.end(), "CPU allocator: freeing a block it did not hand out");
      size = it->second;
      live_.erase(it);
      if (cached_ + size <= cap_) {
        free_.emplace(size, ptr);
        cached_ += size;
        return;
      }
    }
    munmap(ptr, size);
  }

  void empty_cache() {
    std::multimap<size_t, void*> blocks;
    {
      std::lock_guard<std::mutex> lock(mu_);
      blocks.swap(free_);
      cached_ = 0;
    }
    for (const auto& [size, p] : blocks) munmap(p, size);
  }

  size_t cached_bytes() {
    std::lock_guard<std::mutex> lock(mu_);
    return cached_;
  }

 private:
  static void* map_block(size_t size) {
    void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return nullptr;
    return p;
  }

  bool large_blocks_ = false;
  size_t cap_ = 0;
  std::mutex mu_;
  std::multimap<size_t, void*> free_;       // cached blocks by size
  std::unordered_map<void*, size_t> live_;  // handed-out large blocks and their sizes
  size_t cached_ = 0;
};

CpuAllocator& the_cpu_allocator() {
  static CpuAllocator* alloc = new CpuAllocator;  // never destroyed: tensors may outlive statics
  return *alloc;
}

}  // namespace

Allocator* cpu_allocator() { return &the_cpu_allocator(); }

void empty_cpu_cache() { the_cpu_allocator().empty_cache(); }

size_t cpu_cached_bytes() { return the_cpu_allocator().cached_bytes(); }

}  // namespace graft
