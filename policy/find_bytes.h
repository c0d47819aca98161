// Substring search for rule matching and delimiter framing: memchr (vectorised
// in glibc) on the needle's first byte, then a compare. When the first byte is
// common in the data, fall back to glibc's memmem (two-way: linear worst case).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace sockshim::policy {

inline const uint8_t* find_bytes(const uint8_t* hay, size_t n, const uint8_t* needle,
                                 size_t m) noexcept {
  if (m == 0) return hay;
  if (n < m || hay == nullptr) return nullptr;
  const size_t last = n - m;  // last start position
  size_t i = 0;
  for (int misses = 0; misses < 16; ++misses) {
    const void* p = memchr(hay + i, needle[0], last - i + 1);
    if (!p) return nullptr;
    const auto* q = static_cast<const uint8_t*>(p);
    if (memcmp(q + 1, needle + 1, m - 1) == 0) return q;
    i = static_cast<size_t>(q - hay) + 1;
    if (i > last) return nullptr;
  }
  return static_cast<const uint8_t*>(memmem(hay + i, n - i, needle, m));
}

}  // namespace sockshim::policy
