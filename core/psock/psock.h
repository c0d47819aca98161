// The psock (struct sk_psock, include/linux/skmsg.h): what a socket carries
// while it sits in at least one sockmap or sockhash. One per socket, created
// at its first insertion, shared by every map and key that holds it, dropped
// when its last reference goes. Each map slot holds one reference and one
// PsockLink; the send and receive paths take temporary references with
// psock_get(). Psocks are pooled and never freed: psock_init() resets one for
// its new socket, psock_put() of the last reference drops it.
//
// Which lock guards what (fields in the order of struct sk_psock):
//
//   field                                   guarded by
//   sk_                                     set by psock_init, cleared by drop
//   sk_redir, redir_cookie, apply_bytes,    tx_lock (the kernel's lock_sock in
//     cork_bytes, eval, redir_ingress,        tcp_bpf_sendmsg)
//     cork, cork_alloc, stats.tx writes
//   progs.*                                 atomics (written under the socket's
//                                             lock, read lock-free)
//   work_state                              the event loop thread only (and the
//                                             drop, when nobody can reach it)
//   ingress_msg, ingress_bytes,             ingress_lock
//     engine_reads, rx_eof, rx_aborted,
//     rx_err, event_fd, event_ready,
//     rx_stop_fd, space_fd, ring_seen_in
//   tx_enabled                              atomic (sk_psock_test_state TX_ENABLED)
//   links, rx_hook                          link_lock
//   refcnt_                                 atomic
//   sk_fd, sk_fd_events                     sk_fd_lock
//   waiters                                 waiters_lock
//   ring, ring_none, ring_ordered,          atomics (attached once, detached by the drop)
//     ring_tcp_told
//   rx_held, rx_on, rx_epoch, rx_fork,      atomics, written by the receive
//     rx_predating, rx_predating_inq,         engine and its start and stop
//     rx_draining,
//     has_waiters, space_waiters, rcvbuf,
//     fd_hint, generation, stats.rx
//
// Lock order, outermost first (each may be taken under the ones before it):
//   tx_lock  >  Socket::lock() (the sender's socket_tuple, a target's checks;
//   insertion and sock_map_close hold it)  >  sk_fd_lock  >  waiters_lock
//   >  ingress_lock, link_lock (spinlocks: nothing is taken under them)
// No tx_lock is taken under a socket lock or under another psock's tx_lock:
// sock_map_close frees the cork after it lets the socket's lock go, and a
// psock out of the pool is reset by psock_init before anyone can reach it.
#pragma once

#include <sys/socket.h>
#include <atomic>
#include <cassert>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <vector>

#include "core/psock/psock_stats.h"
#include "core/psock/strparser.h"
#include "core/sock/socket.h"
#include "core/sock/spinlock.h"
#include "policy/sk_msg.h"
#include "policy/spec.h"

// Where the kernel would WARN_ON_ONCE: an invariant of the psock broken. A
// debug build stops there; a release build goes on.
#define PSOCK_WARN_ON(cond) assert(!(cond))

namespace sockshim {

class Socket;
class SockMapBase;
namespace domain {
class SockRing;
}
class Psock;

// The programs a psock runs (struct sk_psock_progs), copied from a map at
// insertion and never reached by a later attach or detach on that map.
struct PsockProgs {
  std::atomic<const policy::Program*> msg_parser{nullptr};  // BPF_SK_MSG_VERDICT
  std::atomic<const policy::Program*> stream_parser{nullptr};
  std::atomic<const policy::Program*> stream_verdict{nullptr};
  std::atomic<const policy::Program*> skb_verdict{nullptr};
};

// One map slot holding the psock (struct sk_psock_link).
struct PsockLink {
  SockMapBase* map = nullptr;
  const void* link_raw = nullptr;  // the slot (sockmap) or the element (sockhash)
  uint32_t hash = 0;               // sockhash bucket hash: close never reads a freed element
};

// A list of links: an insertion allocates its node before taking any lock
// (sk_psock_init_link) and splices it in under them, which cannot fail.
using PsockLinks = std::list<PsockLink>;

// Which receive hook the psock's socket has (sock_map_link; the kernel's
// saved_data_ready replaced by sk_psock_strp_data_ready or
// sk_psock_verdict_data_ready): none, the stream parser + stream verdict, or
// a verdict alone.
enum class RxHook : uint8_t { none, strparser, verdict };

// psock->eval: the verdict that applies to the next bytes without a run.
enum class SkEval : uint8_t { none, pass, drop, redirect };

using SkMsgBytes = std::vector<uint8_t>;

// A datagram queued when its process forked is held by every process that
// inherited the queue; each holds this eventfd (count 1), and the first to
// read it takes the datagram, the others drop their copies. Closed with the
// message.
class SkMsgClaim {
 public:
  SkMsgClaim() = default;
  SkMsgClaim(SkMsgClaim&& o) noexcept : fd(o.fd) { o.fd = -1; }
  SkMsgClaim& operator=(SkMsgClaim&&) = delete;
  ~SkMsgClaim();
  int fd = -1;
};

// One queued message (struct sk_msg on ingress_msg). A datagram socket's
// reader takes one message per read (sockshim keeps boundaries, §7); a
// datagram the engine read keeps its source for recvfrom. A stream message
// pays one null pointer and one int for that.
struct SkMsgIngress {
  SkMsgBytes bytes;
  std::unique_ptr<SockAddr> name;
  SkMsgClaim claim;
};

// An eventfd closed when its last user lets it go (the stop eventfd readers
// wait on while they see only the queue).
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

// The receive engine's working state (struct sk_psock_work_state and the
// psock's struct strparser): touched by the event loop thread only.
struct SkPsockWorkState {
  uint64_t epoch = 0;  // the start (Psock::rx_epoch) this state belongs to
  Strparser strp;      // bytes read and not yet given to a verdict
  // A frame, or the rest of one, whose verdict ran and whose effect waits for
  // room (ingress) or writability (egress) at its target.
  std::vector<uint8_t> pending;
  size_t pending_off = 0;
  policy::Verdict verdict = policy::Verdict::pass;
  Socket* target = nullptr;  // type-stable; target_cookie tells if it is still that socket
  uint64_t target_cookie = 0;
  bool ingress = false;
  bool pending_empty = false;  // what waits is an empty datagram
  bool eof = false;            // the socket said EOF or failed: nothing more to read
  int read_err = 0;
  bool aborted = false;
  size_t rcvbuf = 0;  // the socket's SO_RCVBUF, the parser's frame limit
  // A datagram socket: each read is one datagram, one message, with its
  // source (name, then pending_name while its verdict's effect waits).
  bool dgram = false;
  SockAddr name, pending_name;
  int timer_fd = -1;  // the partial-frame timer (only with SO_RCVTIMEO)
  bool timer_armed = false;
};

class Psock {
 public:
  Socket* sk() const noexcept { return sk_; }
  uint32_t refcnt() const noexcept { return refcnt_.load(std::memory_order_relaxed); }
  // What the socket was when this psock was made. Its record may already be
  // recycled for another socket while a callback still holds the psock, so
  // these are read here, never through sk().
  uint64_t sk_cookie() const noexcept { return sk_cookie_; }
  int sk_family() const noexcept { return sk_family_; }
  bool sk_dgram() const noexcept { return sk_type_ == SOCK_DGRAM; }

 private:
  Socket* sk_ = nullptr;
  uint64_t sk_cookie_ = 0;
  int sk_family_ = 0;
  int sk_type_ = 0;

 public:
  // The send path (tcp_bpf_sendmsg), under tx_lock.
  std::mutex tx_lock;
  Socket* sk_redir = nullptr;  // type-stable record; redir_cookie tells if it is still that socket
  uint64_t redir_cookie = 0;
  uint32_t apply_bytes = 0;
  uint32_t cork_bytes = 0;
  SkEval eval = SkEval::none;
  bool redir_ingress = false;
  bool cork_alloc = false;  // psock->cork != NULL
  policy::SkMsg cork;       // psock->cork: the corked message (its apply/cork values persist)

  PsockProgs progs;

  // The receive engine (core/rx/sk_psock_rx.cc): its working state, and the
  // bytes it read and has not yet applied.
  SkPsockWorkState work_state;
  std::atomic<uint64_t> rx_held{0};

  // The ingress queue and what its reader sees (core/psock/sk_msg_queue.cc),
  // under ingress_lock.
  SpinLock ingress_lock;
  std::list<SkMsgIngress> ingress_msg;
  size_t ingress_bytes = 0;
  // While the receive engine reads the socket its reader sees only
  // ingress_msg, then what the engine says is due; after a stop, until the
  // bytes the engine took have gone where their verdict sent them.
  bool engine_reads = false;
  bool rx_eof = false;      // EOF is due: every byte read before it has been applied
  bool rx_aborted = false;  // the stream parser stopped for good: reads give EAGAIN
  int rx_err = 0;           // a socket error due (recv or SO_ERROR reports it once)
  // Readers: an eventfd readable exactly while sk_psock_readable() holds, made
  // on the first wait (poll, epoll, blocking recv).
  int event_fd = -1;
  bool event_ready = false;  // event_fd holds a count
  // The ring's bytes_in when event_fd was last signalled for an arrival: one
  // edge per arrival, whether the append or the bell tells first.
  uint32_t ring_seen_in = 0;
  // Readers waiting while they see only the queue (poll, select, blocking
  // recv) also wait on this: signalled, never drained, when the reader gets
  // the socket back, so every one of them wakes and looks again. One per
  // start, made on the first such wait, closed by its last user.
  std::shared_ptr<RxStopFd> rx_stop_fd;
  // Senders blocked on a full ingress queue poll space_fd, an eventfd that a
  // reader freeing room (or the psock stopping) signals; made on the first
  // wait and kept across recycling.
  int space_fd = -1;
  std::atomic<uint32_t> space_waiters{0};
  // A domain's stream socket: its ingress queue is the socket's shared ring
  // (core/psock/sk_msg_queue.h), attached on first use, detached by the drop;
  // ring_none once the socket is known to have none.
  std::atomic<domain::SockRing*> ring{nullptr};
  std::atomic<bool> ring_none{false};
  // The reader has taken every byte the socket's TCP peer sent by TCP before
  // its first redirect into the ring (core/rx/skmsg_ingress.cc,
  // tcp_before_ring): from now on the ring is read first.
  std::atomic<bool> ring_ordered{false};
  // As a sender: it told its TCP peer's ring in another process how many
  // bytes it had written by TCP (core/maps/bpf_helpers.cc).
  std::atomic<bool> ring_tcp_told{false};

  // sk_psock_test_state(psock, SK_PSOCK_TX_ENABLED).
  std::atomic<bool> tx_enabled{false};

  // The map slots holding this psock, and its receive hook; under link_lock.
  SpinLock link_lock;
  PsockLinks links;
  RxHook rx_hook = RxHook::none;

 private:
  std::atomic<uint32_t> refcnt_{0};

 public:
  // The engine's own dup of the socket, made internal, for reading (a psock
  // it reads) and for egress redirects (a target); every call on it holds
  // sk_fd_lock, so a stop may close it from any thread, at once.
  std::mutex sk_fd_lock;
  int sk_fd = -1;
  uint32_t sk_fd_events = 0;          // what the event loop watches on sk_fd
  std::atomic<bool> rx_on{false};     // the engine reads this socket
  std::atomic<uint64_t> rx_epoch{0};  // bumped by every start and stop
  std::atomic<uint64_t> rx_fork{0};   // the fork count of the process that started it
  // Bytes in the kernel's queue at the start wait for the first read,
  // readiness query or new arrival, as they wait for tcp_data_ready in the
  // kernel: rx_predating_inq is how many there were.
  std::atomic<bool> rx_predating{false};
  std::atomic<int> rx_predating_inq{0};
  // A stop found bytes taken from the socket and not yet applied: the reader
  // gets the socket back once they are (a reference keeps the psock meanwhile).
  std::atomic<bool> rx_draining{false};
  // Sources whose verdict waits for room in this queue or for this socket to
  // become writable; each is run again when that happens.
  std::mutex waiters_lock;
  std::vector<RxWaiter> waiters;
  std::atomic<bool> has_waiters{false};

  // Limits of the ingress queue and the fd the socket was last seen at.
  std::atomic<int> rcvbuf{0};
  std::atomic<int> fd_hint{-1};
  // Bumped by psock_init: what names a psock (a waiter, an event loop
  // callback, an epoll record) tells a recycled one from the one it named.
  std::atomic<uint64_t> generation{0};

  PsockStats stats;

 private:
  friend Psock* psock_init(Socket* sk) noexcept;
  friend bool psock_try_get(Psock* p) noexcept;
  friend void psock_put(Psock* p) noexcept;
  friend class PsockPool;
  void reset() noexcept;
  void drop() noexcept;

  Psock* next_free_ = nullptr;
};

// What the layers above the psock do at points the psock reaches, as the
// kernel's psock saves a socket's callbacks and sk_prot points at tcp_bpf's:
// the receive engine (core/rx/) and the readiness hooks (core/readiness/)
// each fill in theirs once, at start-up (a static initialiser), before any
// psock exists; core_dep links every object, so they always run.
struct PsockOps {
  // The receive engine: start reading psock's socket (sk_psock_start_strp /
  // _verdict; fd is one of its fds or -1), stop (sk_psock_stop_strp /
  // _verdict), and from the drop: stop, and discard the bytes it held.
  void (*start_rx)(Psock* psock, int fd) noexcept = nullptr;
  void (*stop_rx)(Psock* psock) noexcept = nullptr;
  void (*drop_rx)(Psock* psock) noexcept = nullptr;
  // In a fork child, for each pooled psock: live is it while it has a
  // reference, null when it is in the pool.
  void (*fork_child_rx)(Psock* live, Psock& slot) noexcept = nullptr;
  // Another process made room in psock's ring: sources waiting for room run
  // again (sk_psock_rx_wake).
  void (*rx_wake)(Psock* psock) noexcept = nullptr;
  // Readiness: sk's psock appeared, changed its receive side or is going
  // (psock_poll_link); the psock's event_fd is about to close (psock_poll_forget).
  void (*poll_link)(Socket* sk) noexcept = nullptr;
  void (*poll_forget)(int event_fd) noexcept = nullptr;
};

// The installed operations (filled in at start-up, read-only after).
PsockOps& psock_ops() noexcept;

// Creates sk's psock with one reference and publishes it in sk->psock
// (sk_psock_init); null, with nothing published, when memory is short. The
// caller holds sk->lock() and sk has no psock.
Psock* psock_init(Socket* sk) noexcept;

// A reference on p unless it is already being dropped (refcount_inc_not_zero).
bool psock_try_get(Psock* p) noexcept;

// Drops a reference; the last one unpublishes the psock, stops it, discards its
// queued and corked bytes and recycles it (sk_psock_put -> sk_psock_drop).
void psock_put(Psock* p) noexcept;

// A counted reference that puts itself.
class PsockRef {
 public:
  PsockRef() = default;
  explicit PsockRef(Psock* p) noexcept : p_(p) {}  // adopts a reference
  PsockRef(PsockRef&& o) noexcept : p_(o.p_) { o.p_ = nullptr; }
  PsockRef& operator=(PsockRef&& o) noexcept {
    if (this != &o) {
      reset();
      p_ = o.p_;
      o.p_ = nullptr;
    }
    return *this;
  }
  PsockRef(const PsockRef&) = delete;
  PsockRef& operator=(const PsockRef&) = delete;
  ~PsockRef() { reset(); }
  void reset() noexcept {
    if (p_) psock_put(p_);
    p_ = nullptr;
  }
  Psock* get() const noexcept { return p_; }
  Psock* operator->() const noexcept { return p_; }
  explicit operator bool() const noexcept { return p_ != nullptr; }

 private:
  Psock* p_ = nullptr;
};

// sk's psock with a temporary reference, or empty (sk_psock_get). Lock-free:
// psocks are type-stable (recycled, never freed), like socket records.
PsockRef psock_get(Socket* sk) noexcept;

// Frees psock's corked message (sk_psock_cork_free), counting its bytes as
// dropped; the caller holds psock->tx_lock (or the last reference went).
void sk_psock_cork_free(Psock* psock) noexcept;

// One fd of this process that refers to sk, or -1 (the redirect target's fd for
// egress and SO_RCVBUF).
int socket_fd(Socket* sk) noexcept;

// Forks this process came from (bumped first in a fork child): a receive
// engine started before the last one is not this process's.
extern std::atomic<uint64_t> g_psock_forks;

// Live psocks, for tests and dump.
uint64_t psock_count() noexcept;

// References to the live psocks of datagram sockets (before fork).
void psock_datagram_psocks(std::vector<PsockRef>* out) noexcept;

// In a fork child: frees every psock lock and the pool's, which threads that
// do not exist there may have held, and lets the receive engine forget what
// was the parent's.
void psock_after_fork_child() noexcept;

}  // namespace sockshim
