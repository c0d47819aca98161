// What sock/ runs in the layers above it, through pointers those layers install
// at start-up (core/maps/maps_init.h), as the kernel's inet_release calls
// sk->sk_prot->close, which sockmap points at sock_map_close: sock/ includes
// nothing of theirs. A hook runs only for a socket that has the state it
// handles, so a socket without any pays a load or two; an empty hook is
// skipped, which is right: nothing gives a socket such state before start-up.
#pragma once

#include <atomic>

#include "policy/context.h"

namespace sockshim {

class Socket;

struct SockHooks {
  // Runs the sockops programs for op on sk (fd one of its fds, or -1): at the
  // close of a socket whose TCP state is known (state_change) and when a
  // non-blocking connect completes (active_established).
  std::atomic<void (*)(policy::SockOp op, Socket* sk, int fd) noexcept> sock_ops{nullptr};
  // At the last put of a socket with a psock: it leaves every map, its psock stops.
  std::atomic<void (*)(Socket* sk) noexcept> map_close{nullptr};
  // At the last put of a socket with sk_storage values: they are freed.
  std::atomic<void (*)(Socket* sk) noexcept> storage_free{nullptr};
};

constinit inline SockHooks g_sock_hooks;

inline void sock_hook_sock_ops(policy::SockOp op, Socket* sk, int fd) noexcept {
  if (auto run = g_sock_hooks.sock_ops.load(std::memory_order_relaxed)) run(op, sk, fd);
}

inline void sock_hook_call(const std::atomic<void (*)(Socket*) noexcept>& hook,
                           Socket* sk) noexcept {
  if (auto run = hook.load(std::memory_order_relaxed)) run(sk);
}

}  // namespace sockshim
