// State the send path keeps beside a psock (the kernel keeps it in struct
// sk_psock: eval, sk_redir, cork, plus the wait queues): the verdict that
// persists across sends, the redirect target, the corked message, counters,
// and what readers and blocked senders wait on. Found by Psock pointer; a new
// psock (Psock::generation changed) starts from a clean state, which is what
// clears a sticky drop and frees corked bytes of a psock that went away.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "core/psock/psock.h"
#include "core/psock/psock_stats.h"
#include "core/sock/socket.h"
#include "policy/sk_msg.h"

namespace sockshim {

struct SkPsockRx;

// An eventfd closed when its last user lets it go (core/skmsg_ingress.cc).
struct RxStopFd {
  int fd = -1;
  ~RxStopFd();
};

// A psock waiting for another to make room, named so that a recycled psock is
// not mistaken for it.
struct RxWaiter {
  Psock* psock;
  uint64_t generation;
};

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

  // Readers: an eventfd readable exactly while sk_psock_readable() holds, made
  // on the first wait (poll, epoll, blocking recv); under psock->ingress_lock.
  int event_fd = -1;
  bool event_ready = false;  // event_fd holds a count (under ingress_lock)
  // Readers waiting while they see only the queue (poll, select, blocking
  // recv) also wait on this: signalled, never drained, when the reader gets
  // the socket back, so every one of them wakes and looks again. One per
  // start, made on the first such wait, closed by its last user. Under
  // psock->ingress_lock.
  std::shared_ptr<RxStopFd> rx_stop_fd;
  // Senders blocked on a full ingress queue poll space_fd, an eventfd that a
  // reader freeing room (or the psock stopping) signals; made on the first
  // wait, under ingress_lock.
  int space_fd = -1;
  std::atomic<uint32_t> space_waiters{0};

  // The receive engine (core/sk_psock_rx.cc). sk_fd is its own dup of the
  // socket, made internal, for reading (a psock it reads) and for egress
  // redirects (a target); every call on it holds sk_fd_lock, so a stop may
  // close it from any thread, at once. rx is the loop thread's working state.
  std::mutex sk_fd_lock;
  int sk_fd = -1;
  uint32_t sk_fd_events = 0;          // what the event loop watches on sk_fd
  std::atomic<bool> rx_on{false};     // the engine reads this socket
  std::atomic<uint64_t> rx_epoch{0};  // bumped by every start and stop
  std::atomic<uint64_t> rx_fork{0};   // the fork count of the process that started it
  std::atomic<uint64_t> rx_held{0};   // bytes read and not yet applied
  // Bytes in the kernel's queue at the start wait for the first read,
  // readiness query or new arrival, as they wait for tcp_data_ready in the kernel.
  std::atomic<bool> rx_deferred{false};
  std::atomic<int> rx_deferred_inq{0};
  // A stop found bytes taken from the socket and not yet applied: the reader
  // gets the socket back once they are (a reference keeps the psock meanwhile).
  std::atomic<bool> rx_draining{false};
  SkPsockRx* rx = nullptr;  // made on first start, kept with the slot
  // Sources whose verdict waits for room in this queue or for this socket to
  // become writable; each is run again when that happens.
  std::mutex waiters_lock;
  std::vector<RxWaiter> waiters;
  std::atomic<bool> has_waiters{false};

  // Limits of the ingress queue and the fd the socket was last seen at.
  std::atomic<int> rcvbuf{0};
  std::atomic<int> fd_hint{-1};
};

// Gives p its side state if it has none yet (psock_init, before p is
// published); -ENOMEM when memory is short. A recycled psock keeps its own.
int psock_ext_init(Psock* p) noexcept;

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

// Before fork (the fork hook): queued datagrams get their claims
// (sk_msg_fork_claims). Nothing to do until a psock ever queued bytes.
void psock_ext_before_fork() noexcept;

}  // namespace sockshim
