// Reading records out of the arena, where a buggy or hostile process of the
// same user may have scribbled: every record is checked before use, and every
// chain walk is bounded. Both failures set the arena's why() and fail closed.
#pragma once

#include <cstdint>

#include "core/domain/arena.h"

namespace sockshim::domain {

// The record of type T at off, its block and magic checked, or nullptr with
// the arena's why() naming what (e.g. "shared maps root").
template <typename T>
T* arena_record(Arena& a, uint64_t off, uint64_t magic, const char* what) noexcept {
  T* p = a.payload_size(off) >= sizeof(T) ? a.at<T>(off) : nullptr;
  if (!p || p->magic != magic) {
    a.corrupt("a %s at offset %llu is not one (overwritten, or a stale offset)", what,
              static_cast<unsigned long long>(off));
    return nullptr;
  }
  return p;
}

// Bounds a chain walk: a scribbled chain may loop.
class ChainSteps {
 public:
  explicit ChainSteps(const Arena& a) : left_(a.size() / kMinBlock) {}
  bool next(Arena& a, const char* what) noexcept {
    if (left_-- > 0) return true;
    a.corrupt("the %s chain loops", what);
    return false;
  }

 private:
  uint64_t left_;
};

}  // namespace sockshim::domain
