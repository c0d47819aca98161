#include "core/domain/shared_futex.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/sock/errno_saver.h"

namespace sockshim::domain {

int shared_futex_wait(std::atomic<uint32_t>* word, uint32_t expected,
                      const timespec* deadline) noexcept {
  ErrnoSaver saved;
  // FUTEX_WAIT_BITSET takes an absolute deadline (CLOCK_MONOTONIC without
  // FUTEX_CLOCK_REALTIME): a wait woken early by a signal and restarted
  // keeps the caller's deadline.
  long r = syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAIT_BITSET, expected,
                   deadline, nullptr, FUTEX_BITSET_MATCH_ANY);
  if (r == 0 || errno == EAGAIN) return 0;
  return errno == ETIMEDOUT ? -ETIMEDOUT : -EINTR;
}

void shared_futex_wake_all(std::atomic<uint32_t>* word) noexcept {
  ErrnoSaver saved;
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0);
}

timespec monotonic_deadline(int64_t ms) noexcept {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  t.tv_sec += ms / 1000;
  t.tv_nsec += (ms % 1000) * 1000000L;
  if (t.tv_nsec >= 1000000000L) {
    t.tv_sec += 1;
    t.tv_nsec -= 1000000000L;
  }
  return t;
}

}  // namespace sockshim::domain
