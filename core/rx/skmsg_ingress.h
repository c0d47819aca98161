// A psock's ingress queue (psock->ingress_msg) as its owner sees it: the
// redirect path appends to it (bpf_tcp_ingress), recv/read/recvmsg read it
// first (tcp_bpf_recvmsg, __sk_msg_recvmsg), FIONREAD counts it, and the
// readiness hooks report it. Unlike the kernel the queue is bounded by the
// target's SO_RCVBUF: a full queue makes the sender wait or gives it EAGAIN;
// nothing is dropped for lack of room.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "core/psock/psock.h"
#include "core/psock/psock_ext.h"
#include "policy/sk_msg.h"

namespace sockshim {

// Moves the first `bytes` of msg into target's ingress queue and erases them
// from msg. 0 once all moved; -EAGAIN when the queue is full and the sender
// does not wait; -EINTR when a signal interrupted the wait (what moved stays
// moved and is gone from msg). A target that left its maps takes the bytes and
// discards them, as the kernel's stopping psock does. A waiting sender sleeps
// until the target's reader frees room or the target stops.
// sender_fd (or -1) is asked for O_NONBLOCK before a wait.
int bpf_tcp_ingress(Psock* target, policy::SkMsg& msg, uint32_t bytes, bool nonblock,
                    int sender_fd) noexcept;

// Appends as much of bytes to target's queue as its limit lets in, without
// waiting; returns how much. The receive engine's PASS and ingress redirect.
// A datagram socket's queue takes bytes whole or not at all (one message, one
// datagram for its reader), with name, the datagram's source, if given.
size_t sk_psock_ingress_push(Psock* target, std::span<const uint8_t> bytes,
                             const SockAddr* name = nullptr) noexcept;

// Wakes senders waiting for room in p's queue (it has room, or p stops).
void sk_psock_space_signal(Psock* p) noexcept;

// p's reader sees only the queue (on: the receive engine reads p's socket) or
// reads the socket itself again (off: every waiter wakes and looks again); and
// what the engine found that p's reader is due once the queue is empty: EOF, a
// socket error, a stopped parser (whose reads then give EAGAIN).
void sk_psock_rx_reading(Psock* p, bool on) noexcept;
void sk_psock_rx_report(Psock* p, bool eof, int err, bool aborted) noexcept;

// True while p's reader sees only the queue (psock->rx_reads).
bool sk_psock_rx_reads(Psock* p) noexcept;

// For a waiter that sees only p's queue: the eventfd that turns readable when
// the reader gets the socket back, held by *out for the wait (left empty when
// none can be made: the waiter then wakes on the queue alone). False when the
// reader already reads the socket itself: look again instead of waiting.
bool sk_psock_rx_stop_wait(Psock* p, std::shared_ptr<RxStopFd>* out) noexcept;

// Discards p's queued bytes (a fork child's copies of its parent's), except
// datagrams with a claim (sk_msg_fork_claims), which the child may take.
void sk_psock_ingress_discard(Psock* p) noexcept;

// Before fork: each datagram in the queue of p, a datagram socket, gets a
// claim (if it has none), so that the first process to read it takes it and
// the others drop it: a parent that peeked and forked a child to read it
// (socat UDP-RECVFROM,fork) finds it gone, the child finds it queued.
void sk_msg_fork_claims(Psock* p) noexcept;

// getsockopt(SO_ERROR) on fd returned 0 in *value: a socket error the receive
// engine took from the kernel for fd's reader is reported (once) instead.
void psock_so_error(int fd, void* value, socklen_t* len) noexcept;

// O_NONBLOCK of fd as the kernel has it.
bool fd_nonblocking(int fd) noexcept;

// Copies up to the iovecs' length from p's queue across queued messages
// (consuming them unless MSG_PEEK). Returns the bytes copied; 0 when the queue
// is empty.
size_t sk_msg_recvmsg(Psock* p, const iovec* iov, size_t iovcnt, int flags) noexcept;

// udp_bpf_recvmsg / unix_bpf_recvmsg as sockshim keeps boundaries (§7): takes
// the first queued message whole into msg's iovecs (unless MSG_PEEK), as one
// datagram: its source in msg_name (msg_namelen 0 when it has none),
// MSG_TRUNC in msg_flags when cut; returns the bytes copied, or with MSG_TRUNC
// in flags its full length. -1 when the queue is empty (errno untouched).
ssize_t sk_msg_recv_dgram(Psock* p, msghdr* msg, int flags) noexcept;

// Bytes waiting in p's queue (sk_psock_msg_inq).
size_t sk_psock_msg_inq(Psock* p) noexcept;

// True when a read on p's socket would not wait: its queue holds bytes (and,
// for a socket the receive engine reads, EOF or an error is due; bytes the
// engine has not passed do not count). What poll, select and epoll report as
// readable for a psock.
bool sk_psock_readable(Psock* p) noexcept;

// The receive-side poll bits of p as the kernel's tcp_poll would give them for
// its queue (POLLIN | POLLRDNORM while readable; for a socket the receive
// engine reads, also POLLRDHUP / POLLHUP / POLLERR once its EOF or error is due).
short sk_psock_poll(Psock* p) noexcept;

// FIONREAD on fd, given the kernel's count in *value: a socket the receive
// engine reads counts its queue only (tcp_bpf_ioctl); otherwise the queue is
// added to the socket's own count (6.18 gives only the queue, bpf-next adds
// the socket's bytes when there is no verdict; sockshim always adds them).
// A datagram socket gives the size of its next datagram, the queue's first.
void psock_fionread(int fd, int* value) noexcept;

// An eventfd readable exactly while sk_psock_readable(p) (made on first use),
// or -1 when it cannot be made.
int ingress_event_fd(Psock* p) noexcept;

// Reads from a socket with a psock (tcp_bpf_recvmsg, tcp_bpf_recvmsg_parser):
// the queue first, then, unless the receive engine reads the socket, its own
// bytes; with the engine, EOF and errors come after the queued bytes. A
// blocking caller waits for either (up to SO_RCVTIMEO: EAGAIN); a signal ends
// the wait with EINTR, or with the bytes copied so far. MSG_PEEK, MSG_WAITALL
// and MSG_DONTWAIT as for TCP. Returns what recvmsg would, errno set on -1.
// msg may carry a name and control buffer: both come back empty for queued bytes.
ssize_t tcp_bpf_recvmsg(int fd, Psock* p, msghdr* msg, int flags, bool nonblock) noexcept;

}  // namespace sockshim
