// The send path of a socket whose psock has an sk_msg program (net/ipv4/
// tcp_bpf.c: tcp_bpf_sendmsg, tcp_bpf_send_verdict): the caller's bytes become
// an SkMsg, cork_bytes and apply_bytes decide when the verdict runs, and the
// verdict passes the bytes out of this socket, drops them (EACCES), or
// redirects them out of another socket or into its ingress queue.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <cstddef>

#include "core/psock/psock.h"
#include "core/sock/socket.h"

namespace sockshim {

// Only TCP has the sk_msg send hook (tcp_bpf_sendmsg): UDP and unix sockets
// in a map with an sk_msg program send as usual, as in the kernel.
inline bool tcp_bpf_socket(const Socket& s) noexcept {
  return s.type == SOCK_STREAM && (s.family == AF_INET || s.family == AF_INET6);
}

// True when sends on sk go through tcp_bpf_sendmsg (its psock has an sk_msg
// program). Lock-free, and inline: the hooks ask it of every socket with a psock.
inline bool tcp_bpf_active(Socket* sk) noexcept {
  Psock* p = sk->psock.load(std::memory_order_acquire);
  return p && p->progs.msg_parser.load(std::memory_order_relaxed) && tcp_bpf_socket(*sk);
}

// sendmsg on fd (a socket of sk, which the caller holds a reference on) with
// the kernel's outcome: the count of bytes the caller gave that were accepted
// (sent, queued, corked) or -errno (-EACCES for a drop, -EPIPE for a
// redirect target that went away, and whatever the real send said). When sk
// has no sk_msg program any more, the real sendmsg runs. A count leaves errno
// as it was.
ssize_t tcp_bpf_sendmsg(int fd, Socket* sk, const iovec* iov, size_t iovcnt, int flags) noexcept;

// sendfile(out, in, offset, count) on a socket with an sk_msg program: the
// program sees the file's bytes (as since Linux 6.5); when it reads no data and
// passes, the real zero-copy sendfile runs. The count of bytes sent, or
// -errno when there are none; errno is left as it was.
ssize_t tcp_bpf_sendfile(int out, Socket* sk, int in, off64_t* offset, size_t count) noexcept;

}  // namespace sockshim
