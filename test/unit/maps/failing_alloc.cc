// Every replaceable form of operator new and delete, over malloc and free so
// that a sanitizer's allocator sees matching pairs; see failing_alloc.h.
#include "test/unit/maps/failing_alloc.h"

#include <cstddef>
#include <cstdlib>
#include <new>

namespace failing_alloc {
namespace {

// Allocations left before failing; negative: not armed.
thread_local long t_budget = -1;
thread_local long t_failed = 0;

bool should_fail() noexcept {
  if (t_budget < 0) return false;
  if (t_budget > 0) {
    --t_budget;
    return false;
  }
  ++t_failed;
  return true;
}

void* allocate(std::size_t size, std::size_t align) noexcept {
  if (should_fail()) return nullptr;
  if (size == 0) size = 1;
  if (align <= alignof(std::max_align_t)) return std::malloc(size);
  return std::aligned_alloc(align, (size + align - 1) / align * align);
}

void* allocate_or_throw(std::size_t size, std::size_t align) {
  void* p = allocate(size, align);
  if (!p) throw std::bad_alloc();
  return p;
}

}  // namespace

void fail_after(long n) noexcept {
  t_budget = n;
  t_failed = 0;
}

long disarm() noexcept {
  t_budget = -1;
  return t_failed;
}

}  // namespace failing_alloc

using failing_alloc::allocate;
using failing_alloc::allocate_or_throw;
constexpr std::size_t kDefault = alignof(std::max_align_t);

void* operator new(std::size_t n) {
  return allocate_or_throw(n, kDefault);
}
void* operator new[](std::size_t n) {
  return allocate_or_throw(n, kDefault);
}
void* operator new(std::size_t n, std::align_val_t a) {
  return allocate_or_throw(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a) {
  return allocate_or_throw(n, static_cast<std::size_t>(a));
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  return allocate(n, kDefault);
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  return allocate(n, kDefault);
}
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return allocate(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return allocate(n, static_cast<std::size_t>(a));
}

void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete[](void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::size_t) noexcept {
  std::free(p);
}
void operator delete(void* p, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete(void* p, const std::nothrow_t&) noexcept {
  std::free(p);
}
void operator delete[](void* p, const std::nothrow_t&) noexcept {
  std::free(p);
}
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  std::free(p);
}
