// A one-word lock for critical sections of a few instructions: a std::mutex is
// 40 bytes, too many for one per sockhash bucket or per psock.
#pragma once

#include <sched.h>

#include <atomic>

namespace sockshim {

class SpinLock {
 public:
  void lock() noexcept {
    for (unsigned spins = 0;; ++spins) {
      if (!locked_.exchange(true, std::memory_order_acquire)) return;
      while (locked_.load(std::memory_order_relaxed)) {
        if (++spins > 64) sched_yield();
#if defined(__x86_64__) || defined(__i386__)
        else
          __builtin_ia32_pause();
#endif
      }
    }
  }
  bool try_lock() noexcept {
    return !locked_.exchange(true, std::memory_order_acquire);
  }
  void unlock() noexcept {
    locked_.store(false, std::memory_order_release);
  }
  // In a fork child: the holder may be a thread that does not exist there.
  // Written only if held, so that a table of locks is not copied page by page
  // (core/fork_reset.h).
  void reset() noexcept {
    if (locked_.load(std::memory_order_relaxed)) locked_.store(false, std::memory_order_relaxed);
  }

 private:
  std::atomic<bool> locked_{false};
};

}  // namespace sockshim
