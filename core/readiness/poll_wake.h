// poll, ppoll, select and pselect calls asleep on sockets without a psock.
// The kernel's poll sees only the socket: once a psock is born for it
// (sockops, a map update), the receive engine takes the bytes the call waits
// for and the kernel, re-checking, goes back to sleep, while the bytes wait in
// the psock's queue. In the kernel, insertion into a map never leaves a
// poller blind. So a blocking call whose set holds such a socket also waits on
// its thread's wake eventfd, written when one of its sockets gets a psock
// (psock_ops().poll_link): the call wakes and looks again, with the psock.
//
// The registrations' lock is a leaf: taken under a socket's and a map's lock
// (an insertion), it is never held while taking another.
#pragma once

#include <poll.h>

namespace sockshim {

class Socket;

// Registers the calling thread's blocking wait on the sockets of fds[0, n)
// (their fd fields must not change before poll_wake_disarm()) and returns the
// thread's wake eventfd, to be waited on for POLLIN too, or -1 when there is
// none (the thread already waits, or is out of fds: the call then waits as
// before).
int poll_wake_arm(const pollfd* fds, nfds_t n) noexcept;

// Ends the calling thread's registration: true when a socket of its set got a
// psock meanwhile (its eventfd is emptied: the call looks again).
bool poll_wake_disarm() noexcept;

// sk's psock appeared or changed: wakes every registered wait whose set holds sk.
void poll_wake_sk(Socket* sk) noexcept;

// In a fork child: the waits were the parent's threads'; the wake eventfds
// are the parent's too (a write by one process must not wake the other).
void poll_wake_after_fork_child() noexcept;

}  // namespace sockshim
