// The control socket: one unix socket per process, <runtime dir>/<pid>.sock
// (directory 0700, socket 0600, peer uid checked with SO_PEERCRED), served by the
// event loop. Requests are one JSON object per line; see docs/control-protocol.md.
#pragma once

namespace sockshim::control {

// Decides, once at start-up, whether this process serves a control socket:
// SOCKSHIM_CONTROL=on or off, else only when a policy is loaded. Serving needs
// the shim's background thread, and a second thread makes glibc pay for
// cancellation handling on every system call of a program that had one: a
// pass-through process therefore stays single-threaded unless asked.
void configure(bool policy_loaded) noexcept;

// Starts serving if configured to and not yet serving (one atomic load when
// there is nothing to do). Called when the process tracks a socket.
void ensure_started() noexcept;

// In a fork child: forget the parent's socket; the child serves its own once it
// tracks a socket.
void after_fork_child() noexcept;

// The program closed one of our fds: re-create the listening socket if needed.
void check_internal_fds() noexcept;

}  // namespace sockshim::control
