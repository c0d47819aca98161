// What every hook shares: symbol export and the pass-through shape.
#pragma once

#include <errno.h>

#include "core/sock/real.h"
#include "core/sock/registry.h"

#define SOCKSHIM_HOOK extern "C" __attribute__((visibility("default")))

namespace sockshim::shim {

// The hot path of a hook keeps only fd alive across the real call; whatever
// follows an error or an adoption is out of line and tail-called (it returns r),
// so a pass-through call costs about a dozen instructions.

// Runs the real call on a tracked fd; an EBADF or ENOTSOCK from the kernel may
// mean the record is stale (the fd was closed behind the shim's back): the
// error path asks the kernel again and drops it. The record itself is not
// needed after the call.
template <typename Call>
inline auto on_tracked(int fd, Socket*, Call&& call) noexcept {
  auto r = call();
  if (r < 0) [[unlikely]]
    return static_cast<decltype(r)>(registry::evict_after_error(fd, r));
  return r;
}

// After a socket-only call on an fd the shim never saw: success means it is a
// socket (made before the shim loaded, inherited over exec): adopt it. Returns r.
template <typename R>
inline R adopt_after(int fd, R r) noexcept {
  if (r < 0) return r;
  return static_cast<R>(registry::adopt_after_success(fd, r));
}

inline void adopt_after(int fd) noexcept {
  registry::adopt_after_success(fd, 0);
}

// Core returns -errno; libc returns -1 and sets errno. One conversion at
// the boundary, for hooks that call a core entry point.
template <typename R>
inline R libc_result(R r) noexcept {
  if (r >= 0) [[likely]]
    return r;
  errno = static_cast<int>(-r);
  return -1;
}

// Makes sure the constructor's work (symbols, fork handlers) is done; hooks that
// may run before our constructor call it on their slow paths.
void ensure_initialised() noexcept;

}  // namespace sockshim::shim
