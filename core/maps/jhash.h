// The kernel's jhash (include/linux/jhash.h). SOCKHASH picks buckets with
// jhash(key, key_size, 0), so using the same function makes get_next_key walk
// the keys in the kernel's order.
#pragma once

#include <cstdint>
#include <cstring>

namespace sockshim {

namespace jhash_detail {

constexpr uint32_t rol32(uint32_t w, unsigned s) noexcept {
  return (w << s) | (w >> ((-s) & 31));
}

inline void mix(uint32_t& a, uint32_t& b, uint32_t& c) noexcept {
  a -= c;
  a ^= rol32(c, 4);
  c += b;
  b -= a;
  b ^= rol32(a, 6);
  a += c;
  c -= b;
  c ^= rol32(b, 8);
  b += a;
  a -= c;
  a ^= rol32(c, 16);
  c += b;
  b -= a;
  b ^= rol32(a, 19);
  a += c;
  c -= b;
  c ^= rol32(b, 4);
  b += a;
}

inline void final(uint32_t& a, uint32_t& b, uint32_t& c) noexcept {
  c ^= b;
  c -= rol32(b, 14);
  a ^= c;
  a -= rol32(c, 11);
  b ^= a;
  b -= rol32(a, 25);
  c ^= b;
  c -= rol32(b, 16);
  a ^= c;
  a -= rol32(c, 4);
  b ^= a;
  b -= rol32(a, 14);
  c ^= b;
  c -= rol32(b, 24);
}

inline uint32_t load32(const uint8_t* p) noexcept {
  uint32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

}  // namespace jhash_detail

inline uint32_t jhash(const void* key, uint32_t length, uint32_t initval) noexcept {
  using namespace jhash_detail;
  const auto* k = static_cast<const uint8_t*>(key);
  uint32_t a, b, c;
  a = b = c = 0xdeadbeef + length + initval;
  while (length > 12) {
    a += load32(k);
    b += load32(k + 4);
    c += load32(k + 8);
    mix(a, b, c);
    length -= 12;
    k += 12;
  }
  switch (length) {
    case 12:
      c += uint32_t{k[11]} << 24;
      [[fallthrough]];
    case 11:
      c += uint32_t{k[10]} << 16;
      [[fallthrough]];
    case 10:
      c += uint32_t{k[9]} << 8;
      [[fallthrough]];
    case 9:
      c += k[8];
      [[fallthrough]];
    case 8:
      b += uint32_t{k[7]} << 24;
      [[fallthrough]];
    case 7:
      b += uint32_t{k[6]} << 16;
      [[fallthrough]];
    case 6:
      b += uint32_t{k[5]} << 8;
      [[fallthrough]];
    case 5:
      b += k[4];
      [[fallthrough]];
    case 4:
      a += uint32_t{k[3]} << 24;
      [[fallthrough]];
    case 3:
      a += uint32_t{k[2]} << 16;
      [[fallthrough]];
    case 2:
      a += uint32_t{k[1]} << 8;
      [[fallthrough]];
    case 1:
      a += k[0];
      final(a, b, c);
      break;
    case 0:
      break;
  }
  return c;
}

}  // namespace sockshim
