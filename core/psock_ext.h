// State the send path keeps beside a psock (the kernel keeps it in struct
// sk_psock: eval, sk_redir, cork, plus the wait queues): the verdict that
// persists across sends, the redirect target, the corked message, counters,
// and what readers and blocked senders wait on. Found by Psock pointer; a new
// psock (Psock::generation changed) starts from a clean state, which is what
// clears a sticky drop and frees corked bytes of a psock that went away.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>

#include "core/psock.h"
#include "core/psock_stats.h"
#include "core/socket.h"
#include "policy/sk_msg.h"

namespace sockshim {

// psock->eval: the verdict that applies to the next bytes without a run.
enum class SkEval : uint8_t { none, pass, drop, redirect };

struct PsockExt {
  // Serialises sends on the psock (the kernel's lock_sock in tcp_bpf_sendmsg).
  std::mutex tx_lock;
  // Under tx_lock.
  SkEval eval = SkEval::none;
  Socket* sk_redir = nullptr;  // type-stable record; redir_cookie tells if it is still that socket
  uint64_t redir_cookie = 0;
  bool redir_ingress = false;
  policy::SkMsg cork;       // psock->cork: the corked message (its apply/cork values persist)
  bool cork_alloc = false;  // psock->cork != NULL

  PsockStats stats;

  // Readers: an eventfd readable exactly while ingress_msg holds bytes, made
  // on the first wait (poll, epoll, blocking recv); under psock->ingress_lock.
  int event_fd = -1;
  // Senders blocked on a full ingress queue wait here; readers notify.
  std::mutex space_lock;
  std::condition_variable space;
  uint32_t space_waiters = 0;  // under space_lock

  // Limits of the ingress queue and the fd the socket was last seen at.
  std::atomic<int> rcvbuf{0};
  std::atomic<int> fd_hint{-1};
};

// The state beside p (the caller holds a reference on p).
PsockExt& psock_ext(Psock* p) noexcept;

// True once any psock queued bytes for its reader: until then the readiness
// hooks have nothing to add and pass straight through.
extern std::atomic<bool> g_ingress_used;

// One fd of this process that refers to sk, or -1 (the redirect target's fd for
// egress and SO_RCVBUF).
int socket_fd(Socket* sk) noexcept;

// In a fork child: the send path's locks another thread may have held.
void psock_ext_after_fork_child() noexcept;

}  // namespace sockshim
