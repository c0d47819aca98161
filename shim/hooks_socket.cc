// Socket lifecycle hooks: creation, connection, listening, accepting, shutdown.
#include <errno.h>
#include <sys/socket.h>

#include "core/control/control_server.h"
#include "core/maps/sk_storage.h"
#include "core/maps/sock_ops.h"
#include "core/rx/skmsg_ingress.h"
#include "core/sock/errno_saver.h"
#include "core/sock/sock_query.h"
#include "core/sock/tcp_connect.h"
#include "shim/hook.h"

using namespace sockshim;

SOCKSHIM_HOOK int socket(int domain, int type, int protocol) {
  int fd = real::socket(domain, type, protocol);
  if (fd >= 0) {
    registry::track_new(fd, domain, type, protocol);
    control::ensure_started();
  }
  return fd;
}

SOCKSHIM_HOOK int socketpair(int domain, int type, int protocol, int sv[2]) {
  int r = real::socketpair(domain, type, protocol, sv);
  if (r == 0) {
    for (int i = 0; i < 2; ++i) {
      registry::track_new(sv[i], domain, type, protocol);
      // Both ends are connected from birth (TCP_ESTABLISHED in the kernel), so
      // a redirect may target them (sock_map_redirect_allowed): record the peer.
      if (SocketRef s = registry::get(sv[i])) s->refresh_addresses(sv[i]);
    }
    control::ensure_started();
  }
  return r;
}

namespace {

void note_accepted(int listen_fd, int fd, int flags) noexcept {
  ErrnoSaver saved;
  registry::track_accepted(fd, flags, listen_fd);
  control::ensure_started();
  if (SocketRef child = registry::get(fd)) {
    if (SocketRef listener = registry::get(listen_fd))
      sk_storage_clone(listener.get(), child.get());
    sock_ops(policy::SockOp::passive_established, child.get(), fd);
  }
}

}  // namespace

SOCKSHIM_HOOK int connect(int fd, const sockaddr* addr, socklen_t len) {
  int r = real::connect(fd, addr, len);
  ErrnoSaver saved;
  int err = saved.value();
  Socket* s = registry::peek(fd);
  if (s && tcp_connect_pending(s) && (r == 0 || err == EISCONN || err == EALREADY)) {
    // A second connect() on a non-blocking one: 0 once the handshake is done.
    tcp_finish_connect(fd);
  } else if (r == 0 || err == EINPROGRESS) {
    // tcp_connect runs as the SYN leaves (here: once connect() returned, so the
    // local address is known), before active_established.
    sock_ops_transition(fd, TcpState::syn_sent, policy::SockOp::tcp_connect);
    if (r == 0)
      sock_ops_transition(fd, TcpState::established, policy::SockOp::active_established);
    else if (SocketRef ref = registry::get(fd); ref && sock_kind(*ref.get()) == SockKind::tcp)
      tcp_connect_start(ref.get());
  } else if (s) {
    registry::evict_if_stale(fd, s, err);
  }
  return r;
}

SOCKSHIM_HOOK int getsockopt(int fd, int level, int name, void* value, socklen_t* len) {
  int r = real::getsockopt(fd, level, name, value, len);
  if (r == 0 && level == SOL_SOCKET && name == SO_ERROR) [[unlikely]]
    if (Socket* s = registry::peek(fd)) {
      if (tcp_connect_pending(s)) tcp_finish_connect(fd);
      psock_so_error(fd, value, len);
    }
  return r;
}

// getpeername answers ENOTCONN until the handshake is done: a program may ask
// it to learn that a non-blocking connect completed (haproxy does).
SOCKSHIM_HOOK int getpeername(int fd, sockaddr* addr, socklen_t* len) {
  Socket* s = registry::peek(fd);
  if (s && tcp_connect_pending(s)) [[unlikely]]
    tcp_finish_connect(fd);
  return real::getpeername(fd, addr, len);
}

SOCKSHIM_HOOK int listen(int fd, int backlog) {
  int r = real::listen(fd, backlog);
  if (r == 0) sock_ops_transition(fd, TcpState::listen, policy::SockOp::listen);
  return r;
}

SOCKSHIM_HOOK int accept4(int fd, sockaddr* addr, socklen_t* len, int flags) {
  int c = real::accept4(fd, addr, len, flags);
  if (c >= 0) note_accepted(fd, c, flags);
  return c;
}

SOCKSHIM_HOOK int accept(int fd, sockaddr* addr, socklen_t* len) {
  int c = real::accept(fd, addr, len);
  if (c >= 0) note_accepted(fd, c, 0);
  return c;
}

SOCKSHIM_HOOK int shutdown(int fd, int how) {
  Socket* s = registry::peek(fd);
  if (!s) return real::shutdown(fd, how);
  int r = shim::on_tracked(fd, s, [&] { return real::shutdown(fd, how); });
  if (r == 0) {
    ErrnoSaver saved;
    if (SocketRef ref = registry::get(fd)) {
      std::lock_guard g(ref->lock());
      ref->shut_rd |= how == SHUT_RD || how == SHUT_RDWR;
      ref->shut_wr |= how == SHUT_WR || how == SHUT_RDWR;
    }
  }
  return r;
}
