// A psock's ingress queue (psock->ingress_msg) and what its reader is due:
// the one enqueue (sk_psock_queue_msg) that the send path's ingress redirect
// (bpf_tcp_ingress) and the receive engine (PASS, ingress redirect) use, the
// room a queue has, and the eventfds its readers and blocked senders wait on.
// The reader that takes from it is core/rx/skmsg_ingress.
//
// Unlike the kernel the queue is bounded by the target's SO_RCVBUF: a full
// queue makes the sender wait or gives it EAGAIN; nothing is dropped for lack
// of room.
//
// Wake-ups reach the readiness hooks through plain eventfds the psock owns
// (event_fd, rx_stop_fd, space_fd), which poll and epoll wait on: no code of
// a higher layer runs under ingress_lock, and an enqueue costs one write(2)
// only while some reader waits.
//
// A psock whose socket is a domain's stream socket queues its ingress bytes
// in the socket's shared ring (core/domain/sock_ring.h) instead of its
// process-local list: bytes queued by any process of the domain are read by
// whichever holder reads first. The ring is attached on first use by a
// reader, a waiter or a writer, and detached by the psock's drop.
//
// Readers elsewhere hear of changes through their process's bell: the event
// loop thread drains it and brings every ring psock's eventfd, blocked
// senders and waiting sources up to date, then arms the ring's notify bits
// again. No polling: a process idle on a ring sleeps in epoll.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>

#include "core/domain/sock_ring.h"
#include "core/psock/psock.h"

namespace sockshim {

// True once any psock queued bytes for its reader: until then the readiness
// hooks have nothing to add and pass straight through.
extern std::atomic<bool> g_ingress_used;

// p's shared ring, attached now if it has none yet; nullptr for a socket with
// none (no domain, not TCP, or it could not be attached: the local queue then
// serves, as before).
domain::SockRing* sk_psock_ring(Psock* p) noexcept;

// The ring p has already attached, or nullptr (no attach: cheap).
inline domain::SockRing* sk_psock_ring_attached(Psock* p) noexcept {
  return p->ring.load(std::memory_order_acquire);
}

// Appends as much of bytes to ring r of p as fits now: the count (0: full).
// p's readers here are told; readers elsewhere through their bells.
size_t sk_psock_ring_push(Psock* p, domain::SockRing* r, std::span<const uint8_t> bytes) noexcept;

// Stream bytes that would fit in r now (its room less one record header).
size_t sk_psock_ring_room(domain::SockRing* r) noexcept;

// Arms r for what p's waiters here need (data, emptiness, and room while a
// sender or a source waits), so that the next such change rings this
// process's bell; makes sure the bell is watched.
void sk_psock_ring_arm(Psock* p, domain::SockRing* r) noexcept;

// In a fork child: the inherited rings are watched by the child too, and
// the child's bell is made and watched on its first use.
void sk_psock_rings_after_fork_child() noexcept;

// One message with its list node, allocated before the queue's lock is taken
// (the kernel's sk_psock_init_link pattern): a queue then takes it without
// allocating.
using SkMsgNode = std::list<SkMsgIngress>;

// Allocates a node holding bytes (moved in) and name: -ENOMEM, and *node
// empty, when memory is short.
int sk_msg_node_init(SkMsgNode* node, SkMsgBytes bytes = {},
                     std::unique_ptr<SockAddr> name = nullptr) noexcept;

// sk_psock_queue_msg: appends the message in node (from sk_msg_node_init) to
// p's queue, counts it, and wakes p's readers. Cannot fail.
void sk_psock_queue_msg(Psock* p, SkMsgNode&& node) noexcept;

// Both: bytes as one message of p's queue; -ENOMEM (and nothing queued).
int sk_psock_queue_bytes(Psock* p, SkMsgBytes bytes) noexcept;

// Appends as much of bytes to target's queue as its limit lets in, without
// waiting; returns how much. The receive engine's PASS and ingress redirect.
// A datagram socket's queue takes bytes whole or not at all (one message, one
// datagram for its reader), with name, the datagram's source, if given.
size_t sk_psock_ingress_push(Psock* target, std::span<const uint8_t> bytes,
                             const SockAddr* name = nullptr) noexcept;

// An empty datagram (udp_read_skb hands one to the verdict like any other) as
// one message of target's queue, with its source: 0, -EAGAIN when the queue is
// full, -ENOMEM.
// Each counts kSkMsgEmptyCharge against the limit, so a flood of them cannot
// grow the queue without bound (the kernel charges each skb's truesize).
int sk_psock_ingress_push_empty(Psock* target, const SockAddr* name) noexcept;
inline constexpr size_t kSkMsgEmptyCharge = 256;

// The most p's queue holds (its socket's SO_RCVBUF, asked once).
size_t sk_psock_queue_limit(Psock* p) noexcept;

// The room p's queue has for a message of `bytes` under limit: a datagram
// socket's reader reads a message whole, so there it is all of it (when it
// fits, or the queue is empty) or 0.
size_t sk_psock_msg_room(Psock* p, size_t limit, size_t bytes) noexcept;

// The target left every map: its psock is going and its queue with it.
bool sk_psock_stopping(Psock* p) noexcept;

// A blocked sender's wake-up: an eventfd signalled when room appears in p's
// queue (made on first use; -1 when it cannot be).
int sk_psock_space_fd(Psock* p) noexcept;

// Wakes senders waiting for room in p's queue (it has room, or p stops).
void sk_psock_space_signal(Psock* p) noexcept;

// p's reader sees only the queue (on: the receive engine reads p's socket) or
// reads the socket itself again (off: every waiter wakes and looks again); and
// what the engine found that p's reader is due once the queue is empty: EOF, a
// socket error, a stopped parser (whose reads then give EAGAIN).
void sk_psock_rx_reading(Psock* p, bool on) noexcept;
void sk_psock_rx_report(Psock* p, bool eof, int err, bool aborted) noexcept;

// True while p's reader sees only the queue (psock->engine_reads). Inline:
// every read asks.
inline bool sk_psock_engine_reads(Psock* p) noexcept {
  std::lock_guard g(p->ingress_lock);
  return p->engine_reads;
}

// For a waiter that sees only p's queue: the eventfd that turns readable when
// the reader gets the socket back, held by *out for the wait (left empty when
// none can be made: the waiter then wakes on the queue alone). False when the
// reader already reads the socket itself: look again instead of waiting.
bool sk_psock_rx_stop_wait(Psock* p, std::shared_ptr<RxStopFd>* out) noexcept;

// True when p's reader would not wait, under p->ingress_lock. Bytes the
// engine has not passed (waiting in the kernel, or held mid-frame) are not
// the reader's.
bool sk_psock_readable_locked(Psock* p) noexcept;

// Keeps p's eventfd readable exactly while p is; under p->ingress_lock.
void sk_psock_sync_event_locked(Psock* p) noexcept;

// An eventfd readable exactly while p's reader would not wait (made on first
// use), or -1 when it cannot be made.
int ingress_event_fd(Psock* p) noexcept;

// Discards p's queued bytes (a fork child's copies of its parent's), except
// datagrams with a claim (sk_msg_fork_claims), which the child may take.
void sk_psock_ingress_discard(Psock* p) noexcept;

// Before fork: each datagram in the queue of p, a datagram socket, gets a
// claim (if it has none), so that the first process to read it takes it and
// the others drop it: a parent that peeked and forked a child to read it
// (socat UDP-RECVFROM,fork) finds it gone, the child finds it queued.
void sk_msg_fork_claims(Psock* p) noexcept;

// Before fork (the fork hook): queued datagrams get their claims
// (sk_msg_fork_claims). Nothing to do until a psock ever queued bytes.
void sk_msg_queue_before_fork() noexcept;

// Whether p's queue holds a message, an empty datagram included
// (sk_msg_is_readable).
inline bool sk_psock_msg_queued(Psock* p) noexcept {
  if (domain::SockRing* r = sk_psock_ring_attached(p); r && r->ring().readable()) return true;
  std::lock_guard g(p->ingress_lock);
  return !p->ingress_msg.empty();
}

// Bytes waiting in p's queue (sk_psock_msg_inq). Inline: every read asks.
inline size_t sk_psock_msg_inq(Psock* p) noexcept {
  domain::SockRing* r = sk_psock_ring_attached(p);
  size_t ring = r ? r->ring().queued_bytes() : 0;
  std::lock_guard g(p->ingress_lock);
  return p->ingress_bytes + ring;
}

// O_NONBLOCK of fd as the kernel has it.
bool fd_nonblocking(int fd) noexcept;

// An eventfd's count: one more (errno kept), or taken.
void eventfd_signal(int efd) noexcept;
void eventfd_drain(int efd) noexcept;

}  // namespace sockshim
