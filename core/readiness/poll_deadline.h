// The end of a poll/select/epoll timeout, for the readiness paths that wait
// again after a wake-up the application must not see: the retry gets what is
// left of the caller's timeout, never a fresh one.
#pragma once

#include <time.h>

namespace sockshim {

struct PollDeadline {
  bool forever = true;
  timespec at{};
};

inline PollDeadline poll_deadline(const timespec* timeout) noexcept {
  PollDeadline d;
  if (!timeout) return d;
  d.forever = false;
  clock_gettime(CLOCK_MONOTONIC, &d.at);
  d.at.tv_sec += timeout->tv_sec;
  d.at.tv_nsec += timeout->tv_nsec;
  if (d.at.tv_nsec >= 1000000000L) {
    d.at.tv_nsec -= 1000000000L;
    ++d.at.tv_sec;
  }
  return d;
}

inline PollDeadline poll_deadline_ms(int timeout_ms) noexcept {
  if (timeout_ms < 0) return {};
  timespec t{timeout_ms / 1000, (timeout_ms % 1000) * 1000000L};
  return poll_deadline(&t);
}

// What is left (zero once passed), or null when the wait has no end.
inline const timespec* poll_remaining(const PollDeadline& d, timespec* left) noexcept {
  if (d.forever) return nullptr;
  timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  left->tv_sec = d.at.tv_sec - now.tv_sec;
  left->tv_nsec = d.at.tv_nsec - now.tv_nsec;
  if (left->tv_nsec < 0) {
    left->tv_nsec += 1000000000L;
    --left->tv_sec;
  }
  if (left->tv_sec < 0) *left = {0, 0};
  return left;
}

inline bool poll_expired(const PollDeadline& d) noexcept {
  timespec left;
  const timespec* t = poll_remaining(d, &left);
  return t && t->tv_sec == 0 && t->tv_nsec == 0;
}

// What is left in milliseconds, rounded up; -1 when the wait has no end.
inline int poll_remaining_ms(const PollDeadline& d) noexcept {
  timespec left;
  const timespec* t = poll_remaining(d, &left);
  if (!t) return -1;
  return static_cast<int>(t->tv_sec * 1000 + (t->tv_nsec + 999999) / 1000000);
}

}  // namespace sockshim
