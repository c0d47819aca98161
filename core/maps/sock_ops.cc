#include "core/maps/sock_ops.h"

#include <errno.h>

#include "core/maps/bpf_helpers.h"
#include "core/maps/loaded_policy.h"
#include "core/sock/errno_saver.h"
#include "core/sock/log.h"
#include "core/sock/registry.h"
#include "core/sock/sock_query.h"

namespace sockshim {

void sock_ops(policy::SockOp op, Socket* sk, int fd) noexcept {
  std::shared_ptr<const LoadedPolicy> lp = current_policy();
  if (!lp || lp->policy->sockops.empty() || sock_kind(*sk) != SockKind::tcp) return;
  try {
    policy::SocketTuple tuple = socket_tuple(*sk);
    for (const policy::Program* prog : lp->policy->sockops) {
      SockHelpers helpers(*lp, policy::ProgramType::sockops, sk, fd);
      prog->run_sockops(op, tuple, helpers);
    }
  } catch (const std::exception& e) {
    log::internal_error("sock_ops", e.what());
  }
}

void sock_ops_transition(int fd, TcpState state, policy::SockOp op) noexcept {
  ErrnoSaver saved;
  if (SocketRef s = registry::adopt(fd)) {
    s->refresh_addresses(fd);
    if (s->set_state(state) && state != TcpState::close) sock_ops(op, s.get(), fd);
  }
}

}  // namespace sockshim
