#include "core/generator.h"

#include <cmath>

#include "core/error.h"

namespace graft {

namespace {

// SplitMix64: turns a user seed into a well-mixed Philox key.
uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Philox-4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3").
void philox(uint64_t counter, uint64_t key, uint32_t out[4]) {
  uint32_t c0 = static_cast<uint32_t>(counter), c1 = static_cast<uint32_t>(counter >> 32);
  uint32_t c2 = 0, c3 = 0;
  uint32_t k0 = static_cast<uint32_t>(key), k1 = static_cast<uint32_t>(key >> 32);
  for (int round = 0; round < 10; ++round) {
    const uint64_t p0 = 0xD2511F53ull * c0;
    const uint64_t p1 = 0xCD9E8D57ull * c2;
    const uint32_t n0 = static_cast<uint32_t>(p1 >> 32) ^ c1 ^ k0;
    const uint32_t n2 = static_cast<uint32_t>(p0 >> 32) ^ c3 ^ k1;
    c1 = static_cast<uint32_t>(p1);
    c3 = static_cast<uint32_t>(p0);
    c0 = n0;
    c2 = n2;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
}

}  // namespace

void Generator::manual_seed(uint64_t seed) {
  seed_ = seed;
  key_ = splitmix64(seed);
  counter_ = 0;
  buffered_ = 0;
}

void Generator::refill() {
  philox(counter_++, key_, buffer_);
  buffered_ = 4;
}

uint32_t Generator::next_u32() {
  if (buffered_ == 0) refill();
  return buffer_[--buffered_];
}

uint64_t Generator::next_u64() {
  const uint64_t hi = next_u32();
  return (hi << 32) | next_u32();
}

float Generator::next_float() { return static_cast<float>(next_u32() >> 8) * (1.0f / 16777216.0f); }

double Generator::next_double() {
  return static_cast<double>(next_u64() >> 11) * (1.0 / 9007199254740992.0);
}

double Generator::next_normal() {
  // Box-Muller on (0,1] x [0,1); one value per call keeps streams simple.
  const double u1 = 1.0 - next_double();
  const double u2 = next_double();
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
}

uint64_t Generator::next_below(uint64_t n) {
  GRAFT_CHECK(n > 0, "Generator::next_below: empty range");
  // Lemire's rejection method: unbiased.
  const uint64_t threshold = (0 - n) % n;
  for (;;) {
    const uint64_t r = next_u64();
    __extension__ using u128 = unsigned __int128;
    const u128 m = static_cast<u128>(r) * n;
    if (static_cast<uint64_t>(m) >= threshold) return static_cast<uint64_t>(m >> 64);
  }
}

Generator Generator::fork(uint64_t stream) const {
  Generator g(seed_);
  g.key_ = splitmix64(key_ ^ splitmix64(stream + 0x632be59bd9b4e019ull));
  return g;
}

Generator& default_generator() {
  static Generator gen(0x5eed);
  return gen;
}

void manual_seed(uint64_t seed) { default_generator().manual_seed(seed); }

}  // namespace graft
