// Start-up and fork handling of the preloaded library.
#include <pthread.h>

#include <atomic>

#include "core/control_server.h"
#include "core/event_loop.h"
#include "core/log.h"
#include "core/real.h"
#include "core/registry.h"
#include "shim/hook.h"

namespace sockshim::shim {
namespace {

std::atomic<int> g_init_state{0};  // 0 not started, 1 running, 2 done

void fork_child() noexcept {
  registry::after_fork_child();
  log::after_fork_child();
  EventLoop::after_fork_child();
  control::after_fork_child();
}

void internal_fd_lost() noexcept {
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
  registry::remember_pid();
  real::resolve_all();
  pthread_atfork(nullptr, nullptr, fork_child);
  registry::set_internal_lost_handler(internal_fd_lost);
  g_init_state.store(2, std::memory_order_release);
  log::info("loaded");
}

}  // namespace sockshim::shim

__attribute__((constructor(101))) static void sockshim_init() {
  sockshim::shim::ensure_initialised();
}
