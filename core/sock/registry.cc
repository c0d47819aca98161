#include "core/sock/registry.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <new>
#include <unordered_set>

#include "core/sock/connect_pending.h"
#include "core/sock/errno_saver.h"
#include "core/sock/fork_reset.h"
#include "core/sock/real.h"
#include "core/sock/socket_pool.h"

namespace sockshim::registry {

std::atomic<Socket*> g_fds[kMaxFd];
std::atomic<bool> g_internal_lost{false};

namespace {

std::atomic<int> g_high_water{-1};
std::atomic<pid_t> g_pid{0};
// Never pooled, never released: its count starts far from zero.
constinit Socket g_internal{Socket::Sentinel{}};
std::atomic<void (*)()> g_internal_lost_handler{nullptr};

void note_fd(int fd) noexcept {
  int hw = g_high_water.load(std::memory_order_relaxed);
  while (fd > hw && !g_high_water.compare_exchange_weak(hw, fd, std::memory_order_relaxed)) {
  }
}

// Installs s (whose reference the caller hands over) at fd, releasing whatever
// record was there: the fd number was reused after a close the shim never saw.
void install(int fd, Socket* s) noexcept {
  if (static_cast<unsigned>(fd) >= static_cast<unsigned>(kMaxFd)) {
    s->put();
    return;
  }
  note_fd(fd);
  if (Socket* old = g_fds[fd].exchange(s, std::memory_order_acq_rel)) drop(old);
}

pid_t raw_getpid() noexcept {
  return static_cast<pid_t>(::syscall(SYS_getpid));
}

}  // namespace

SocketRef get(int fd) noexcept {
  for (;;) {
    Socket* s = peek(fd);
    if (!s) return {};
    if (s->try_get()) {
      // The record may have been recycled for another fd between the load and
      // the increment; it is ours only if fd still points at it.
      if (peek(fd) == s) return SocketRef(s);
      s->put();
    }
  }
}

SocketRef adopt(int fd) noexcept {
  if (SocketRef r = get(fd)) return r;
  if (static_cast<unsigned>(fd) >= static_cast<unsigned>(kMaxFd) || in_vfork_child()) return {};
  Socket* s = SocketPool::allocate();
  if (!s) return {};
  if (!s->describe(fd)) {
    s->put();
    return {};
  }
  s->get();  // one for the table, one for the caller
  Socket* expected = nullptr;
  note_fd(fd);
  if (!g_fds[fd].compare_exchange_strong(expected, s, std::memory_order_acq_rel)) {
    // Another thread adopted or created it first; use theirs.
    s->put();
    s->put();
    return get(fd);
  }
  return SocketRef(s);
}

void track_new(int fd, int family, int type, int protocol) noexcept {
  if (in_vfork_child()) return;
  Socket* s = SocketPool::allocate();
  if (!s) return;
  s->family = family;
  s->type = type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC);
  // Protocol 0 means the family's default, which is what the kernel reports.
  bool inet = family == AF_INET || family == AF_INET6;
  if (protocol == 0 && inet && s->type == SOCK_STREAM) protocol = IPPROTO_TCP;
  if (protocol == 0 && inet && s->type == SOCK_DGRAM) protocol = IPPROTO_UDP;
  s->protocol = protocol;
  s->nonblocking.store(type & SOCK_NONBLOCK, std::memory_order_relaxed);
  s->fetch_cookie(fd);
  install(fd, s);
}

void track_accepted(int fd, int flags, int listen_fd) noexcept {
  if (in_vfork_child()) return;
  Socket* s = SocketPool::allocate();
  if (!s) return;
  // accept() gives a socket of its listener's family, type and protocol, and
  // O_NONBLOCK only from accept4's flags: a tracked listener spares the four
  // system calls that describe() would make for them on every connection.
  if (SocketRef listener = get(listen_fd)) {
    s->family = listener->family;
    s->type = listener->type;
    s->protocol = listener->protocol;
    s->fetch_cookie(fd);
    s->refresh_addresses(fd);
  } else if (!s->describe(fd)) {
    s->put();
    return;
  }
  s->nonblocking.store(flags & SOCK_NONBLOCK, std::memory_order_relaxed);
  if (s->type == SOCK_STREAM && (s->family == AF_INET || s->family == AF_INET6))
    s->state = TcpState::established;
  install(fd, s);
}

void track_received(int fd) noexcept {
  if (in_vfork_child()) return;
  Socket* s = SocketPool::allocate();
  if (!s) return;
  if (s->describe(fd)) {
    install(fd, s);
    return;
  }
  s->put();
  if (Socket* stale = untrack(fd)) drop(stale);
}

void track_dup(int oldfd, int newfd) noexcept {
  if (oldfd == newfd || in_vfork_child()) return;
  SocketRef r = get(oldfd);
  if (!r) {
    // newfd was implicitly closed by the dup; forget it.
    if (Socket* old = untrack(newfd)) drop(old);
    return;
  }
  Socket* s = r.get();
  s->get();
  install(newfd, s);
}

Socket* untrack(int fd) noexcept {
  if (!peek(fd) || in_vfork_child()) return nullptr;
  return g_fds[fd].exchange(nullptr, std::memory_order_acq_rel);
}

void untrack_range(unsigned lo, unsigned hi) noexcept {
  int top = high_water();
  if (top < 0 || lo > static_cast<unsigned>(top)) return;
  if (hi > static_cast<unsigned>(top)) hi = static_cast<unsigned>(top);
  for (unsigned fd = lo; fd <= hi; ++fd)
    if (Socket* s = untrack(static_cast<int>(fd))) drop(s);
}

void evict_if_stale(int fd, Socket* s, int err) noexcept {
  if ((err != EBADF && err != ENOTSOCK) || s == &g_internal || in_vfork_child()) return;
  Socket* expected = s;
  if (g_fds[fd].compare_exchange_strong(expected, nullptr, std::memory_order_acq_rel)) s->put();
}

long evict_after_error(int fd, long r) noexcept {
  ErrnoSaver saved;
  int err = saved.value();
  Socket* s = peek(fd);
  if (s && (err == EBADF || err == ENOTSOCK)) {
    int type = 0;
    socklen_t len = sizeof type;
    bool open_socket = err == EBADF ? real::fcntl(fd, F_GETFD, 0) >= 0
                                    : real::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0;
    if (!open_socket) evict_if_stale(fd, s, err);
  }
  return r;
}

long adopt_after_success(int fd, long r) noexcept {
  if (static_cast<unsigned>(fd) < static_cast<unsigned>(kMaxFd)) {
    ErrnoSaver saved;
    adopt(fd);
  }
  return r;
}

void drop(Socket* s) noexcept {
  if (s == &g_internal)
    g_internal_lost.store(true, std::memory_order_relaxed);
  else
    s->put();
}

int make_internal(int fd) noexcept {
  // Far above the numbers a program hands out, below its descriptor limit, but
  // not above kHighFd: the kernel sizes a process's fd table by its highest fd
  // and copies the table on every fork(), so an fd just below a limit of 20000
  // made each fork copy 160 KiB (dup_fd, 13% of a fork server's time), and
  // below a limit of 2^20, 8 MiB.
  constexpr rlim_t kHighFd = 1024 - 64;
  rlimit lim{};
  rlim_t want = getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur > 256 ? lim.rlim_cur - 64 : 0;
  if (want > kHighFd) want = kHighFd;
  int high = want ? real::fcntl(fd, F_DUPFD_CLOEXEC, static_cast<unsigned long>(want)) : -1;
  if (high < 0) high = real::fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (high < 0) return fd;
  real::close(fd);
  if (static_cast<unsigned>(high) < static_cast<unsigned>(kMaxFd)) {
    note_fd(high);
    if (Socket* old = g_fds[high].exchange(&g_internal, std::memory_order_acq_rel)) drop(old);
  }
  return high;
}

void close_internal(int fd) noexcept {
  Socket* expected = &g_internal;
  if (static_cast<unsigned>(fd) < static_cast<unsigned>(kMaxFd))
    g_fds[fd].compare_exchange_strong(expected, nullptr, std::memory_order_acq_rel);
  real::close(fd);
}

bool is_internal(Socket* s) noexcept {
  return s == &g_internal;
}

void set_internal_lost_handler(void (*handler)()) noexcept {
  g_internal_lost_handler.store(handler, std::memory_order_release);
}

void run_internal_lost_handler() noexcept {
  if (!g_internal_lost.exchange(false, std::memory_order_acq_rel)) return;
  if (auto handler = g_internal_lost_handler.load(std::memory_order_acquire)) handler();
}

int high_water() noexcept {
  return g_high_water.load(std::memory_order_relaxed);
}

Census census() noexcept {
  Census c;
  int top = high_water();
  for (int fd = 0; fd <= top; ++fd)
    if (Socket* s = peek(fd); s && s != &g_internal) ++c.fds;
  try {
    std::unordered_set<Socket*> seen;
    for (int fd = 0; fd <= top; ++fd)
      if (Socket* s = peek(fd); s && s != &g_internal) seen.insert(s);
    c.sockets = static_cast<int>(seen.size());
  } catch (const std::bad_alloc&) {
    c.sockets = c.fds;  // short of memory: the fds bound the sockets
  }
  return c;
}

void after_fork_child() noexcept {
  remember_pid();
  SocketPool::for_each_slot([](Socket& s) {
    fork_reset_if_held(s.lock());
    tcp_connect_after_fork_child(s);
  });
}

void remember_pid() noexcept {
  g_pid.store(raw_getpid(), std::memory_order_relaxed);
}

bool in_vfork_child() noexcept {
  pid_t pid = g_pid.load(std::memory_order_relaxed);
  return pid != 0 && pid != raw_getpid();
}

}  // namespace sockshim::registry
