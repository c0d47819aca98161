// Type-stable storage for socket records. Hooks read the fd table without locks,
// so a record may be read after it was released; its memory therefore stays a
// Socket forever and is only recycled, never unmapped (the kernel's
// SLAB_TYPESAFE_BY_RCU idea). Allocation is lock-free and async-signal-safe:
// socket() and send() may be called from signal handlers.
#pragma once

#include "core/sock/socket.h"

namespace sockshim {

class SocketPool {
 public:
  // A fresh record holding one reference, or nullptr when memory is exhausted.
  static Socket* allocate() noexcept;
  static void release(Socket* s) noexcept;

  // Calls fn on every record ever allocated, live or free (for fork handling).
  // In a fork child one of them may be a record whose allocating thread was
  // between taking its index and constructing it: still zero-filled, which is
  // what a default-constructed Socket holds (an unlocked mutex, no state).
  template <typename Fn>
  static void for_each_slot(Fn&& fn) noexcept;

  static constexpr uint32_t kSlabShift = 10;
  static constexpr uint32_t kSlabSize = 1u << kSlabShift;
  static constexpr uint32_t kMaxSlabs = 1u << 12;
  static Socket* slot(uint32_t index) noexcept;
  static uint32_t slab_count() noexcept;
  // Records ever handed out: the slots below this index (capped at the pool's size).
  static uint32_t allocated_count() noexcept;

 private:
  static Socket* slab_for(uint32_t index) noexcept;
};

template <typename Fn>
void SocketPool::for_each_slot(Fn&& fn) noexcept {
  uint32_t n = allocated_count();
  for (uint32_t i = 0; i < n; ++i)
    if (Socket* s = slot(i)) fn(*s);
}

}  // namespace sockshim
