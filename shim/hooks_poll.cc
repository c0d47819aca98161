// Readiness hooks. Until a socket has a psock with queued bytes the kernel's own
// answer is the right one, so these pass straight through; a poll or select
// that may sleep on a socket without a psock, under a policy, goes to core,
// which wakes it if a psock is born for the socket meanwhile.
#include <poll.h>
#include <sys/epoll.h>
#include <sys/select.h>

#include "core/readiness/poll_deadline.h"
#include "core/readiness/skmsg_epoll.h"
#include "core/readiness/skmsg_poll.h"
#include "core/sock/blocked_waits.h"
#include "core/sock/tcp_connect.h"
#include "shim/hook.h"

using namespace sockshim;
using sockshim::shim::libc_result;

// glibc's fortified headers declare poll's array write-only; the hooks read
// the events the caller put there.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace {

timespec* ms_to_timespec(int timeout, timespec* ts) noexcept {
  if (timeout < 0) return nullptr;
  ts->tv_sec = timeout / 1000;
  ts->tv_nsec = (timeout % 1000) * 1000000L;
  return ts;
}

// A call that may sleep: a psock born for one of its sockets meanwhile must
// wake it (core/readiness/poll_wake.h).
bool may_block(const timespec* timeout) noexcept {
  return !timeout || timeout->tv_sec != 0 || timeout->tv_nsec != 0;
}

// A connect pending socket (core/tcp_connect.h) that poll or select reported
// ready (writable, or readable or in error) may have finished its handshake:
// the completion runs, inserting it into maps, before the program learns of it.
[[gnu::cold, gnu::noinline]] void connects_polled(const pollfd* fds, nfds_t n) noexcept {
  for (nfds_t i = 0; i < n; ++i)
    if (fds[i].revents)
      if (Socket* s = registry::peek(fds[i].fd); s && tcp_connect_pending(s))
        tcp_finish_connect(fds[i].fd);
}

int after_poll(int r, const pollfd* fds, nfds_t n) noexcept {
  if (r > 0 && tcp_connects_pending()) [[unlikely]]
    connects_polled(fds, n);
  return r;
}

[[gnu::cold, gnu::noinline]] void connects_selected(int n, const fd_set* r, const fd_set* w,
                                                    const fd_set* e) noexcept {
  for (int fd = 0; fd < n && fd < FD_SETSIZE; ++fd)
    if ((r && FD_ISSET(fd, r)) || (w && FD_ISSET(fd, w)) || (e && FD_ISSET(fd, e)))
      if (Socket* s = registry::peek(fd); s && tcp_connect_pending(s)) tcp_finish_connect(fd);
}

int after_select(int res, int n, const fd_set* r, const fd_set* w, const fd_set* e) noexcept {
  if (res > 0 && tcp_connects_pending()) [[unlikely]]
    connects_selected(n, r, w, e);
  return res;
}

// epoll's events carry the program's data, not fds: every connect pending
// socket is asked.
int after_epoll(int r) noexcept {
  if (r > 0 && tcp_connects_pending()) [[unlikely]]
    tcp_finish_connects();
  return r;
}

// An epoll wait while registrations carry the shim's tokens: fix up what the
// kernel returned; a wait that only saw events the application must not see
// waits again for what is left of its timeout.
template <typename Wait>
[[gnu::noinline]] int epoll_wait_psock(epoll_event* events, const timespec* timeout,
                                       Wait&& wait) noexcept {
  const PollDeadline deadline = poll_deadline(timeout);
  const bool once = timeout && timeout->tv_sec == 0 && timeout->tv_nsec == 0;
  const timespec* left = timeout;
  timespec rest;
  for (;;) {
    int r = blocked_wait(!once, [&] { return wait(left); });
    if (r <= 0) return r;
    int n = psock_epoll_fixup(events, r);
    if (n > 0 || once) return n;
    left = poll_remaining(deadline, &rest);
    if (left && left->tv_sec == 0 && left->tv_nsec == 0) return 0;
  }
}

// An epoll_wait timeout in milliseconds, rounded up, as the kernel rounds it.
int to_ms(const timespec* t) noexcept {
  if (!t) return -1;
  return static_cast<int>(t->tv_sec * 1000 + (t->tv_nsec + 999999) / 1000000);
}

}  // namespace

SOCKSHIM_HOOK int poll(pollfd* fds, nfds_t n, int timeout) {
  if (psock_poll_wanted(fds, n, timeout != 0)) [[unlikely]] {
    timespec ts;
    return after_poll(libc_result(psock_ppoll(fds, n, ms_to_timespec(timeout, &ts), nullptr)), fds,
                      n);
  }
  return after_poll(real::poll(fds, n, timeout), fds, n);
}

SOCKSHIM_HOOK int __poll_chk(pollfd* fds, nfds_t n, int timeout, size_t fdslen) {
  if (n * sizeof(pollfd) <= fdslen && psock_poll_wanted(fds, n, timeout != 0)) [[unlikely]] {
    timespec ts;
    return after_poll(libc_result(psock_ppoll(fds, n, ms_to_timespec(timeout, &ts), nullptr)), fds,
                      n);
  }
  return after_poll(real::__poll_chk(fds, n, timeout, fdslen), fds, n);
}

SOCKSHIM_HOOK int ppoll(pollfd* fds, nfds_t n, const timespec* timeout, const sigset_t* mask) {
  if (psock_poll_wanted(fds, n, may_block(timeout))) [[unlikely]]
    return after_poll(libc_result(psock_ppoll(fds, n, timeout, mask)), fds, n);
  return after_poll(real::ppoll(fds, n, timeout, mask), fds, n);
}

SOCKSHIM_HOOK int __ppoll_chk(pollfd* fds, nfds_t n, const timespec* timeout, const sigset_t* mask,
                              size_t fdslen) {
  if (n * sizeof(pollfd) <= fdslen && psock_poll_wanted(fds, n, may_block(timeout))) [[unlikely]]
    return after_poll(libc_result(psock_ppoll(fds, n, timeout, mask)), fds, n);
  return after_poll(real::__ppoll_chk(fds, n, timeout, mask, fdslen), fds, n);
}

SOCKSHIM_HOOK int select(int n, fd_set* r, fd_set* w, fd_set* e, timeval* timeout) {
  if (psock_select_wanted(n, r, !timeout || timeout->tv_sec != 0 || timeout->tv_usec != 0))
      [[unlikely]] {
    timespec ts, *tp = nullptr;
    if (timeout) {
      ts.tv_sec = timeout->tv_sec;
      ts.tv_nsec = timeout->tv_usec * 1000L;
      tp = &ts;
    }
    return after_select(libc_result(psock_pselect(n, r, w, e, tp, nullptr)), n, r, w, e);
  }
  return after_select(real::select(n, r, w, e, timeout), n, r, w, e);
}

SOCKSHIM_HOOK int pselect(int n, fd_set* r, fd_set* w, fd_set* e, const timespec* timeout,
                          const sigset_t* mask) {
  if (psock_select_wanted(n, r, may_block(timeout))) [[unlikely]]
    return after_select(libc_result(psock_pselect(n, r, w, e, timeout, mask)), n, r, w, e);
  return after_select(real::pselect(n, r, w, e, timeout, mask), n, r, w, e);
}

SOCKSHIM_HOOK int epoll_create(int size) {
  int ep = real::epoll_create(size);
  if (ep >= 0) psock_epoll_created(ep);
  return ep;
}

SOCKSHIM_HOOK int epoll_create1(int flags) {
  int ep = real::epoll_create1(flags);
  if (ep >= 0) psock_epoll_created(ep);
  return ep;
}

SOCKSHIM_HOOK int epoll_ctl(int ep, int op, int fd, epoll_event* event) {
  if (registry::peek(fd)) [[unlikely]]
    return libc_result(psock_epoll_ctl(ep, op, fd, event));
  return real::epoll_ctl(ep, op, fd, event);
}

SOCKSHIM_HOOK int epoll_wait(int ep, epoll_event* events, int max, int timeout) {
  if (psock_epoll_wanted()) [[unlikely]] {
    timespec ts;
    return after_epoll(epoll_wait_psock(
        events, ms_to_timespec(timeout, &ts),
        [&](const timespec* t) { return real::epoll_wait(ep, events, max, to_ms(t)); }));
  }
  return after_epoll(real::epoll_wait(ep, events, max, timeout));
}

SOCKSHIM_HOOK int epoll_pwait(int ep, epoll_event* events, int max, int timeout,
                              const sigset_t* mask) {
  if (psock_epoll_wanted()) [[unlikely]] {
    timespec ts;
    return after_epoll(epoll_wait_psock(
        events, ms_to_timespec(timeout, &ts),
        [&](const timespec* t) { return real::epoll_pwait(ep, events, max, to_ms(t), mask); }));
  }
  return after_epoll(real::epoll_pwait(ep, events, max, timeout, mask));
}

SOCKSHIM_HOOK int epoll_pwait2(int ep, epoll_event* events, int max, const timespec* timeout,
                               const sigset_t* mask) {
  if (psock_epoll_wanted()) [[unlikely]]
    return after_epoll(epoll_wait_psock(events, timeout, [&](const timespec* t) {
      return real::epoll_pwait2(ep, events, max, t, mask);
    }));
  return after_epoll(real::epoll_pwait2(ep, events, max, timeout, mask));
}
