// The socket registry: fd -> socket record. Untracked fds cost one atomic load.
#pragma once

#include <atomic>

#include "core/sock/socket.h"

namespace sockshim::registry {

// fds at or above this are never tracked (they pass through untouched); the
// default nr_open is 1048576, so real programs stay below it. The table lives in
// .bss: untouched pages cost no memory.
inline constexpr int kMaxFd = 1 << 20;
extern std::atomic<Socket*> g_fds[kMaxFd];

// The hot-path look-up: no lock, no reference, no allocation, async-signal-safe.
// The record may be released concurrently; its memory stays a Socket (see
// SocketPool), so reading its atomics is safe. Take a reference with get() before
// relying on anything else.
inline Socket* peek(int fd) noexcept {
  return static_cast<unsigned>(fd) < static_cast<unsigned>(kMaxFd)
             ? g_fds[fd].load(std::memory_order_acquire)
             : nullptr;
}

// A counted reference to fd's record, or empty when fd is untracked.
SocketRef get(int fd) noexcept;

// Like get(), but a socket the shim never saw (made before the shim loaded,
// inherited over exec, received with SCM_RIGHTS) is described and adopted.
// Empty when fd is not a socket.
SocketRef adopt(int fd) noexcept;

// Records a socket the process just created (socket, socketpair) or accepted.
// Whatever record sat at fd before was stale: the kernel handed out a free number.
void track_new(int fd, int family, int type, int protocol) noexcept;
// track_accepted: fd came from accept4(listen_fd, ..., flags).
void track_accepted(int fd, int flags, int listen_fd) noexcept;
// Records a socket that arrived by other means (SCM_RIGHTS).
void track_received(int fd) noexcept;

// After a successful dup/dup2/dup3/F_DUPFD: newfd now refers to oldfd's socket.
// A socket that was at newfd before is released.
void track_dup(int oldfd, int newfd) noexcept;

// Removes fd from the table before the real close; the caller puts the returned
// record after the close returned (the kernel's fput).
Socket* untrack(int fd) noexcept;

// Removes and releases every tracked fd in [lo, hi].
void untrack_range(unsigned lo, unsigned hi) noexcept;

// The real call said EBADF or ENOTSOCK on a tracked fd: the record is stale
// (closed behind the shim's back); drop it.
void evict_if_stale(int fd, Socket* s, int err) noexcept;

// The hooks' slow paths, out of line, errno preserved, returning r so that a
// hook can tail-call them. evict_after_error: a call on fd failed (errno); on
// EBADF or ENOTSOCK, and when the kernel confirms fd is still not an open socket
// (another thread may have reused the number meanwhile), fd's record is dropped.
// adopt_after_success: a socket-only call succeeded on fd: adopt it.
[[gnu::cold]] long evict_after_error(int fd, long r) noexcept;
long adopt_after_success(int fd, long r) noexcept;

// Puts a record taken out of the table (by untrack) after the real close.
void drop(Socket* s) noexcept;

// The shim's own fds (control socket, event loop) sit in the table as a sentinel
// record, so a program that closes or dup2()s over one (a close-all loop) is
// noticed: the close happens as asked, and the owner re-creates its fd.
// make_internal moves fd high and close-on-exec and returns the new number.
int make_internal(int fd) noexcept;
void close_internal(int fd) noexcept;
bool is_internal(Socket* s) noexcept;
// handler runs on the thread that closed an internal fd, after the close.
void set_internal_lost_handler(void (*handler)()) noexcept;
extern std::atomic<bool> g_internal_lost;
void run_internal_lost_handler() noexcept;
// Called by every hook after a real call that may have closed fds.
inline void after_close() noexcept {
  if (g_internal_lost.load(std::memory_order_relaxed)) [[unlikely]]
    run_internal_lost_handler();
}

// Highest fd ever tracked, bounding range walks.
int high_water() noexcept;

// Counts tracked fds and distinct live sockets (for ps and tests).
struct Census {
  int fds = 0;
  int sockets = 0;
};
Census census() noexcept;

// After fork() in the child: per-socket locks may have been held by threads that
// do not exist here; make them usable again.
void after_fork_child() noexcept;

// True in a vfork() child (or posix_spawn's): it shares the parent's memory, so
// the shim must not change any state there.
bool in_vfork_child() noexcept;
void remember_pid() noexcept;

}  // namespace sockshim::registry
