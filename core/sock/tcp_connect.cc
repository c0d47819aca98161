#include "core/sock/tcp_connect.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "core/sock/errno_saver.h"
#include "core/sock/real.h"
#include "core/sock/registry.h"
#include "core/sock/sock_hooks.h"

namespace sockshim {

namespace {

// The kernel's TCP state of fd, or -1.
int kernel_tcp_state(int fd) noexcept {
  tcp_info info{};
  socklen_t len = sizeof info;
  if (real::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) return -1;
  return info.tcpi_state;
}

// Runs the completion on sk, which this thread took from pending to finishing:
// a socket the handshake left established gets active_established (which may
// insert it into maps) before the flag clears, so no other thread's call on it
// goes ahead of the insertion.
void finish(int fd, Socket* sk, bool established) noexcept {
  TcpState state = established ? TcpState::established : TcpState::close;
  sk->refresh_addresses(fd);
  if (sk->set_state(state) && state != TcpState::close)
    sock_hook_sock_ops(policy::SockOp::active_established, sk, fd);
  sk->connect_state.store(kConnectNone, std::memory_order_release);
  g_connects_pending.fetch_sub(1, std::memory_order_relaxed);
}

}  // namespace

bool tcp_finish_connect(int fd) noexcept {
  Socket* sk = registry::peek(fd);
  if (!sk || !tcp_connect_pending(sk) || registry::in_vfork_child()) return true;
  ErrnoSaver saved;
  SocketRef ref = registry::get(fd);
  bool done = true;
  if (ref) {
    int state = kernel_tcp_state(fd);
    if (state < 0) {
      // Closed behind the shim's back: the stale record goes (and with its
      // last reference, its count as pending), or the scans would ask forever.
      registry::evict_if_stale(fd, ref.get(), errno);
    } else if (state == TCP_SYN_SENT) {
      done = false;
    } else {
      uint8_t pending = kConnectPending;
      if (ref->connect_state.compare_exchange_strong(pending, kConnectFinishing,
                                                     std::memory_order_acq_rel))
        finish(fd, ref.get(), state != TCP_CLOSE);
      else
        // Another thread runs the completion: wait for it, as a call on the
        // kernel socket waits for the socket lock tcp_finish_connect holds.
        while (ref->connect_state.load(std::memory_order_acquire) == kConnectFinishing)
          sched_yield();
    }
  }
  return done;
}

namespace {

// SO_SNDTIMEO or SO_RCVTIMEO in milliseconds, -1 for none.
int io_timeout_ms(int fd, bool send) noexcept {
  timeval tv{};
  socklen_t len = sizeof tv;
  if (real::getsockopt(fd, SOL_SOCKET, send ? SO_SNDTIMEO : SO_RCVTIMEO, &tv, &len) != 0 ||
      (tv.tv_sec == 0 && tv.tv_usec == 0))
    return -1;
  return static_cast<int>(tv.tv_sec * 1000 + (tv.tv_usec + 999) / 1000);
}

}  // namespace

int tcp_connect_before_io(int fd, bool send, int flags) noexcept {
  if (tcp_finish_connect(fd)) return 1;
  Socket* sk = registry::peek(fd);
  if (!sk || sk->nonblocking.load(std::memory_order_relaxed) || (flags & MSG_DONTWAIT)) return 0;
  // A blocking call in SYN_SENT: the kernel would wait for the handshake, then
  // move the bytes. Wait for it here, where the completion can run first.
  ErrnoSaver saved;
  pollfd p{fd, POLLOUT, 0};
  int r = real::poll(&p, 1, io_timeout_ms(fd, send));
  if (r < 0) return -errno;  // EINTR: the signal interrupts the call, as in the kernel
  if (r == 0) return -EAGAIN;
  tcp_finish_connect(fd);
  return 1;
}

void tcp_finish_connects() noexcept {
  for (int fd = 0, top = registry::high_water(); fd <= top && tcp_connects_pending(); ++fd)
    if (Socket* s = registry::peek(fd); s && tcp_connect_pending(s)) tcp_finish_connect(fd);
}

}  // namespace sockshim
