// The per-socket "connect pending" flag and the process's count of such
// sockets (core/sock/tcp_connect.h runs the completion they wait for). Kept
// apart from the completion so that the record's last put and the fork
// handling, below the registry, can clear it.
#pragma once

#include <atomic>
#include <cstdint>

#include "core/sock/socket.h"

namespace sockshim {

// What Socket::connect_state holds.
enum : uint8_t {
  kConnectNone = 0,       // no connect in progress (or it was noticed)
  kConnectPending = 1,    // connect() said EINPROGRESS; nothing has noticed the end yet
  kConnectFinishing = 2,  // one thread is running the completion
};

// How many sockets of the process are connect pending: while none is, the
// readiness hooks skip every check with this one load.
constinit inline std::atomic<int> g_connects_pending{0};

inline bool tcp_connect_pending(const Socket* s) noexcept {
  return s->connect_state.load(std::memory_order_relaxed) != kConnectNone;
}
inline bool tcp_connects_pending() noexcept {
  return g_connects_pending.load(std::memory_order_relaxed) != 0;
}

// connect() on fd (sk's) returned EINPROGRESS: sk is connect pending.
inline void tcp_connect_start(Socket* sk) noexcept {
  uint8_t none = kConnectNone;
  if (sk->connect_state.compare_exchange_strong(none, kConnectPending, std::memory_order_acq_rel))
    g_connects_pending.fetch_add(1, std::memory_order_relaxed);
}

// The socket is going: it no longer counts as pending.
inline void tcp_connect_forget(Socket* sk) noexcept {
  if (sk->connect_state.exchange(kConnectNone, std::memory_order_relaxed) != kConnectNone)
    g_connects_pending.fetch_sub(1, std::memory_order_relaxed);
}

// In a fork child: a completion another thread was running never ends here.
inline void tcp_connect_after_fork_child(Socket& sk) noexcept {
  // Read first: a compare-exchange writes even when it fails, and a write
  // copies the page (core/sock/fork_reset.h).
  if (sk.connect_state.load(std::memory_order_relaxed) == kConnectFinishing)
    sk.connect_state.store(kConnectPending, std::memory_order_relaxed);
}

}  // namespace sockshim
