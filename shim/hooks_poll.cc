// Readiness hooks. Until a socket has a psock with queued bytes the kernel's own
// answer is the right one, so these pass straight through.
#include <poll.h>
#include <sys/epoll.h>
#include <sys/select.h>

#include "shim/hook.h"

using namespace sockshim;

SOCKSHIM_HOOK int poll(pollfd* fds, nfds_t n, int timeout) {
  return real::poll(fds, n, timeout);
}

SOCKSHIM_HOOK int __poll_chk(pollfd* fds, nfds_t n, int timeout, size_t fdslen) {
  return real::__poll_chk(fds, n, timeout, fdslen);
}

SOCKSHIM_HOOK int ppoll(pollfd* fds, nfds_t n, const timespec* timeout, const sigset_t* mask) {
  return real::ppoll(fds, n, timeout, mask);
}

SOCKSHIM_HOOK int __ppoll_chk(pollfd* fds, nfds_t n, const timespec* timeout, const sigset_t* mask,
                              size_t fdslen) {
  return real::__ppoll_chk(fds, n, timeout, mask, fdslen);
}

SOCKSHIM_HOOK int select(int n, fd_set* r, fd_set* w, fd_set* e, timeval* timeout) {
  return real::select(n, r, w, e, timeout);
}

SOCKSHIM_HOOK int pselect(int n, fd_set* r, fd_set* w, fd_set* e, const timespec* timeout,
                          const sigset_t* mask) {
  return real::pselect(n, r, w, e, timeout, mask);
}

SOCKSHIM_HOOK int epoll_create(int size) {
  return real::epoll_create(size);
}

SOCKSHIM_HOOK int epoll_create1(int flags) {
  return real::epoll_create1(flags);
}

SOCKSHIM_HOOK int epoll_ctl(int ep, int op, int fd, epoll_event* event) {
  return real::epoll_ctl(ep, op, fd, event);
}

SOCKSHIM_HOOK int epoll_wait(int ep, epoll_event* events, int max, int timeout) {
  return real::epoll_wait(ep, events, max, timeout);
}

SOCKSHIM_HOOK int epoll_pwait(int ep, epoll_event* events, int max, int timeout,
                              const sigset_t* mask) {
  return real::epoll_pwait(ep, events, max, timeout, mask);
}

SOCKSHIM_HOOK int epoll_pwait2(int ep, epoll_event* events, int max, const timespec* timeout,
                               const sigset_t* mask) {
  return real::epoll_pwait2(ep, events, max, timeout, mask);
}
