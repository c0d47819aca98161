// The control socket: one unix socket per process, <runtime dir>/<pid>.sock
// (directory 0700, socket 0600, peer uid checked with SO_PEERCRED), served by the
// event loop. Requests are one JSON object per line; see README "Control protocol".
#pragma once

namespace sockshim::control {

// Starts serving unless already serving (cheap when it is). Called when the
// process first tracks a socket or loads a policy.
void ensure_started() noexcept;

// In a fork child: forget the parent's socket; the child serves its own once it
// tracks a socket.
void after_fork_child() noexcept;

// The program closed one of our fds: re-create the listening socket if needed.
void check_internal_fds() noexcept;

}  // namespace sockshim::control
