// The policy's sockops programs run on socket events of every TCP socket of the
// process, as a cgroup BPF_PROG_TYPE_SOCK_OPS program does: listen, connect
// completion, accept. Their map_update actions are how an unmodified program's
// sockets enter maps.
#pragma once

#include "core/socket.h"
#include "policy/context.h"

namespace sockshim {

// Runs every sockops program of the loaded policy for op on sk (the caller holds
// a reference; fd is one of its fds). Nothing happens without a policy or for a
// socket that is not TCP.
void sock_ops(policy::SockOp op, Socket* sk, int fd) noexcept;

}  // namespace sockshim
