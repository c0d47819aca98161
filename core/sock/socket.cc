#include "core/sock/socket.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cstring>

#include "core/sock/errno_saver.h"
#include "core/sock/real.h"

#ifndef SO_COOKIE
#define SO_COOKIE 57
#endif

namespace sockshim {

std::string format_address(const SockAddr& a) {
  char host[INET6_ADDRSTRLEN] = "";
  switch (a.addr.ss_family) {
    case AF_INET: {
      const auto* in = reinterpret_cast<const sockaddr_in*>(&a.addr);
      inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
      return std::string(host) + ":" + std::to_string(ntohs(in->sin_port));
    }
    case AF_INET6: {
      const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&a.addr);
      inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
      return "[" + std::string(host) + "]:" + std::to_string(ntohs(in6->sin6_port));
    }
    case AF_UNIX: {
      const auto* un = reinterpret_cast<const sockaddr_un*>(&a.addr);
      size_t len =
          a.len > offsetof(sockaddr_un, sun_path) ? a.len - offsetof(sockaddr_un, sun_path) : 0;
      if (len == 0) return "";
      if (un->sun_path[0] == '\0') return "@" + std::string(un->sun_path + 1, len - 1);
      return std::string(un->sun_path, strnlen(un->sun_path, len));
    }
    default:
      return "";
  }
}

const char* tcp_state_name(TcpState s) noexcept {
  switch (s) {
    case TcpState::established:
      return "ESTABLISHED";
    case TcpState::syn_sent:
      return "SYN_SENT";
    case TcpState::syn_recv:
      return "SYN_RECV";
    case TcpState::fin_wait1:
      return "FIN_WAIT1";
    case TcpState::fin_wait2:
      return "FIN_WAIT2";
    case TcpState::time_wait:
      return "TIME_WAIT";
    case TcpState::close:
      return "CLOSE";
    case TcpState::close_wait:
      return "CLOSE_WAIT";
    case TcpState::last_ack:
      return "LAST_ACK";
    case TcpState::listen:
      return "LISTEN";
    case TcpState::closing:
      return "CLOSING";
    case TcpState::new_syn_recv:
      return "NEW_SYN_RECV";
    case TcpState::unknown:
      break;
  }
  return "-";
}

bool Socket::set_state(TcpState s) noexcept {
  std::lock_guard g(lock_);
  TcpState before = state;
  state = s;
  return before != s;
}

namespace {

int int_option(int fd, int name, int* out) noexcept {
  socklen_t len = sizeof *out;
  return real::getsockopt(fd, SOL_SOCKET, name, out, &len);
}

}  // namespace

bool Socket::describe(int fd) noexcept {
  ErrnoSaver saved;
  if (int_option(fd, SO_TYPE, &type) != 0 || int_option(fd, SO_DOMAIN, &family) != 0 ||
      int_option(fd, SO_PROTOCOL, &protocol) != 0) {
    return false;
  }
  fetch_cookie(fd);
  int fl = real::fcntl(fd, F_GETFL, 0);
  nonblocking.store(fl >= 0 && (fl & O_NONBLOCK), std::memory_order_relaxed);
  refresh_addresses(fd);
  return true;
}

void Socket::fetch_cookie(int fd) noexcept {
  ErrnoSaver saved;
  socklen_t len = sizeof cookie;
  if (real::getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &len) != 0) cookie = 0;
}

void kernel_addresses(int fd, SockAddr* local, SockAddr* remote) noexcept {
  ErrnoSaver saved;
  local->len = remote->len = sizeof(sockaddr_storage);
  if (real::getsockname(fd, reinterpret_cast<sockaddr*>(&local->addr), &local->len) != 0)
    local->len = 0;
  if (real::getpeername(fd, reinterpret_cast<sockaddr*>(&remote->addr), &remote->len) != 0)
    remote->len = 0;
}

void Socket::refresh_addresses(int fd) noexcept {
  SockAddr l, r;
  kernel_addresses(fd, &l, &r);
  std::lock_guard g(lock_);
  local = l;
  remote = r;
}

namespace {

bool has_port(const SockAddr& a) noexcept {
  switch (a.addr.ss_family) {
    case AF_INET:
      return reinterpret_cast<const sockaddr_in&>(a.addr).sin_port != 0;
    case AF_INET6:
      return reinterpret_cast<const sockaddr_in6&>(a.addr).sin6_port != 0;
    default:
      return a.len > sizeof(sa_family_t);  // a bound unix socket has a path
  }
}

}  // namespace

void Socket::fill_addresses(int fd) noexcept {
  SockAddr l, r;
  kernel_addresses(fd, &l, &r);
  std::lock_guard g(lock_);
  if (l.len > 0 && has_port(l) && !has_port(local)) local = l;
  if (r.len > 0 && remote.len == 0) remote = r;
}

}  // namespace sockshim
