// A non-blocking connect's completion. The kernel runs the active_established
// sockops (and so inserts the socket into its maps) in tcp_finish_connect, as
// the SYN-ACK arrives, before the program can see the socket writable or move
// a byte. The shim learns of it at the first call that could observe it:
// writability from poll, select or epoll, any send or receive, getpeername,
// SO_ERROR or a second connect. Until then the socket is "connect pending", a
// per-socket flag the hooks test with one relaxed load.
#pragma once

#include "core/sock/connect_pending.h"
#include "core/sock/socket.h"

namespace sockshim {

// Asks the kernel whether fd's handshake ended; if it did, runs what the kernel
// ran then (the state, the addresses, active_established sockops) and clears the
// flag. Returns once the completion ran, on this thread or another. False while
// the socket is still in SYN_SENT. errno is preserved.
[[gnu::cold]] bool tcp_finish_connect(int fd) noexcept;

// The same before a send or receive on fd: a call that would block while the
// socket is still in SYN_SENT waits here for the handshake (as the kernel's
// sk_stream_wait_connect does), so its bytes meet the programs. 1: the
// completion ran (or the socket is no longer pending); 0: a non-blocking call
// on a socket still in SYN_SENT (which no map can hold: the call is the
// kernel's alone); -EAGAIN (SO_SNDTIMEO or SO_RCVTIMEO ran out) or -EINTR (a
// signal). errno is preserved.
[[gnu::cold, gnu::noinline]] int tcp_connect_before_io(int fd, bool send, int flags) noexcept;

// tcp_finish_connect on every connect pending socket of the process, for an
// epoll wait that returned: its events name no fd the shim could look at.
[[gnu::cold, gnu::noinline]] void tcp_finish_connects() noexcept;

}  // namespace sockshim
