// Runs the blocks of an emulated kernel launch. Blocks are spread over worker
// threads; a block's threads are fibers (Boost.Context fcontext) on one worker,
// run in turn until each finishes or waits at a barrier or warp shuffle. When
// every live thread waits at __syncthreads (or every lane of a shuffle's mask
// has deposited its value), they are released together. Anything else that
// stops progress (a thread exited while others wait at a barrier, lanes of a
// full-mask shuffle missing) is a synccheck error naming the kernel and block.
//
// GRAFT_EMU_SCHEDULE=random:SEED runs the runnable fibers of each pass in a
// random order (default: thread order). GRAFT_EMU_THREADS=N sets the workers.
//
// racecheck (-DGRAFT_SANITIZE=thread, which defines GRAFT_EMU_RACECHECK):
// every fiber is a ThreadSanitizer fiber and every switch is made with
// __tsan_switch_to_fiber_no_sync, so running one emulated thread after another
// on the same worker orders nothing. The only happens-before edges are CUDA's:
//   - block start: the worker releases `block_start`, each fiber acquires it
//     when it first runs (the launch's arguments and everything the host did
//     before the launch);
//   - __syncthreads: each thread releases the barrier's sync object on
//     arrival and acquires it when the barrier opens, so all accesses before
//     the barrier happen before all accesses after it, and accesses between
//     two barriers are unordered. The objects alternate by barrier count: a
//     thread that passed barrier k may arrive at k+1 before another has
//     acquired k, and must not publish its new accesses to it;
//   - warp shuffles, votes and __syncwarp: the same, per warp, alternating by
//     the warp's exchange generation (the lanes of a warp exchange in lockstep);
//   - block end: each finished fiber releases `block_end`, the worker acquires
//     it (so the next block on this worker, which reuses the same
//     `static thread_local` shared memory, is ordered after this one).
// ThreadSanitizer then reports two emulated threads of a block that touch the
// same shared (or global) address, at least one writing, in the same barrier
// interval, and racecheck_on_report below (called by the __tsan_on_report hook
// in kernels/cuda/emu/hook/) names the kernel, block and thread. This file
// itself is compiled without -fsanitize=thread: the scheduler's bookkeeping is
// shared with the fibers by construction (they never run at the same time).
#include <sys/mman.h>
#include <boost/context/detail/fcontext.hpp>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "kernels/cuda/emu/block.h"

#if defined(__SANITIZE_ADDRESS__)
#define GRAFT_EMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GRAFT_EMU_ASAN 1
#endif
#endif
#ifdef GRAFT_EMU_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#ifdef GRAFT_EMU_RACECHECK
#include <sanitizer/tsan_interface.h>
#endif

namespace graft::cuda::emu {

namespace ctx = boost::context::detail;

namespace {

// Kernels run on these stacks; ASan's redzones need the larger size.
#ifdef GRAFT_EMU_ASAN
constexpr size_t kStackSize = 256 << 10;
#else
constexpr size_t kStackSize = 128 << 10;
#endif

constexpr size_t kGuard = 4096;

enum class State { Ready, AtBarrier, AtShuffle, Done };

struct Fiber {
  ctx::fcontext_t ctx = nullptr;
  void* stack = nullptr;
  ThreadContext tc;
  State state = State::Ready;
  unsigned shuffle_mask = 0;
  unsigned barriers = 0;  // __syncthreads passed (racecheck: which sync object)
#ifdef GRAFT_EMU_ASAN
  void* fake_stack = nullptr;
#endif
};

std::atomic<unsigned> g_schedule_seed{[] {
  const char* s = std::getenv("GRAFT_EMU_SCHEDULE");
  if (!s || std::strncmp(s, "random", 6) != 0) return 0u;
  const unsigned seed = s[6] == ':' ? static_cast<unsigned>(std::strtoul(s + 7, nullptr, 10)) : 1u;
  return seed == 0 ? 1u : seed;
}()};

struct Worker;
thread_local Worker* t_worker = nullptr;
thread_local ThreadContext* t_current = nullptr;

struct Worker {
  std::vector<void*> stacks;  // pooled: one per thread of the largest block seen
  std::vector<Fiber> fibers;
  std::vector<int> order;
  Fiber* running = nullptr;
  ctx::fcontext_t scheduler = nullptr;
  const Launch* launch = nullptr;
  uint3 block_idx;
  std::string error;
  // Per warp: deposited shuffle bits, double-buffered by generation parity.
  std::vector<uint64_t> warp_bits[2];
  std::vector<int> warp_gen;
  std::mt19937 rng;
  bool random_order = false;
#ifdef GRAFT_EMU_ASAN
  const void* main_stack_bottom = nullptr;
  size_t main_stack_size = 0;
#endif

  unsigned seed_in_use = 0;
#ifdef GRAFT_EMU_RACECHECK
  // ThreadSanitizer contexts: the worker's own, and one fiber per stack slot
  // (reused by the thread of that index in every block this worker runs).
  void* tsan_scheduler = nullptr;
  std::vector<void*> tsan_fibers;
  // Sync objects (their addresses): see the file comment.
  uint64_t block_start = 0, block_end = 0, barrier[2] = {0, 0};
  std::vector<uint64_t> warp_sync;  // 2 per warp
#endif
  ~Worker() {
    for (void* st : stacks) munmap(static_cast<char*>(st) - kGuard, kGuard + kStackSize);
  }

  // Stack i of the pool (its lowest usable byte), with an inaccessible guard
  // page below it so that a kernel overflowing its stack faults at once.
  void* stack(size_t i) {
    while (stacks.size() <= i) {
      void* p = mmap(nullptr, kGuard + kStackSize, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
      if (p == MAP_FAILED || mprotect(p, kGuard, PROT_NONE) != 0) {
        std::fprintf(stderr, "graft emulator: cannot map a fiber stack\n");
        std::abort();
      }
      stacks.push_back(static_cast<char*>(p) + kGuard);
    }
    return stacks[i];
  }

  // Fiber -> scheduler.
  void yield(bool finished) {
    Fiber* f = running;
#ifdef GRAFT_EMU_ASAN
    __sanitizer_start_switch_fiber(finished ? nullptr : &f->fake_stack, main_stack_bottom,
                                   main_stack_size);
#endif
#ifdef GRAFT_EMU_RACECHECK
    __tsan_switch_to_fiber(tsan_scheduler, __tsan_switch_to_fiber_no_sync);
#endif
    ctx::transfer_t t = ctx::jump_fcontext(scheduler, nullptr);
    scheduler = t.fctx;
#ifdef GRAFT_EMU_ASAN
    __sanitizer_finish_switch_fiber(f->fake_stack, &main_stack_bottom, &main_stack_size);
#endif
    (void)finished;
    t_current = &f->tc;
  }

  static void entry(ctx::transfer_t t) {
    Worker* w = t_worker;
    w->scheduler = t.fctx;
#ifdef GRAFT_EMU_ASAN
    __sanitizer_finish_switch_fiber(nullptr, &w->main_stack_bottom, &w->main_stack_size);
#endif
    Fiber* f = static_cast<Fiber*>(t.data);
    t_current = &f->tc;
#ifdef GRAFT_EMU_RACECHECK
    __tsan_acquire(&w->block_start);
#endif
    w->launch->body();
    f->state = State::Done;
#ifdef GRAFT_EMU_RACECHECK
    __tsan_release(&w->block_end);
#endif
    w->yield(true);
    std::abort();  // a finished fiber is never resumed
  }

  // Scheduler -> fiber.
  void resume(Fiber& f) {
    running = &f;
#ifdef GRAFT_EMU_ASAN
    void* save = nullptr;
    __sanitizer_start_switch_fiber(&save, f.stack, kStackSize);
#endif
#ifdef GRAFT_EMU_RACECHECK
    __tsan_switch_to_fiber(tsan_fibers[static_cast<size_t>(&f - fibers.data())],
                           __tsan_switch_to_fiber_no_sync);
#endif
    ctx::transfer_t t = ctx::jump_fcontext(f.ctx, &f);
    f.ctx = t.fctx;
#ifdef GRAFT_EMU_ASAN
    __sanitizer_finish_switch_fiber(save, nullptr, nullptr);
#endif
    running = nullptr;
    t_current = nullptr;
  }

  std::string where() const {
    return std::string("kernel ") + launch->kernel_name + ", block (" +
           std::to_string(block_idx.x) + "," + std::to_string(block_idx.y) + "," +
           std::to_string(block_idx.z) + ")";
  }

  // Runs one block to completion; returns false (with `error` set) on a
  // synccheck failure.
  bool run_block(const Launch& l, uint3 bidx) {
    const unsigned seed = g_schedule_seed.load(std::memory_order_relaxed);
    if (seed != seed_in_use) {
      seed_in_use = seed;
      random_order = seed != 0;
      rng.seed(seed);
    }
    launch = &l;
    block_idx = bidx;
    const unsigned bx = l.block.x, by = l.block.y;
    const size_t n = static_cast<size_t>(l.block.x) * l.block.y * l.block.z;
    const size_t warps = (n + 31) / 32;
    fibers.assign(n, Fiber{});
    order.resize(n);
    for (int k = 0; k < 2; ++k) warp_bits[k].assign(warps * 32, 0);
    warp_gen.assign(warps, 0);
    std::vector<unsigned char> shared(l.dynamic_shared);
    for (size_t i = 0; i < n; ++i) {
      Fiber& f = fibers[i];
      f.tc.thread_idx = {static_cast<unsigned>(i % bx), static_cast<unsigned>((i / bx) % by),
                         static_cast<unsigned>(i / (static_cast<size_t>(bx) * by))};
      f.tc.block_idx = bidx;
      f.tc.block_dim = l.block;
      f.tc.grid_dim = l.grid;
      f.tc.dynamic_shared = shared.data();
      f.stack = stack(i);
      f.ctx = ctx::make_fcontext(static_cast<char*>(f.stack) + kStackSize, kStackSize, &entry);
      order[i] = static_cast<int>(i);
    }
#ifdef GRAFT_EMU_RACECHECK
    tsan_scheduler = __tsan_get_current_fiber();
    while (tsan_fibers.size() < n) tsan_fibers.push_back(__tsan_create_fiber(0));
    warp_sync.assign(warps * 2, 0);
    __tsan_release(&block_start);
#endif
    size_t done = 0;
    for (;;) {
      if (random_order) std::shuffle(order.begin(), order.end(), rng);
      for (int i : order) {
        Fiber& f = fibers[i];
        if (f.state != State::Ready) continue;
        resume(f);
        if (f.state == State::Done) ++done;
        if (!error.empty()) return abandon();
      }
      if (done == n) {
#ifdef GRAFT_EMU_RACECHECK
        __tsan_acquire(&block_end);
#endif
        return true;
      }
      if (!release_warps() && !release_barrier()) return deadlock();
    }
  }

  // Releases every warp whose shuffle participants have all arrived.
  bool release_warps() {
    bool any = false;
    const size_t n = fibers.size();
    for (size_t w = 0; w * 32 < n; ++w) {
      const size_t lanes = std::min<size_t>(32, n - w * 32);
      unsigned waiting = 0, mask = 0;
      for (size_t l = 0; l < lanes; ++l) {
        const Fiber& f = fibers[w * 32 + l];
        if (f.state == State::AtShuffle) {
          waiting |= 1u << l;
          mask = f.shuffle_mask;
        }
      }
      if (!waiting) continue;
      const unsigned existing = lanes == 32 ? 0xffffffffu : ((1u << lanes) - 1);
      if ((waiting & mask & existing) != (mask & existing)) continue;
      for (size_t l = 0; l < lanes; ++l)
        if (waiting >> l & 1u) fibers[w * 32 + l].state = State::Ready;
      ++warp_gen[w];  // the next exchange of this warp uses the other buffer
      any = true;
    }
    return any;
  }

  bool release_barrier() {
    for (const Fiber& f : fibers)
      if (f.state != State::AtBarrier) return false;
    for (Fiber& f : fibers) f.state = State::Ready;
    return true;
  }

  bool deadlock() {
    size_t at_barrier = 0, exited = 0, at_shuffle = 0;
    for (const Fiber& f : fibers) {
      at_barrier += f.state == State::AtBarrier;
      exited += f.state == State::Done;
      at_shuffle += f.state == State::AtShuffle;
    }
    error = "synccheck: " + where() + ": ";
    if (at_shuffle > 0) {
      error += std::to_string(at_shuffle) +
               " thread(s) wait in a warp shuffle/vote whose mask names lanes that never reach it";
    } else {
      error += "__syncthreads reached by " + std::to_string(at_barrier) + " of " +
               std::to_string(fibers.size()) + " threads (" + std::to_string(exited) +
               " exited without reaching it)";
    }
    return abandon();
  }

  // Drops the block's unfinished fibers without unwinding them.
  bool abandon() {
#ifdef GRAFT_EMU_ASAN
    for (const Fiber& f : fibers)
      if (f.state != State::Done) __asan_unpoison_memory_region(f.stack, kStackSize);
#endif
#ifdef GRAFT_EMU_RACECHECK
    // Every fiber released one of these before it last yielded; the next
    // block on this worker must come after all of them.
    __tsan_acquire(&block_end);
    for (uint64_t& b : barrier) __tsan_acquire(&b);
    for (uint64_t& s : warp_sync) __tsan_acquire(&s);
    // An abandoned fiber's ThreadSanitizer context still holds its unfinished
    // call stack: replace it.
    for (size_t i = 0; i < fibers.size(); ++i)
      if (fibers[i].state != State::Done) {
        __tsan_destroy_fiber(tsan_fibers[i]);
        tsan_fibers[i] = __tsan_create_fiber(0);
      }
#endif
    fibers.clear();
    return false;
  }
};

Worker& worker() {
  thread_local Worker w;
  t_worker = &w;
  return w;
}

// ---- the worker pool ----
struct Job {
  const Launch* launch = nullptr;
  uint64_t total = 0;
  std::atomic<uint64_t> next{0};
  std::mutex mutex;
  std::string error;
};

void run_blocks(Job& job) {
  Worker& w = worker();
  const Launch& l = *job.launch;
  const uint64_t gx = l.grid.x, gxy = gx * l.grid.y;
  for (uint64_t b; (b = job.next.fetch_add(1)) < job.total;) {
    const uint3 bidx{static_cast<unsigned>(b % gx), static_cast<unsigned>((b / gx) % l.grid.y),
                     static_cast<unsigned>(b / gxy)};
    if (!w.run_block(l, bidx)) {
      std::lock_guard<std::mutex> lock(job.mutex);
      if (job.error.empty()) job.error = w.error;
      w.error.clear();
      job.next.store(job.total);  // stop handing out blocks
    }
  }
}

// Helper threads join a launch; the thread that submits it works too.
class Pool {
 public:
  Pool() {
    const char* s = std::getenv("GRAFT_EMU_THREADS");
    unsigned n = s ? static_cast<unsigned>(std::atoi(s)) : std::thread::hardware_concurrency();
    n = std::max(1u, std::min(n, 64u));
    for (unsigned i = 1; i < n; ++i) std::thread([this] { loop(); }).detach();
    helpers_ = n - 1;
  }
  void run(Job& job) {
    const bool help = job.total > 1 && helpers_ > 0;
    if (help) {
      std::lock_guard<std::mutex> lock(mutex_);
      for (unsigned i = 0; i < helpers_; ++i) queue_.push_back(&job);
    }
    if (help) cv_.notify_all();
    run_blocks(job);
    if (!help) return;
    std::unique_lock<std::mutex> lock(mutex_);
    // Entries no helper picked up yet are withdrawn; then wait for the helpers
    // that did pick one up.
    queue_.erase(std::remove(queue_.begin(), queue_.end(), &job), queue_.end());
    done_cv_.wait(lock, [&] { return busy_with_(&job) == 0; });
  }

 private:
  int busy_with_(const Job* job) const {
    int n = 0;
    for (const Job* j : running_) n += j == job;
    return n;
  }
  void loop() {
    for (;;) {
      Job* job;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        cv_.wait(lock, [&] { return !queue_.empty(); });
        job = queue_.front();
        queue_.pop_front();
        running_.push_back(job);
      }
      run_blocks(*job);
      {
        std::lock_guard<std::mutex> lock(mutex_);
        running_.erase(std::find(running_.begin(), running_.end(), job));
      }
      done_cv_.notify_all();
    }
  }
  unsigned helpers_ = 0;
  std::mutex mutex_;
  std::condition_variable cv_, done_cv_;
  std::deque<Job*> queue_;
  std::vector<Job*> running_;
};

// Leaked: helper threads live for the whole process.
Pool& pool() {
  static Pool* p = new Pool();
  return *p;
}

}  // namespace

void set_schedule_seed(unsigned seed) { g_schedule_seed.store(seed); }

namespace {
std::atomic<unsigned long> g_racecheck_reports{0};
}
unsigned long racecheck_reports() { return g_racecheck_reports.load(); }

// ThreadSanitizer's __tsan_on_report (kernels/cuda/emu/hook/, linked into
// each program) calls this after printing each report, on the thread that made
// the second access: when that is an emulated CUDA thread, name its kernel,
// block and thread (the report's stacks name the kernel's functions). Only
// one fprintf of fixed fields: nothing is allocated inside the report.
void racecheck_on_report() {
  const Worker* w = t_worker;
  if (!w || !w->running || !w->launch) return;
  g_racecheck_reports.fetch_add(1);
  const ThreadContext& tc = w->running->tc;
  std::fprintf(stderr,
               "racecheck: kernel %s, block (%u,%u,%u), thread (%u,%u,%u): a data race between "
               "threads of one launch with no barrier between them (report above)\n",
               w->launch->kernel_name, w->block_idx.x, w->block_idx.y, w->block_idx.z,
               tc.thread_idx.x, tc.thread_idx.y, tc.thread_idx.z);
}

ThreadContext* current_thread() {
  if (!t_current) {
    std::fprintf(stderr, "graft emulator: threadIdx/blockIdx used outside a kernel\n");
    std::abort();
  }
  return t_current;
}

void syncthreads() {
  Worker& w = *t_worker;
  Fiber* f = w.running;
#ifdef GRAFT_EMU_RACECHECK
  uint64_t* sync = &w.barrier[f->barriers & 1];
  __tsan_release(sync);
#endif
  f->state = State::AtBarrier;
  w.yield(false);
#ifdef GRAFT_EMU_RACECHECK
  __tsan_acquire(sync);
#endif
  ++f->barriers;
}

namespace {
// Deposits `bits` for this lane and waits for every lane of `mask`; returns
// the buffer (generation parity) that now holds the whole warp's deposits.
// The next exchange of the warp writes the other buffer, and a third cannot
// start before every lane has left this one, so the values stay intact.
const uint64_t* exchange(unsigned mask, uint64_t bits, int& lane) {
  Worker& w = *t_worker;
  Fiber* f = w.running;
  const size_t i = static_cast<size_t>(f - w.fibers.data());
  const size_t warp = i / 32;
  lane = static_cast<int>(i % 32);
  f->shuffle_mask = mask;
  f->state = State::AtShuffle;
  if (!(mask >> lane & 1u)) {
    w.error = "synccheck: " + w.where() + ": lane " + std::to_string(lane) +
              " calls a warp shuffle/vote with a mask that excludes it";
#ifdef GRAFT_EMU_RACECHECK
    __tsan_release(&w.block_end);
#endif
    w.yield(false);  // the block is abandoned; never resumed
  }
  const int parity = w.warp_gen[warp] & 1;
  w.warp_bits[parity][warp * 32 + static_cast<size_t>(lane)] = bits;
#ifdef GRAFT_EMU_RACECHECK
  uint64_t* sync = &w.warp_sync[warp * 2 + static_cast<size_t>(parity)];
  __tsan_release(sync);
#endif
  w.yield(false);
#ifdef GRAFT_EMU_RACECHECK
  __tsan_acquire(sync);
#endif
  return &w.warp_bits[parity][warp * 32];
}
}  // namespace

uint64_t warp_shuffle(unsigned mask, uint64_t bits, int kind, int arg, int width) {
  int lane = 0;
  const uint64_t* warp = exchange(mask, bits, lane);
  const int seg = width > 0 && width <= 32 ? width : 32;
  const int base = lane / seg * seg, pos = lane - base;
  int src = lane;
  switch (kind) {
    case 0:
      src = base + ((arg % seg) + seg) % seg;
      break;
    case 1:
      src = pos - arg >= 0 ? lane - arg : lane;
      break;
    case 2:
      src = pos + arg < seg ? lane + arg : lane;
      break;
    default:
      src = base + ((pos ^ arg) < seg ? (pos ^ arg) : pos);
      break;
  }
  return warp[src];
}

unsigned warp_ballot(unsigned mask, bool pred) {
  int lane = 0;
  const uint64_t* warp = exchange(mask, pred ? 1 : 0, lane);
  unsigned out = 0;
  for (int l = 0; l < 32; ++l)
    if ((mask >> l & 1u) && warp[l]) out |= 1u << l;
  return out;
}

std::string run_launch(const Launch& l) {
  Job job;
  job.launch = &l;
  job.total = static_cast<uint64_t>(l.grid.x) * l.grid.y * l.grid.z;
  pool().run(job);
  return job.error;
}

}  // namespace graft::cuda::emu
