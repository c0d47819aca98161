// The emulated bpf(2) system call: what `syscall(SYS_bpf, cmd, attr, size)`
// does under the shim (shim/hooks_bpf.cc). docs/bpf-syscall.md lists the
// commands and their errors.
#pragma once

namespace sockshim::bpfsys {

// Returns a new fd, 0, or a negative errno, as the kernel's __sys_bpf.
long sys_bpf(int cmd, void* uattr, unsigned size) noexcept;

}  // namespace sockshim::bpfsys
