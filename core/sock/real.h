// The real libc functions behind every hook. Everything the shim does to a file
// descriptor goes through here, so no hook ever calls itself.
#pragma once

#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>

#include <atomic>

// X(name, return type, parameter list, argument list)
#define SOCKSHIM_REAL_FUNCTIONS(X)                                                                 \
  X(socket, int, (int d, int t, int p), (d, t, p))                                                 \
  X(socketpair, int, (int d, int t, int p, int sv[2]), (d, t, p, sv))                              \
  X(connect, int, (int fd, const sockaddr* a, socklen_t l), (fd, a, l))                            \
  X(listen, int, (int fd, int n), (fd, n))                                                         \
  X(accept, int, (int fd, sockaddr* a, socklen_t* l), (fd, a, l))                                  \
  X(accept4, int, (int fd, sockaddr* a, socklen_t* l, int f), (fd, a, l, f))                       \
  X(shutdown, int, (int fd, int how), (fd, how))                                                   \
  X(getsockopt, int, (int fd, int lv, int nm, void* v, socklen_t* l), (fd, lv, nm, v, l))          \
  X(getpeername, int, (int fd, sockaddr* a, socklen_t* l), (fd, a, l))                             \
  X(getsockname, int, (int fd, sockaddr* a, socklen_t* l), (fd, a, l))                             \
  X(send, ssize_t, (int fd, const void* b, size_t n, int f), (fd, b, n, f))                        \
  X(sendto, ssize_t, (int fd, const void* b, size_t n, int f, const sockaddr* a, socklen_t l),     \
    (fd, b, n, f, a, l))                                                                           \
  X(sendmsg, ssize_t, (int fd, const msghdr* m, int f), (fd, m, f))                                \
  X(sendmmsg, int, (int fd, mmsghdr* v, unsigned n, int f), (fd, v, n, f))                         \
  X(write, ssize_t, (int fd, const void* b, size_t n), (fd, b, n))                                 \
  X(writev, ssize_t, (int fd, const iovec* v, int n), (fd, v, n))                                  \
  X(sendfile, ssize_t, (int o, int i, off_t* off, size_t n), (o, i, off, n))                       \
  X(sendfile64, ssize_t, (int o, int i, off64_t* off, size_t n), (o, i, off, n))                   \
  X(recv, ssize_t, (int fd, void* b, size_t n, int f), (fd, b, n, f))                              \
  X(recvfrom, ssize_t, (int fd, void* b, size_t n, int f, sockaddr* a, socklen_t* l),              \
    (fd, b, n, f, a, l))                                                                           \
  X(recvmsg, ssize_t, (int fd, msghdr* m, int f), (fd, m, f))                                      \
  X(recvmmsg, int, (int fd, mmsghdr* v, unsigned n, int f, timespec* t), (fd, v, n, f, t))         \
  X(read, ssize_t, (int fd, void* b, size_t n), (fd, b, n))                                        \
  X(readv, ssize_t, (int fd, const iovec* v, int n), (fd, v, n))                                   \
  X(__read_chk, ssize_t, (int fd, void* b, size_t n, size_t bl), (fd, b, n, bl))                   \
  X(__recv_chk, ssize_t, (int fd, void* b, size_t n, size_t bl, int f), (fd, b, n, bl, f))         \
  X(__recvfrom_chk, ssize_t,                                                                       \
    (int fd, void* b, size_t n, size_t bl, int f, sockaddr* a, socklen_t* l),                      \
    (fd, b, n, bl, f, a, l))                                                                       \
  X(close, int, (int fd), (fd))                                                                    \
  X(close_range, int, (unsigned lo, unsigned hi, int f), (lo, hi, f))                              \
  X(closefrom, void, (int lo), (lo))                                                               \
  X(dup, int, (int fd), (fd))                                                                      \
  X(dup2, int, (int o, int n), (o, n))                                                             \
  X(dup3, int, (int o, int n, int f), (o, n, f))                                                   \
  X(poll, int, (pollfd * p, nfds_t n, int t), (p, n, t))                                           \
  X(ppoll, int, (pollfd * p, nfds_t n, const timespec* t, const sigset_t* s), (p, n, t, s))        \
  X(__poll_chk, int, (pollfd * p, nfds_t n, int t, size_t pl), (p, n, t, pl))                      \
  X(__ppoll_chk, int, (pollfd * p, nfds_t n, const timespec* t, const sigset_t* s, size_t pl),     \
    (p, n, t, s, pl))                                                                              \
  X(select, int, (int n, fd_set* r, fd_set* w, fd_set* e, timeval* t), (n, r, w, e, t))            \
  X(pselect, int, (int n, fd_set* r, fd_set* w, fd_set* e, const timespec* t, const sigset_t* s),  \
    (n, r, w, e, t, s))                                                                            \
  X(epoll_create, int, (int n), (n))                                                               \
  X(epoll_create1, int, (int f), (f))                                                              \
  X(epoll_ctl, int, (int ep, int op, int fd, epoll_event* e), (ep, op, fd, e))                     \
  X(epoll_wait, int, (int ep, epoll_event* e, int n, int t), (ep, e, n, t))                        \
  X(epoll_pwait, int, (int ep, epoll_event* e, int n, int t, const sigset_t* s), (ep, e, n, t, s)) \
  X(epoll_pwait2, int, (int ep, epoll_event* e, int n, const timespec* t, const sigset_t* s),      \
    (ep, e, n, t, s))                                                                              \
  X(fork, pid_t, (), ())

namespace sockshim::real {

// Variadic functions are called with one machine-word argument; every command the
// shim forwards (fcntl, ioctl, syscall) fits that calling convention.
using fcntl_fn = int (*)(int, int, ...);
using ioctl_fn = int (*)(int, unsigned long, ...);
using syscall_fn = long (*)(long, ...);

// Each slot starts out pointing at a stub that resolves the symbol on first use
// (a hook may run before our constructor) and then holds the real function, so
// a call is one load and one indirect call, with no test.
#define SOCKSHIM_DECLARE_REAL(name, ret, params, args)      \
  using name##_fn = ret(*) params;                          \
  extern std::atomic<name##_fn> name##_ptr;                 \
  name##_fn resolve_##name() noexcept;                      \
  inline ret name params {                                  \
    return name##_ptr.load(std::memory_order_relaxed) args; \
  }
SOCKSHIM_REAL_FUNCTIONS(SOCKSHIM_DECLARE_REAL)
#undef SOCKSHIM_DECLARE_REAL

int fcntl(int fd, int cmd, unsigned long arg) noexcept;
int ioctl(int fd, unsigned long request, unsigned long arg) noexcept;
long syscall(long nr, long a1, long a2, long a3, long a4, long a5, long a6) noexcept;

// Resolves every symbol now, so later calls (possibly from signal handlers) never
// enter the dynamic linker. Returns false and logs when a symbol is missing.
bool resolve_all() noexcept;

}  // namespace sockshim::real
