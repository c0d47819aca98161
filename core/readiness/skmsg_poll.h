// Readiness of sockets with a psock (sk_msg_is_readable, and for a socket the
// receive engine reads, its whole receive side): poll, ppoll, select and epoll
// report a psock readable exactly while sk_psock_readable() says so, with the
// bits sk_psock_poll() gives, and a waiter wakes when that changes, through the
// psock's eventfd (readable exactly while the psock is), or when the engine
// stops, through its stop eventfd (sk_psock_rx_stop_wait). A query runs the
// engine on bytes that predate its start (sk_psock_rx_kick).
//
// For a socket the engine reads (psock->engine_reads) the kernel's own POLLIN,
// POLLRDHUP and POLLHUP are hidden: the engine may not have read those bytes
// yet or holds an EOF back behind queued ones. poll and select ask the kernel
// without them; an epoll registration of such a socket is modified to lack
// EPOLLIN | EPOLLRDHUP and the eventfd's "shadow" registration carries them.
// Both registrations of a socket with a psock carry a token as their data,
// which epoll_wait turns back into the application's data.
#pragma once

#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <time.h>

namespace sockshim {

class Socket;

// True when some fd in fds has a psock whose readiness the shim adds to.
bool psock_poll_wanted(const pollfd* fds, nfds_t n) noexcept;
int psock_ppoll(pollfd* fds, nfds_t n, const timespec* timeout, const sigset_t* mask) noexcept;

// True when some fd in readfds below n has a psock.
bool psock_select_wanted(int n, const fd_set* readfds) noexcept;
int psock_pselect(int n, fd_set* r, fd_set* w, fd_set* e, const timespec* timeout,
                  const sigset_t* mask) noexcept;

// epoll_ctl on a tracked socket fd: makes the real call (returning what it
// returned, errno set) and keeps the record of the registration, installing or
// removing what the socket's psock needs.
int psock_epoll_ctl(int ep, int op, int fd, epoll_event* event) noexcept;
// True when some epoll registration may carry a token (epoll_wait needs the
// fix-up). One atomic load.
bool psock_epoll_wanted() noexcept;
// After an epoll wait returned n events: turns tokens back into the
// application's data, merges a socket's two registrations into one event, adds
// the psock's bits and hides the kernel's where the engine reads, and drops
// what is not ready any more. Returns the new count (0: wait again).
int psock_epoll_fixup(epoll_event* events, int n) noexcept;
// A new epoll instance got number ep: records of an old one at ep are stale.
void psock_epoll_created(int ep) noexcept;

// sk's psock appeared, changed its receive side, or is going (sock_map_link,
// sock_map_unref): bring sk's epoll registrations in line with it.
void psock_poll_link(Socket* sk) noexcept;

// The eventfd is about to close (its psock went away): forget where it was registered.
void psock_poll_forget(int event_fd) noexcept;

// In a fork child: the records' lock another thread may have held.
void skmsg_poll_after_fork_child() noexcept;

}  // namespace sockshim
