#include "core/domain/robust_mutex.h"

#include <time.h>

#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#endif

namespace sockshim::domain {
namespace {

int init_robust_shared(pthread_mutex_t* m) noexcept {
  pthread_mutexattr_t attr;
  if (int e = pthread_mutexattr_init(&attr)) return -e;
  int e = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
  if (!e) e = pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
  if (!e) e = pthread_mutex_init(m, &attr);
  pthread_mutexattr_destroy(&attr);
  return -e;
}

// glibc's kind word of a robust shared mutex, from one made here: a lock whose
// word differs was scribbled on, and glibc asserts (aborts) on some such words.
int expected_kind() noexcept {
  static const int kind = [] {
    pthread_mutex_t probe;
    if (init_robust_shared(&probe) != 0) return -1;
    int k = probe.__data.__kind;
    pthread_mutex_destroy(&probe);
    return k;
  }();
  return kind;
}

}  // namespace

int RobustMutex::init() noexcept {
  return init_robust_shared(&m_);
}

int RobustMutex::lock(int timeout_ms) noexcept {
  if (__atomic_load_n(&m_.__data.__kind, __ATOMIC_RELAXED) != expected_kind()) return -EUCLEAN;
  // timedlock (CLOCK_REALTIME), not clocklock: ThreadSanitizer knows only the
  // former, and a clock step merely lengthens or shortens a give-up deadline.
  timespec deadline;
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += timeout_ms / 1000;
  deadline.tv_nsec += (timeout_ms % 1000) * 1000000L;
  if (deadline.tv_nsec >= 1000000000L) {
    deadline.tv_sec += 1;
    deadline.tv_nsec -= 1000000000L;
  }
  switch (int e = pthread_mutex_timedlock(&m_, &deadline)) {
    case 0:
      return 0;
    case EOWNERDEAD:
#if defined(__SANITIZE_THREAD__)
      // ThreadSanitizer's timedlock records only a 0 result as a lock.
      __tsan_mutex_pre_lock(&m_, 0);
      __tsan_mutex_post_lock(&m_, 0, 0);
#endif
      return kOwnerDied;
    default:
      return -e;
  }
}

void RobustMutex::consistent() noexcept {
  pthread_mutex_consistent(&m_);
}

void RobustMutex::unlock() noexcept {
  pthread_mutex_unlock(&m_);
}

}  // namespace sockshim::domain
