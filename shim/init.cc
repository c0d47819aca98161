// Start-up and fork handling of the preloaded library.
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>

#include "core/bpfsys/bpf_objects.h"
#include "core/bpfsys/sys_bpf.h"
#include "core/control/control_server.h"
#include "core/control/protocol.h"
#include "core/domain/domain.h"
#include "core/maps/loaded_policy.h"
#include "core/maps/map_table.h"
#include "core/maps/maps_init.h"
#include "core/maps/sock_map_exec.h"
#include "core/psock/psock_stats.h"
#include "core/psock/sk_msg_queue.h"
#include "core/readiness/epoll_watch.h"
#include "core/readiness/poll_wake.h"
#include "core/readiness/skmsg_epoll.h"
#include "core/readiness/skmsg_poll.h"
#include "core/rx/sk_psock_rx.h"
#include "core/sock/event_loop.h"
#include "core/sock/log.h"
#include "core/sock/real.h"
#include "core/sock/registry.h"
#include "shim/hook.h"

namespace sockshim::shim {
namespace {

std::atomic<int> g_init_state{0};  // 0 not started, 1 running, 2 done

void fork_prepare() noexcept {
  domain::before_fork();
}

void fork_child() noexcept {
  registry::after_fork_child();
  maps_after_fork_child();
  bpfsys::after_fork_child();
  loaded_policy_after_fork_child();
  rule_stats_after_fork_child();
  epoll_watches_after_fork_child();
  poll_wake_after_fork_child();
  log::after_fork_child();
  EventLoop::after_fork_child();
  control::after_fork_child();
  domain::after_fork_child();
  sk_psock_rings_after_fork_child();
}

// Exit status for an unloadable policy (EX_CONFIG), as POLICY.md specifies.
constexpr int kExitPolicyError = 78;

void say(const std::string& line) noexcept {
  static const char prefix[] = "sockshim: ";
  iovec parts[] = {{const_cast<char*>(prefix), sizeof prefix - 1},
                   {const_cast<char*>(line.data()), line.size()},
                   {const_cast<char*>("\n"), 1}};
  (void)!real::writev(2, parts, 3);
}

// SOCKSHIM_POLICY: load it, or stop the program (SOCKSHIM_ON_ERROR=exit, the
// default) or carry on without it (passthrough), saying why either way.
bool load_policy_from_env() noexcept {
  const char* path = getenv("SOCKSHIM_POLICY");
  if (!path || !*path) return false;
  std::vector<std::string> errors;
  if (load_policy(path, &errors)) return true;
  for (const std::string& e : errors) say(e);
  const char* on_error = getenv("SOCKSHIM_ON_ERROR");
  if (on_error && strcmp(on_error, "passthrough") == 0) {
    say("continuing without a policy (SOCKSHIM_ON_ERROR=passthrough): every socket passes through");
    return false;
  }
  if (on_error && *on_error && strcmp(on_error, "exit") != 0)
    say(std::string("SOCKSHIM_ON_ERROR=") + on_error + " is not one of exit, passthrough");
  say("stopping: the policy cannot be loaded (SOCKSHIM_ON_ERROR=passthrough runs without it)");
  _exit(kExitPolicyError);
}

void internal_fd_lost() noexcept {
  log::check_internal_fds();
  EventLoop::check_internal_fds();
  control::check_internal_fds();
}

}  // namespace

void ensure_initialised() noexcept {
  int state = g_init_state.load(std::memory_order_acquire);
  if (state == 2) [[likely]]
    return;
  state = 0;
  if (!g_init_state.compare_exchange_strong(state, 1, std::memory_order_acq_rel)) return;
  maps_init();
  registry::remember_pid();
  real::resolve_all();
  pthread_atfork(fork_prepare, nullptr, fork_child);
  registry::set_internal_lost_handler(internal_fd_lost);
  g_init_state.store(2, std::memory_order_release);
  log::start();
  log::info("loaded");
  bpfsys::install_object_loader();  // before the policy: its "object" programs
  bool policy_loaded = load_policy_from_env();
  control::configure(policy_loaded);
  domain::attach(control::runtime_dir(), policy_loaded ? getenv("SOCKSHIM_POLICY") : nullptr);
  if (policy_loaded) domain_policy_baseline();  // its own file, not an earlier reload's
  // Before the library's static initialisers ran (this constructor comes
  // first): the psock operations a readopted socket's link uses.
  sk_psock_rx_install_ops();
  skmsg_poll_install_ops();
  // Sockets in maps: served as once a program makes its first socket.
  if (sock_maps_readopt() > 0) control::ensure_started();
}

}  // namespace sockshim::shim

__attribute__((constructor(101))) static void sockshim_init() {
  sockshim::shim::ensure_initialised();
}
