// io_uring set-up through syscall(): the one io_uring entry the shim can see
// (glibc has no wrapper; libuv calls syscall(__NR_io_uring_setup, ...)).
#pragma once

namespace sockshim::shim {

// syscall(__NR_io_uring_setup, entries, params): refused with ENOSYS while a
// policy is loaded, else the real call. See hooks_uring.cc for why.
long io_uring_setup_hook(long entries, long params) noexcept;

}  // namespace sockshim::shim
