// The reader of a psock's ingress queue (tcp_bpf_recvmsg, __sk_msg_recvmsg):
// recv/read/recvmsg read the queue first (core/psock/sk_msg_queue), FIONREAD
// counts it, SO_ERROR reports what the receive engine found, and the
// readiness hooks ask what a read would see.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>

#include "core/psock/psock.h"
#include "core/psock/sk_msg_queue.h"

namespace sockshim {

// getsockopt(SO_ERROR) on fd returned 0 in *value: a socket error the receive
// engine took from the kernel for fd's reader is reported (once) instead.
void psock_so_error(int fd, void* value, socklen_t* len) noexcept;

// Copies up to the iovecs' length from p's queue across queued messages
// (consuming them unless MSG_PEEK), then from its shared ring unless
// !with_ring (which still attaches it). Returns the bytes copied; 0 when the
// queue is empty.
size_t sk_msg_recvmsg(Psock* p, const iovec* iov, size_t iovcnt, int flags,
                      bool with_ring) noexcept;

// udp_bpf_recvmsg / unix_bpf_recvmsg as sockshim keeps boundaries (§7): takes
// the first queued message whole into msg's iovecs (unless MSG_PEEK), as one
// datagram: its source in msg_name (msg_namelen 0 when it has none),
// MSG_TRUNC in msg_flags when cut; returns the bytes copied, or with MSG_TRUNC
// in flags its full length. -1 when the queue is empty (errno untouched).
ssize_t sk_msg_recv_dgram(Psock* p, msghdr* msg, int flags) noexcept;

// True when a read on p's socket would not wait: its queue holds bytes (and,
// for a socket the receive engine reads, EOF or an error is due; bytes the
// engine has not passed do not count). What poll, select and epoll report as
// readable for a psock.
bool sk_psock_readable(Psock* p) noexcept;

// The receive-side poll bits of p as the kernel's tcp_poll would give them for
// its queue (POLLIN | POLLRDNORM while readable; for a socket the receive
// engine reads, also POLLRDHUP / POLLHUP / POLLERR once its EOF or error is due).
// reading: the query asks whether p is readable, which in a fork child starts
// its engine (sk_psock_rx_active); one that asks only for writability does
// not, or the child's engine would take datagrams its parent waits for.
short sk_psock_poll(Psock* p, bool reading = true) noexcept;

// FIONREAD on fd, given the kernel's count in *value: a socket the receive
// engine reads counts its queue only (tcp_bpf_ioctl); otherwise the queue is
// added to the socket's own count (6.18 gives only the queue, bpf-next adds
// the socket's bytes when there is no verdict; sockshim always adds them).
// A datagram socket gives the size of its next datagram, the queue's first.
void psock_fionread(int fd, int* value) noexcept;

// Reads from a socket with a psock (tcp_bpf_recvmsg, tcp_bpf_recvmsg_parser):
// the queue first, then, unless the receive engine reads the socket, its own
// bytes; with the engine, EOF and errors come after the queued bytes. A
// blocking caller waits for either (up to SO_RCVTIMEO: EAGAIN); a signal ends
// the wait with EINTR, or with the bytes copied so far. MSG_PEEK, MSG_WAITALL
// and MSG_DONTWAIT as for TCP. Returns what recvmsg would, or -errno.
// msg may carry a name and control buffer: both come back empty for queued bytes.
ssize_t tcp_bpf_recvmsg(int fd, Psock* p, msghdr* msg, int flags, bool nonblock) noexcept;

}  // namespace sockshim
