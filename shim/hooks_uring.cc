// io_uring is not emulated. A ring moves socket I/O and epoll registrations
// (IORING_OP_EPOLL_CTL, which libuv uses) into the kernel where no hook sees
// them: reads would bypass a psock's ingress queue and epoll sets would never
// get the queue's eventfd. While a policy is loaded io_uring_setup fails with
// ENOSYS, as on a kernel without io_uring, so libuv and the like fall back to
// plain calls. Without a policy the shim does nothing, so rings are allowed.
#include "shim/hooks_uring.h"

#include <errno.h>
#include <sys/syscall.h>

#include <atomic>

#include "core/maps/loaded_policy.h"
#include "core/sock/errno_saver.h"
#include "core/sock/log.h"
#include "shim/hook.h"

namespace sockshim::shim {
namespace {

std::atomic<bool> g_said{false};

}  // namespace

long io_uring_setup_hook(long entries, long params) noexcept {
  ensure_initialised();
  bool refuse = current_policy() != nullptr;
  if (refuse && !g_said.exchange(true, std::memory_order_relaxed)) {
    ErrnoSaver saved;
    log::warn("io_uring_setup refused (ENOSYS) while a policy is loaded: io_uring is not emulated");
  }
  if (!refuse) return real::syscall(SYS_io_uring_setup, entries, params, 0, 0, 0, 0);
  errno = ENOSYS;
  return -1;
}

}  // namespace sockshim::shim
