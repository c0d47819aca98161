// bpf(2) under the shim: syscall(SYS_bpf, ...) lands here (hooks_fd.cc).
#pragma once

namespace sockshim::shim {

// The emulated bpf(cmd, attr, size): libc's convention (-1 and errno).
// Weak: a test binary that holds the other hooks but calls the kernel's
// bpf() through libbpf (the conformance suites: shim_objects_kernel_bpf in
// shim/meson.build) leaves hooks_bpf.cc out, and SYS_bpf passes through.
[[gnu::weak]] long bpf_hook(long cmd, long attr, long size) noexcept;

}  // namespace sockshim::shim
