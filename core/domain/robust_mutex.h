// A lock in shared memory that a process killed at any instruction never leaves
// held: a pthread robust, process-shared mutex. When its owner dies, the next
// locker is told (EOWNERDEAD), checks and repairs what the lock guards, and
// either marks the lock consistent or gives it up for good (ENOTRECOVERABLE:
// the domain fails closed).
#pragma once

#include <pthread.h>

#include <cerrno>

namespace sockshim::domain {

class RobustMutex {
 public:
  // Only by the creator of the shared memory, before anyone else maps it.
  int init() noexcept;

  // 0: locked. kOwnerDied: locked, the previous owner died holding it; call
  // consistent() after repairing, or unlock() to make it unrecoverable.
  // -ETIMEDOUT: still held after timeout_ms (a stopped or stuck owner).
  // -ENOTRECOVERABLE: given up earlier. -EUCLEAN: the lock's memory is not a
  // robust shared mutex any more (scribbled): glibc would abort on it.
  static constexpr int kOwnerDied = 1;
  int lock(int timeout_ms) noexcept;
  void consistent() noexcept;
  void unlock() noexcept;

 private:
  pthread_mutex_t m_;
};

// Locks m; on owner death runs repair() (true: the guarded data are whole
// again) and marks m consistent, or gives m up. Returns 0 (locked) or -errno.
template <typename Repair>
int lock_repaired(RobustMutex& m, int timeout_ms, Repair&& repair) noexcept {
  int r = m.lock(timeout_ms);
  if (r != RobustMutex::kOwnerDied) return r;
  if (!repair()) {
    m.unlock();  // without consistent(): every later lock gets ENOTRECOVERABLE
    return -ENOTRECOVERABLE;
  }
  m.consistent();
  return 0;
}

}  // namespace sockshim::domain
