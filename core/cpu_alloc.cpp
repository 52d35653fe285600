// The CPU allocator (core/device.h: cpu_allocator()).
//
// Small blocks come from malloc. Blocks of kLargeBlock and more are mapped
// from the OS and, when freed, kept in a pool of free pages and handed out
// again. A training step allocates the same activation and gradient sizes in
// every step; without reuse each of them was a fresh mmap from glibc, paid
// again every step with a page fault per 4 KiB page and the kernel zeroing it
// (about 190,000 faults per ResNet18 224² batch-32 step, ~6% of its time).
//
// Physical pages are interchangeable; only a tensor's virtual addresses must
// be contiguous. So the pool is a set of free virtual ranges, and a request is
// served in one of two ways:
//  - the smallest free range that is large enough, split: the request takes
//    its head, the tail stays free (no system call);
//  - when no single range is large enough, a fresh range is mapped and free
//    ranges are moved into it, largest first, with mremap(2). Moving pages
//    moves their page-table entries: no copy, no fault, no zeroing. Only what
//    the pool cannot cover is new memory.
// So the process maps new pages only when the pool is empty (or holds only
// short pieces, below), and its resident memory tracks the peak of live
// tensors. The earlier cache handed out whole cached blocks (best fit, no
// splitting, no moving); a ResNet50 224² batch-16 training step then held
// 1966 MiB in the cache for a peak of 1445 MiB of live tensors, and peaked 12%
// above PyTorch on jemalloc.
//
// mremap moves pages within one kernel mapping (VMA) at a time, so every range
// remembers the lengths of the mappings it is made of (`vmas`). A block
// assembled from several ranges keeps their pieces apart, and pieces are only
// ever split, never joined in our books, so each recorded piece lies inside
// one kernel mapping even where the kernel merges neighbours.
//
// The pool holds at most GRAFT_CPU_CACHE_MB (default 4096; 0 turns it off and
// every block comes from malloc, as under ASan) and is emptied by
// empty_cpu_cache() and before any mapping the OS refuses. (Transparent huge
// pages were tried, madvise(MADV_HUGEPAGE): no gain in a steady step, and
// whole benchmark runs 4x slower when the kernel compacted memory to find
// them right after another large process exited.)
//
// Under AddressSanitizer every block comes from malloc, so its redzones keep
// catching overflows of tensor data.
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

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
constexpr size_t kPage = 4096;
// Splits cut ranges into ever more pieces, each its own kernel mapping (Linux
// allows 65530 per process by default); left alone, a ResNet50 training step
// added ~90 mappings per step for as long as it ran. So pieces shorter than
// kMinPiece are unmapped when they come back to the pool, which then holds at
// most cap / kMinPiece pieces (4096 at the default cap), and a block is
// assembled from at most kMaxPiecesPerBlock pieces (the rest is new memory).
// ResNet50 224² batch 16 then stays under 600 mappings over 30 steps and
// unmaps, and maps again, ~50 MiB per 2.7 s step (up to 2-3% of its time on a
// VM with slow page faults). With 256 KiB it unmapped ~10 MiB per step but
// moved 3x as many pieces and passed 1,300 mappings; keeping every piece until
// the pool held 4096 moved ~1,600 pieces per step after 30 steps, no faster.
constexpr size_t kMinPiece = kLargeBlock;
constexpr size_t kMaxPiecesPerBlock = 64;

void* malloc_block(size_t nbytes) {
  void* p = std::aligned_alloc(64, (nbytes + 63) / 64 * 64);
  if (!p) GRAFT_FAIL("out of CPU memory allocating ", nbytes, " bytes");
  return p;
}

void* map_fresh(size_t size) {
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? nullptr : p;
}

// A contiguous virtual range made of whole kernel mappings or parts of them.
struct Range {
  char* base = nullptr;
  size_t size = 0;
  std::vector<size_t> vmas;  // lengths of its pieces, in address order; sum == size

  // Removes the first n bytes (0 < n < size, a page multiple) and returns them.
  Range take_head(size_t n) {
    Range head{base, n, {}};
    size_t left = n;
    size_t i = 0;
    for (; left > 0; ++i) {
      const size_t piece = std::min(vmas[i], left);
      head.vmas.push_back(piece);
      left -= piece;
      if (piece < vmas[i]) {
        vmas[i] -= piece;
        break;
      }
    }
    vmas.erase(vmas.begin(), vmas.begin() + static_cast<std::ptrdiff_t>(i));
    base += n;
    size -= n;
    return head;
  }
};

class CpuAllocator final : public Allocator {
 public:
  CpuAllocator() {
#ifndef GRAFT_CPU_ALLOC_ASAN
    const int64_t mb = env_int("GRAFT_CPU_CACHE_MB", 4096);
    GRAFT_CHECK(mb >= 0, "GRAFT_CPU_CACHE_MB must be >= 0, got ", mb);
    cap_ = static_cast<size_t>(mb) << 20;
    // Without a pool, mapping each large block afresh would cost more than
    // malloc, whose heap reuses freed blocks up to its mmap threshold (a demo
    // run took 8x as long): 0 gives the plain malloc allocator.
    large_blocks_ = cap_ > 0;
#endif
  }

  void* allocate(size_t nbytes, int) override {
    if (nbytes == 0) return nullptr;
    count_allocated(nbytes);
    if (!large_blocks_ || nbytes < kLargeBlock) return malloc_block(nbytes);
    const size_t size = (nbytes + kPage - 1) / kPage * kPage;
    std::lock_guard<std::mutex> lock(mu_);
    Range block = from_one_range(size);
    if (!block.base) block = assemble(size);
    void* p = block.base;
    live_.emplace(p, std::move(block));
    return p;
  }

  void deallocate(void* ptr, size_t nbytes, int) override {
    if (!ptr) return;
    allocated_.fetch_sub(nbytes, std::memory_order_relaxed);
    if (!large_blocks_ || nbytes < kLargeBlock) return std::free(ptr);
    std::lock_guard<std::mutex> lock(mu_);
    const auto it = live_.find(ptr);
    GRAFT_CHECK(it != live_.end(), "CPU allocator: freeing a block it did not hand out");
    Range block = std::move(it->second);
    live_.erase(it);
    if (cached_ + block.size <= cap_)
      put_free(block);
    else
      munmap(block.base, block.size);
  }

  void empty_cache() {
    std::lock_guard<std::mutex> lock(mu_);
    unmap_free();
  }

  CpuMemoryStats stats() {
    CpuMemoryStats s;
    s.allocated = allocated_.load(std::memory_order_relaxed);
    s.peak_allocated = peak_.load(std::memory_order_relaxed);
    std::lock_guard<std::mutex> lock(mu_);
    s.cached = cached_;
    return s;
  }

  void reset_peak() { peak_.store(allocated_.load(std::memory_order_relaxed)); }

 private:
  void count_allocated(size_t nbytes) {
    const size_t now = allocated_.fetch_add(nbytes, std::memory_order_relaxed) + nbytes;
    size_t peak = peak_.load(std::memory_order_relaxed);
    while (now > peak && !peak_.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
    }
  }

  // Pools r's pieces of kMinPiece and more, as one range per run of them, and
  // unmaps the shorter ones.
  void put_free(const Range& r) {
    Range run{r.base, 0, {}};
    for (const size_t piece : r.vmas) {
      char* const at = run.base + run.size;
      if (piece >= kMinPiece) {
        run.vmas.push_back(piece);
        run.size += piece;
        continue;
      }
      pool(std::move(run));
      munmap(at, piece);
      run = Range{at + piece, 0, {}};
    }
    pool(std::move(run));
  }

  void pool(Range r) {
    if (r.size == 0) return;
    cached_ += r.size;
    const size_t size = r.size;
    free_.emplace(size, std::move(r));
  }

  void unmap_free() {
    for (const auto& [size, r] : free_) munmap(r.base, size);
    free_.clear();
    cached_ = 0;
  }

  Range take_free(std::multimap<size_t, Range>::iterator it) {
    Range r = std::move(it->second);
    free_.erase(it);
    cached_ -= r.size;
    return r;
  }

  // The head of the smallest free range of at least `size` bytes, or an empty
  // Range when none is that large.
  Range from_one_range(size_t size) {
    const auto it = free_.lower_bound(size);
    if (it == free_.end()) return {};
    Range r = take_free(it);
    if (r.size == size) return r;
    Range head = r.take_head(size);
    put_free(r);
    return head;
  }

  // A fresh mapping of `size` bytes into which free ranges are moved, largest
  // first, until it is covered or the pool is empty; the rest is new memory.
  Range assemble(size_t size) {
    char* base = static_cast<char*>(map_fresh(size));
    if (!base) {
      unmap_free();
      base = static_cast<char*>(map_fresh(size));
    }
    if (!base) GRAFT_FAIL("out of CPU memory allocating ", size, " bytes");
    Range out{base, size, {}};
    size_t filled = 0;
    while (filled < size && !free_.empty() && out.vmas.size() < kMaxPiecesPerBlock) {
      Range r = take_free(std::prev(free_.end()));
      if (r.size > size - filled) {
        Range head = r.take_head(size - filled);
        put_free(r);
        r = std::move(head);
      }
      for (const size_t piece : r.vmas) {
        move_pages(r.base, piece, base + filled);
        out.vmas.push_back(piece);
        r.base += piece;
        filled += piece;
      }
    }
    if (filled < size) out.vmas.push_back(size - filled);
    return out;
  }

  // Moves the pages of [from, from + n), which lie in one kernel mapping, to
  // dst, replacing the fresh pages there. Should the kernel refuse (out of
  // mappings), the free pages are dropped and dst is fresh memory again.
  static void move_pages(char* from, size_t n, char* dst) {
    if (mremap(from, n, n, MREMAP_MAYMOVE | MREMAP_FIXED, dst) != MAP_FAILED) return;
    munmap(from, n);
    void* p = mmap(dst, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    GRAFT_CHECK(p == dst, "CPU allocator: could not map memory at a fixed address");
  }

  bool large_blocks_ = false;
  size_t cap_ = 0;
  std::mutex mu_;
  std::multimap<size_t, Range> free_;      // free ranges by size
  std::unordered_map<void*, Range> live_;  // handed-out large blocks
  size_t cached_ = 0;                      // bytes in free_
  std::atomic<size_t> allocated_{0};       // bytes asked for by blocks now handed out
  std::atomic<size_t> peak_{0};            // high-water mark of allocated_
};

CpuAllocator& the_cpu_allocator() {
  static CpuAllocator* alloc = new CpuAllocator;  // never destroyed: tensors may outlive statics
  return *alloc;
}

}  // namespace

Allocator* cpu_allocator() { return &the_cpu_allocator(); }

void empty_cpu_cache() { the_cpu_allocator().empty_cache(); }

CpuMemoryStats cpu_memory_stats() { return the_cpu_allocator().stats(); }

void reset_cpu_peak_stats() { the_cpu_allocator().reset_peak(); }

}  // namespace graft
