// Emulated cuda_fp16.h: __half as raw bits with the conversions graft's
// kernels use (round to nearest even, like the hardware and the CPU backend).
#pragma once

#include <cstdint>
#include <cstring>

struct __half_raw {
  unsigned short x;
};
struct __half {
  unsigned short x = 0;
  __half() = default;
  __half(__half_raw r) : x(r.x) {}
  operator __half_raw() const { return __half_raw{x}; }
};

inline float __half2float(__half h) {
  const uint32_t b = h.x, sign = (b & 0x8000u) << 16, exp = (b >> 10) & 0x1f, man = b & 0x3ff;
  uint32_t u;
  if (exp == 0x1f) {
    u = sign | 0x7f800000u | (man << 13);  // inf / NaN
  } else if (exp != 0) {
    u = sign | ((exp + 112) << 23) | (man << 13);
  } else if (man == 0) {
    u = sign;
  } else {  // subnormal half: normalise
    int e = -1;
    uint32_t m = man;
    do {
      ++e;
      m <<= 1;
    } while ((m & 0x400) == 0);
    u = sign | static_cast<uint32_t>(112 - e) << 23 | ((m & 0x3ff) << 13);
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline __half __float2half_rn(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  const uint32_t sign = (u >> 16) & 0x8000u;
  const uint32_t a = u & 0x7fffffffu;
  __half h;
  if (a > 0x7f800000u) {  // NaN: keep it quiet
    h.x = static_cast<unsigned short>(sign | 0x7e00u);
  } else if (a >= 0x477ff000u) {  // rounds to >= 65520: inf
    h.x = static_cast<unsigned short>(sign | 0x7c00u);
  } else if (a < 0x38800000u) {  // below the smallest normal half: subnormal or zero
    const int shift = 126 - static_cast<int>(a >> 23);  // 14 - (exp - 127) + 1 ... exponent gap
    if (shift > 24) {
      h.x = static_cast<unsigned short>(sign);
    } else {
      const uint32_t m = (a & 0x7fffffu) | 0x800000u;
      const uint32_t r = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
      const uint32_t v = r + (rem > half || (rem == half && (r & 1)));
      h.x = static_cast<unsigned short>(sign | v);
    }
  } else {
    const uint32_t r = a + 0xfffu + ((a >> 13) & 1u);  // round to nearest even at bit 13
    h.x = static_cast<unsigned short>(sign | ((r - 0x38000000u) >> 13));
  }
  return h;
}
inline __half __float2half(float f) { return __float2half_rn(f); }
