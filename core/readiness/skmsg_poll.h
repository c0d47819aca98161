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
// which epoll_wait turns back into the application's data. This header has
// poll and select (skmsg_poll.cc); skmsg_epoll.h has epoll and what follows a
// psock's changes (skmsg_epoll.cc).
//
// A blocking call whose set holds a socket without a psock also waits on its
// thread's wake eventfd (poll_wake.h): when a psock is born for that socket
// the call evaluates its set again, with what is left of its timeout.
//
// Errors are -errno (the shim sets errno).
#pragma once

#include <poll.h>
#include <signal.h>
#include <sys/select.h>
#include <time.h>

namespace sockshim {

// True when some fd in fds has a psock whose readiness the shim adds to, or,
// for a call that may block, when some fd read is a socket without a psock.
bool psock_poll_wanted(const pollfd* fds, nfds_t n, bool may_block) noexcept;
int psock_ppoll(pollfd* fds, nfds_t n, const timespec* timeout, const sigset_t* mask) noexcept;

// True when some fd in readfds below n has a psock, or, for a call that may
// block, is a socket without one.
bool psock_select_wanted(int n, const fd_set* readfds, bool may_block) noexcept;
int psock_pselect(int n, fd_set* r, fd_set* w, fd_set* e, const timespec* timeout,
                  const sigset_t* mask) noexcept;

}  // namespace sockshim
