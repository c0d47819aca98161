// The policy's sockops programs run on socket events of every TCP socket of the
// process, as a cgroup BPF_PROG_TYPE_SOCK_OPS program does: listen, connect
// (tcp_connect, then active_established on completion), accept, and the close
// of the last fd (state_change, once: the shim does not see the TCP states a
// closing socket passes through). Their map_update actions are how an unmodified program's
// sockets enter maps.
#pragma once

#include <vector>

#include "core/sock/socket.h"
#include "policy/context.h"
#include "policy/program.h"

namespace sockshim {

// The BPF_CGROUP_SOCK_OPS programs bpf() attached (core/bpfsys), in the order
// they run, after the policy's. Each must stay allocated while the process
// runs, and policy_of must find its maps (keep_program_policy).
void set_cgroup_sock_ops(std::vector<const policy::Program*> progs) noexcept;

// Runs every sockops program of the loaded policy, then the cgroup's, for op on sk (the caller
// holds a reference; fd is one of its fds, or -1 when it has none left). Nothing happens without a
// policy or for a socket that is not TCP.
void sock_ops(policy::SockOp op, Socket* sk, int fd) noexcept;

// Records what a successful call did to fd's socket (its addresses, its state)
// and, on a change of state other than to CLOSE, runs the sockops programs for
// the event it completes. errno is preserved.
void sock_ops_transition(int fd, TcpState state, policy::SockOp op) noexcept;

}  // namespace sockshim
