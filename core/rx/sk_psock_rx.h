// The receive engine (net/core/skmsg.c: sk_psock_start_strp/_verdict,
// sk_psock_strp_read, sk_psock_verdict_recv, sk_psock_verdict_apply,
// sk_psock_backlog): once a psock has a receive side, the shim's event loop
// thread reads its socket instead of the application. It cuts frames with the
// stream parser (or takes each chunk read as one message), runs the verdict on
// each, and applies it: PASS into the psock's own ingress queue, DROP, or
// REDIRECT into another psock's queue or out of its socket.
//
// The engine reads and sends through its own dup of each socket (never the
// application's fd numbers, which may be closed or reused under it), closed
// at once when the psock stops, drops, or the application closes its last fd.
//
// Nothing is dropped for lack of room: a verdict whose target queue is full,
// or whose egress send would block, keeps its bytes and the engine stops
// reading that source until the target's reader frees room or the target
// becomes writable, so TCP flow control pushes back on the remote sender. No
// timer or poll loop is involved; an idle engine sleeps in epoll.
//
// EOF or a read error reaches the source's reader only after every byte read
// before it has been applied (passed, dropped, or gone out through its
// redirect target). A parser error stops the parser for good: reads give
// EAGAIN, SO_ERROR reports the error once, poll reports POLLERR.
//
// Counters (p->stats.rx): every byte read counts in `in`; it counts
// in passed, dropped or redirected when its verdict's effect completes (a
// redirect that fails is dropped). Until then it is held, so at every moment
// in == passed + dropped + redirected + sk_psock_rx_held(p).
//
// fork: the child has no loop thread. Bytes the engine read before the fork,
// queued or held, belong to the parent: the child discards its copies, and
// closes its copies of the engine's dups (so a parent's close still sends the
// FIN). The child's engine starts reading an inherited psock only when the
// child first reads it or asks whether it is readable; from then on, as with
// any socket two processes read, each chunk goes to whichever engine reads it.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/psock/psock.h"

namespace sockshim {

// The engine installs itself as the psock's start_rx, stop_rx, drop_rx and
// fork_child_rx operations (PsockOps): the maps reach it through those.

// Starts the engine on psock once its rx_hook is set (sock_map_link). fd is one of
// its socket's fds, or -1 (one is then found). Does nothing when it runs.
void sk_psock_start_rx(Psock* psock, int fd) noexcept;

// Stops it (sock_map_unref of a map with receive programs, sock_map_close):
// closes the engine's dup of the socket at once. Bytes not yet given a verdict
// are dropped, as the kernel's strp_stop frees them; a frame whose verdict ran
// still goes where it was sent (the kernel has queued it at its target), and
// then the reader reads the socket itself again, after the queue: every
// reader waiting in poll, select or recv wakes and looks again.
void sk_psock_stop_rx(Psock* psock) noexcept;

// psock's queue has room again (its reader consumed) or psock stopped:
// sources waiting to put bytes there run again.
void sk_psock_rx_wake(Psock* psock) noexcept;

// True when the engine reads psock's socket; in a fork child it is started
// here on first use (fd as for sk_psock_start_rx).
bool sk_psock_rx_active(Psock* psock, int fd) noexcept;

// The first read or readiness query of bytes that predate the engine's start
// (tcp_data_ready in tcp_bpf_recvmsg_parser): false when there are none;
// otherwise the engine runs on them, and with `wait` this returns after its
// turn (bounded), so what passed is queued.
bool sk_psock_rx_kick(Psock* psock, bool wait) noexcept;

// Bytes read from psock's socket whose verdict has not yet applied: a partial
// frame, and a frame waiting for room at its target.
size_t sk_psock_rx_held(Psock* psock) noexcept;

// Installs the engine's psock operations (start_rx, stop_rx...). A static
// initialiser does it; start-up code that links a psock earlier (an exec'd
// image taking its sockets back) calls it first.
void sk_psock_rx_install_ops() noexcept;

}  // namespace sockshim
