// Readiness of sockets whose psock has queued bytes (sk_msg_is_readable):
// poll, ppoll, select and epoll report them readable, and a waiter wakes when
// bytes are queued. Each psock's queue has an eventfd that is readable exactly
// while the queue holds bytes; poll and select wait on it beside the socket,
// and an epoll instance gets it registered with the socket's own event data,
// so its events come back looking like the socket's.
#pragma once

#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <time.h>

namespace sockshim {

// True when some fd in fds has a psock (the slow path is needed).
bool psock_poll_wanted(const pollfd* fds, nfds_t n) noexcept;
int psock_ppoll(pollfd* fds, nfds_t n, const timespec* timeout, const sigset_t* mask) noexcept;

// True when some fd in readfds below n has a psock.
bool psock_select_wanted(int n, const fd_set* readfds) noexcept;
int psock_pselect(int n, fd_set* r, fd_set* w, fd_set* e, const timespec* timeout,
                  const sigset_t* mask) noexcept;

// After a successful epoll_ctl: mirrors ADD/MOD/DEL of a psock's socket onto
// its queue's eventfd.
void psock_epoll_ctl(int ep, int op, int fd, const epoll_event* event) noexcept;
// After epoll_wait returned n events: merges the socket's and its eventfd's
// events into one and drops those of psocks that went away. Returns the new count.
int psock_epoll_fixup(int ep, epoll_event* events, int n) noexcept;
// True when ep has mirrored registrations (epoll_wait needs the fix-up).
bool psock_epoll_wanted(int ep) noexcept;

// The eventfd is about to close (its psock went away): forget where it was registered.
void psock_poll_forget(int event_fd) noexcept;

// In a fork child: the shadow list's lock another thread may have held.
void skmsg_poll_after_fork_child() noexcept;

}  // namespace sockshim
