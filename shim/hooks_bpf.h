// bpf(2) under the shim: syscall(SYS_bpf, ...) lands here (hooks_fd.cc).
#pragma once

namespace sockshim::shim {

// The emulated bpf(cmd, attr, size): libc's convention (-1 and errno).
long bpf_hook(long cmd, long attr, long size) noexcept;

}  // namespace sockshim::shim
