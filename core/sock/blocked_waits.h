// Threads of this process blocked in one of the shim's own waits: a reader
// waiting on a psock's queue, a sender waiting for room in a target's queue,
// poll/select/epoll over psocks. What a test waits on before it wakes or
// signals a blocked thread, instead of guessing when the thread has blocked.
#pragma once

#include <atomic>

namespace sockshim {

inline std::atomic<int> g_blocked_waits{0};

// Returns wait(), the calling thread counted as blocked meanwhile if may_block.
template <typename Wait>
auto blocked_wait(bool may_block, Wait&& wait) noexcept {
  if (may_block) g_blocked_waits.fetch_add(1);
  auto r = wait();
  if (may_block) g_blocked_waits.fetch_sub(1);
  return r;
}

inline int blocked_waits() noexcept {
  return g_blocked_waits.load();
}

}  // namespace sockshim
