// epoll over sockets with a psock (core/readiness/skmsg_poll.h says what is
// reported and how): the record of the application's registrations
// (core/readiness/epoll_watch.h), what is installed for each while its socket
// has a psock, and the fix-up of what epoll_wait returns.
#pragma once

#include <sys/epoll.h>

namespace sockshim {

class Socket;

// epoll_ctl on a tracked socket fd: makes the real call (0, or -errno when it
// failed) and keeps the record of the registration, installing or removing
// what the socket's psock needs.
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

// Installs the psock's poll_link and poll_forget operations. A static
// initialiser does it; start-up code that links a psock earlier calls it first.
void skmsg_poll_install_ops() noexcept;

}  // namespace sockshim
