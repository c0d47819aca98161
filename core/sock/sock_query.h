// The socket checks of sock_map_update_elem_sys, asked from the kernel rather
// than from what the shim has seen: SO_COOKIE, TCP_INFO, getsockname,
// getpeername, TCP_ULP.
#pragma once

#include <cstdint>

#include "core/sock/socket.h"

namespace sockshim {

// sockfd_lookup: fd's record (adopted if the shim never saw the socket, replaced
// if stale). 0, -EBADF (not an open fd) or -ENOTSOCK. verify re-reads the
// cookie from the kernel to catch an fd closed behind the shim's back.
int sockfd_lookup(int fd, SocketRef* out, bool verify) noexcept;

// The protocols that have psock_update_sk_prot (sock_map_sk_is_suitable).
enum class SockKind : uint8_t { other, tcp, udp, unix_stream, unix_dgram, vsock };
SockKind sock_kind(const Socket& s) noexcept;
inline bool sock_map_sk_is_suitable(const Socket& s) noexcept {
  return sock_kind(s) != SockKind::other;
}

// sock_map_sk_state_allowed on 6.18: TCP ESTABLISHED or LISTEN; unix and
// vsock streams connected; UDP bound or connected (the kernel refuses an
// unhashed UDP socket); unix dgram always.
bool sock_map_sk_state_allowed(int fd, const Socket& s) noexcept;

// The state `dump` shows: a TCP socket's from the kernel (TCP_INFO: the record
// lags until a hook sees a change), the record's for others. The record's
// missing addresses are filled in first (a bind or an implicit bind the shim
// does not hook).
TcpState sock_state_for_dump(int fd, Socket& s) noexcept;

// A TCP socket with an upper layer protocol (kTLS) cannot get a psock.
bool sock_has_ulp(int fd) noexcept;

}  // namespace sockshim
