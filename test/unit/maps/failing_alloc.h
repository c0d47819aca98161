// A test-only global allocator that fails on request: the binary that links
// failing_alloc.cc replaces every form of operator new and delete. Armed on a
// thread, it lets that thread make `n` more allocations and fails the next ones
// (std::bad_alloc, or null for the nothrow forms); other threads are never
// failed. Disarmed (the default) it is malloc and free.
#pragma once

namespace failing_alloc {

// Arms the calling thread: n more allocations succeed, then every one fails.
void fail_after(long n) noexcept;
// Disarms the calling thread; returns how many allocations failed while armed.
long disarm() noexcept;

// Arms for the lifetime of a scope.
class FailAfter {
 public:
  explicit FailAfter(long n) noexcept { fail_after(n); }
  ~FailAfter() { disarm(); }
  FailAfter(const FailAfter&) = delete;
  FailAfter& operator=(const FailAfter&) = delete;
};

}  // namespace failing_alloc
