// What the poll, select and epoll paths share about a psock's readiness.
#pragma once

#include <poll.h>

#include "core/psock/psock.h"

namespace sockshim {

// The kernel's receive-side bits, hidden for a socket the receive engine reads:
// its own readiness is what sk_psock_poll() says.
inline constexpr short kRxHidden = POLLIN | POLLRDNORM | POLLRDHUP | POLLHUP;
// What a poll or epoll registration of such a socket asks the kernel without.
inline constexpr short kRxMasked = POLLIN | POLLRDNORM | POLLRDHUP;

// fd's psock with a reference, or empty.
PsockRef psock_at(int fd) noexcept;

// The bits of sk_psock_poll(p) that a poll asking for events reports (POLLHUP
// and POLLERR are reported unasked, as the kernel does). A poll that does not
// ask for the read side starts no engine in a fork child.
short psock_revents(Psock* p, short events) noexcept;

}  // namespace sockshim
