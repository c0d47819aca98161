#include "core/sock/sock_query.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/sock/errno_saver.h"
#include "core/sock/real.h"
#include "core/sock/registry.h"

#ifndef SO_COOKIE
#define SO_COOKIE 57
#endif
#ifndef TCP_ULP
#define TCP_ULP 31
#endif
#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif

namespace sockshim {

namespace {

constexpr int kTcpEstablished = 1;
constexpr int kTcpListen = 10;

// Why fd has no socket record: -EBADF or -ENOTSOCK, as sockfd_lookup says.
int no_socket_errno(int fd) noexcept {
  if (real::fcntl(fd, F_GETFD, 0) < 0) return -EBADF;
  int type;
  socklen_t len = sizeof type;
  if (real::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 && errno == ENOTSOCK)
    return -ENOTSOCK;
  return -ENOMEM;
}

bool read_cookie(int fd, uint64_t* cookie, int* err) noexcept {
  socklen_t len = sizeof *cookie;
  if (real::getsockopt(fd, SOL_SOCKET, SO_COOKIE, cookie, &len) == 0) return true;
  *err = errno;
  return false;
}

}  // namespace

int sockfd_lookup(int fd, SocketRef* out, bool verify) noexcept {
  if (fd < 0) return -EBADF;
  ErrnoSaver saved;
  SocketRef r = registry::adopt(fd);
  if (r && registry::is_internal(r.get())) {
    return -EBADF;  // the shim's own fds are not the program's sockets
  }
  if (r && verify) {
    uint64_t cookie = 0;
    int err = 0;
    if (!read_cookie(fd, &cookie, &err)) {
      registry::evict_if_stale(fd, r.get(), err);
      r.reset();
    } else if (cookie != r->cookie) {
      // The fd was closed and reused behind the shim's back: the record
      // belongs to a socket that is gone.
      if (Socket* stale = registry::untrack(fd)) registry::drop(stale);
      r = registry::adopt(fd);
    }
  }
  int ret = r ? 0 : no_socket_errno(fd);
  *out = std::move(r);
  return ret;
}

SockKind sock_kind(const Socket& s) noexcept {
  switch (s.family) {
    case AF_INET:
    case AF_INET6:
      if (s.type == SOCK_STREAM && s.protocol == IPPROTO_TCP) return SockKind::tcp;
      if (s.type == SOCK_DGRAM && s.protocol == IPPROTO_UDP) return SockKind::udp;
      return SockKind::other;
    case AF_UNIX:
      if (s.type == SOCK_STREAM) return SockKind::unix_stream;
      if (s.type == SOCK_DGRAM) return SockKind::unix_dgram;
      return SockKind::other;
    case AF_VSOCK:
      return s.type == SOCK_STREAM || s.type == SOCK_SEQPACKET ? SockKind::vsock : SockKind::other;
    default:
      return SockKind::other;
  }
}

bool sock_map_sk_state_allowed(int fd, const Socket& s) noexcept {
  ErrnoSaver saved;
  bool allowed = false;
  switch (sock_kind(s)) {
    case SockKind::tcp: {
      tcp_info info{};
      socklen_t len = sizeof info;
      allowed = real::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) == 0 &&
                (info.tcpi_state == kTcpEstablished || info.tcpi_state == kTcpListen);
      break;
    }
    case SockKind::unix_stream:
    case SockKind::vsock: {
      sockaddr_storage a;
      socklen_t len = sizeof a;
      allowed = real::getpeername(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0;
      break;
    }
    case SockKind::udp: {
      sockaddr_storage a{};
      socklen_t len = sizeof a;
      if (real::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
        in_port_t port = a.ss_family == AF_INET6
                             ? reinterpret_cast<const sockaddr_in6&>(a).sin6_port
                             : reinterpret_cast<const sockaddr_in&>(a).sin_port;
        allowed = port != 0;
      }
      break;
    }
    case SockKind::unix_dgram:
      allowed = true;
      break;
    case SockKind::other:
      break;
  }
  return allowed;
}

TcpState sock_state_for_dump(int fd, Socket& s) noexcept {
  s.fill_addresses(fd);
  if (sock_kind(s) == SockKind::tcp) {
    ErrnoSaver saved;
    tcp_info info{};
    socklen_t len = sizeof info;
    int r = real::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len);
    if (r == 0) return static_cast<TcpState>(info.tcpi_state);
  }
  std::lock_guard g(s.lock());
  return s.state;
}

bool sock_has_ulp(int fd) noexcept {
  ErrnoSaver saved;
  char name[16] = {};
  socklen_t len = sizeof name;
  bool has = real::getsockopt(fd, IPPROTO_TCP, TCP_ULP, name, &len) == 0 && len > 0 && name[0] != 0;
  return has;
}

}  // namespace sockshim
