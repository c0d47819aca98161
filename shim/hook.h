// What every hook shares: symbol export and the pass-through shape.
#pragma once

#include <errno.h>

#include "core/real.h"
#include "core/registry.h"

#define SOCKSHIM_HOOK extern "C" __attribute__((visibility("default")))

namespace sockshim::shim {

// Runs the real call on a tracked fd; an EBADF or ENOTSOCK from the kernel means
// the record is stale (the fd was closed behind the shim's back), so drop it.
// That work is out of line: the hot path only keeps fd and s across the call.
template <typename Call>
inline auto on_tracked(int fd, Socket* s, Call&& call) noexcept {
  auto r = call();
  if (r < 0) [[unlikely]]
    registry::evict_after_error(fd, s);
  return r;
}

// After a socket-only call succeeded on an fd the shim never saw: adopt it.
inline void adopt_after(int fd) noexcept {
  if (static_cast<unsigned>(fd) < static_cast<unsigned>(registry::kMaxFd)) {
    int saved = errno;
    registry::adopt(fd);
    errno = saved;
  }
}

// Makes sure the constructor's work (symbols, fork handlers) is done; hooks that
// may run before our constructor call it on their slow paths.
void ensure_initialised() noexcept;

}  // namespace sockshim::shim
