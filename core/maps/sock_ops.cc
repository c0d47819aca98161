#include "core/maps/sock_ops.h"

#include <errno.h>

#include <atomic>
#include <memory>
#include <new>
#include <utility>

#include "core/maps/bpf_helpers.h"
#include "core/maps/loaded_policy.h"
#include "core/sock/errno_saver.h"
#include "core/sock/log.h"
#include "core/sock/registry.h"
#include "core/sock/sock_query.h"

namespace sockshim {
namespace {

using Progs = std::vector<const policy::Program*>;

// The list runs read without a lock (fork-safe, as the hooks must be). A
// replaced list is never freed: a run may still be walking it, and lists
// change only when a loader attaches or detaches.
std::atomic<const Progs*> g_cgroup_progs{nullptr};

}  // namespace

void set_cgroup_sock_ops(std::vector<const policy::Program*> progs) noexcept {
  const Progs* now = nullptr;
  if (!progs.empty()) {
    now = new (std::nothrow) Progs(std::move(progs));
    if (!now) {
      log::internal_error("sock_ops", "out of memory for the cgroup's programs");
      return;
    }
  }
  g_cgroup_progs.store(now, std::memory_order_release);
}

void sock_ops(policy::SockOp op, Socket* sk, int fd) noexcept {
  std::shared_ptr<const LoadedPolicy> lp = current_policy();
  const bool policy_ops = lp && !lp->policy->sockops.empty();
  const Progs* cg = g_cgroup_progs.load(std::memory_order_acquire);
  if ((!policy_ops && !cg) || sock_kind(*sk) != SockKind::tcp) return;
  try {
    policy::SocketTuple tuple = socket_tuple(*sk);
    if (policy_ops)
      for (const policy::Program* prog : lp->policy->sockops) {
        SockHelpers helpers(*lp, policy::ProgramType::sockops, sk, fd);
        prog->run_sockops(op, tuple, helpers);
      }
    if (cg)
      for (const policy::Program* prog : *cg) {
        // A bpf() program's maps are its own policy's (keep_program_policy).
        std::shared_ptr<const LoadedPolicy> own = policy_of(prog);
        if (!own) continue;
        SockHelpers helpers(*own, policy::ProgramType::sockops, sk, fd);
        prog->run_sockops(op, tuple, helpers);
      }
  } catch (const std::exception& e) {
    log::internal_error("sock_ops", e.what());
  }
}

void sock_ops_transition(int fd, TcpState state, policy::SockOp op) noexcept {
  ErrnoSaver saved;
  domain_policy_sync();  // a reload in another member of the domain applies from here
  if (SocketRef s = registry::adopt(fd)) {
    s->refresh_addresses(fd);
    if (s->set_state(state) && state != TcpState::close) sock_ops(op, s.get(), fd);
  }
}

}  // namespace sockshim
