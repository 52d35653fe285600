// Seeded random number generation. A Generator is a Philox-4x32 counter-based
// stream: the same seed gives the same numbers on every machine, and
// `fork(n)` derives independent streams for worker threads.
#pragma once

#include <cstdint>
#include <mutex>

namespace graft {

class Generator {
 public:
  explicit Generator(uint64_t seed = 0x5eed) { manual_seed(seed); }

  void manual_seed(uint64_t seed);
  uint64_t seed() const { return seed_; }

  // Uniform 32 random bits.
  uint32_t next_u32();
  uint64_t next_u64();
  // Uniform in [0, 1) with 24 (float) or 53 (double) random bits.
  float next_float();
  double next_double();
  // Standard normal (Box-Muller).
  double next_normal();
  // Uniform integer in [0, n).
  uint64_t next_below(uint64_t n);

  // An independent generator for stream `stream` of this seed (for workers).
  Generator fork(uint64_t stream) const;

  // For thread-safe use of a shared generator.
  std::mutex& mutex() { return mutex_; }

  Generator(const Generator& o) : seed_(o.seed_), key_(o.key_), counter_(o.counter_) {}
  Generator& operator=(const Generator& o) {
    seed_ = o.seed_;
    key_ = o.key_;
    counter_ = o.counter_;
    buffered_ = 0;
    return *this;
  }

 private:
  void refill();
  uint64_t seed_ = 0;
  uint64_t key_ = 0;
  uint64_t counter_ = 0;
  uint32_t buffer_[4] = {};
  int buffered_ = 0;
  std::mutex mutex_;
};

// The process-wide default generator (seeded with graft::manual_seed).
Generator& default_generator();
void manual_seed(uint64_t seed);

}  // namespace graft
