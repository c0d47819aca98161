// fd-table hooks: close, dup, fcntl, ioctl, and the raw syscall() that libuv
// and bpf() loaders use. The fds of bpf() objects (core/bpfsys/) follow closes
// and dups here as sockets do.
#include <fcntl.h>
#include <linux/close_range.h>
#include <stdarg.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/bpfsys/bpf_objects.h"
#include "core/rx/skmsg_ingress.h"
#include "core/sock/errno_saver.h"
#include "shim/hook.h"
#include "shim/hooks_bpf.h"
#include "shim/hooks_uring.h"

using namespace sockshim;

namespace {

// The record leaves the table before the real close, so a concurrent socket()
// that gets the same number never has its record wiped; it is put after, as
// the kernel's last fput follows the close.
template <typename Close>
auto close_tracked(int fd, Close&& real_close) noexcept {
  Socket* s = registry::untrack(fd);
  std::shared_ptr<bpfsys::BpfObject> obj = bpfsys::untrack(fd);
  auto r = real_close();
  if (s) {
    ErrnoSaver saved;
    registry::drop(s);
    registry::after_close();
  }
  if (obj) {
    ErrnoSaver saved;
    obj.reset();  // the kernel's last fput of a map or program fd
  }
  return r;
}

// The close fast path: an fd that is neither a tracked socket nor, while the
// process has any, a bpf() object.
inline bool untracked(int fd) noexcept {
  return !registry::peek(fd) && !bpfsys::may_hold();
}

template <typename Dup>
auto dup_tracked(int oldfd, Dup&& real_dup) noexcept {
  auto r = real_dup();
  if (r >= 0) {
    ErrnoSaver saved;
    registry::track_dup(oldfd, static_cast<int>(r));
    bpfsys::track_dup(oldfd, static_cast<int>(r));
    registry::after_close();
  }
  return r;
}

template <typename CloseRange>
auto close_range_tracked(unsigned lo, unsigned hi, int flags, CloseRange&& real_close_range) {
  bool closes = lo <= hi && !(flags & CLOSE_RANGE_CLOEXEC);
  if (closes) {
    ErrnoSaver saved;
    registry::untrack_range(lo, hi);
    bpfsys::untrack_range(lo, hi);
  }
  auto r = real_close_range();
  ErrnoSaver saved;
  registry::after_close();
  return r;
}

int fcntl_hook(int fd, int cmd, unsigned long arg) noexcept {
  switch (cmd) {
    case F_DUPFD:
    case F_DUPFD_CLOEXEC:
      return dup_tracked(fd, [&] { return real::fcntl(fd, cmd, arg); });
    case F_SETFL: {
      int r = real::fcntl(fd, cmd, arg);
      if (r == 0)
        if (Socket* s = registry::peek(fd))
          s->nonblocking.store(arg & O_NONBLOCK, std::memory_order_relaxed);
      return r;
    }
    default:
      return real::fcntl(fd, cmd, arg);
  }
}

}  // namespace

SOCKSHIM_HOOK int close(int fd) {
  if (untracked(fd)) [[likely]]
    return real::close(fd);
  return close_tracked(fd, [&] { return real::close(fd); });
}

SOCKSHIM_HOOK int close_range(unsigned int lo, unsigned int hi, int flags) {
  return close_range_tracked(lo, hi, flags, [&] { return real::close_range(lo, hi, flags); });
}

SOCKSHIM_HOOK void closefrom(int lo) {
  if (lo < 0) return real::closefrom(lo);
  close_range_tracked(static_cast<unsigned>(lo), ~0u, 0, [&] {
    real::closefrom(lo);
    return 0;
  });
}

SOCKSHIM_HOOK int dup(int fd) {
  return dup_tracked(fd, [&] { return real::dup(fd); });
}

SOCKSHIM_HOOK int dup2(int oldfd, int newfd) {
  return dup_tracked(oldfd, [&] { return real::dup2(oldfd, newfd); });
}

SOCKSHIM_HOOK int dup3(int oldfd, int newfd, int flags) {
  return dup_tracked(oldfd, [&] { return real::dup3(oldfd, newfd, flags); });
}

SOCKSHIM_HOOK int fcntl(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  unsigned long arg = va_arg(ap, unsigned long);
  va_end(ap);
  return fcntl_hook(fd, cmd, arg);
}

SOCKSHIM_HOOK int fcntl64(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  unsigned long arg = va_arg(ap, unsigned long);
  va_end(ap);
  return fcntl_hook(fd, cmd, arg);
}

SOCKSHIM_HOOK int ioctl(int fd, unsigned long request, ...) {
  va_list ap;
  va_start(ap, request);
  unsigned long arg = va_arg(ap, unsigned long);
  va_end(ap);
  int r = real::ioctl(fd, request, arg);
  if (r == 0 && request == FIONREAD) [[unlikely]]
    if (Socket* s = registry::peek(fd); s && s->psock.load(std::memory_order_relaxed)) {
      ErrnoSaver saved;
      psock_fionread(fd, reinterpret_cast<int*>(arg));
    }
  if (r == 0 && request == FIONBIO)
    if (Socket* s = registry::peek(fd))
      s->nonblocking.store(*reinterpret_cast<const int*>(arg) != 0, std::memory_order_relaxed);
  return r;
}

// libuv and others close and duplicate fds with syscall(); the registry must see
// those too, io_uring_setup (libuv's way in) is the shim's to refuse, and bpf
// (glibc has no wrapper) is emulated. Every other number passes straight
// through with all six arguments: the va_list reads six words whatever the
// caller passed, as glibc's own syscall() does, and the kernel ignores the
// ones a call does not take.
SOCKSHIM_HOOK long syscall(long nr, ...) {
  va_list ap;
  va_start(ap, nr);
  long a[6];
  for (long& x : a) x = va_arg(ap, long);
  va_end(ap);
  auto raw = [&] { return real::syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]); };
  switch (nr) {
    case SYS_close: {
      int fd = static_cast<int>(a[0]);
      if (untracked(fd)) return raw();
      return close_tracked(fd, raw);
    }
    case SYS_close_range:
      return close_range_tracked(static_cast<unsigned>(a[0]), static_cast<unsigned>(a[1]),
                                 static_cast<int>(a[2]), raw);
    case SYS_dup:
    case SYS_dup2:
    case SYS_dup3:
      return dup_tracked(static_cast<int>(a[0]), raw);
    case SYS_io_uring_setup:
      return shim::io_uring_setup_hook(a[0], a[1]);
    case SYS_bpf:
      if (!shim::bpf_hook) return raw();
      return shim::bpf_hook(a[0], a[1], a[2]);
    default:
      return raw();
  }
}
