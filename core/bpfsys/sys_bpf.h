// The emulated bpf(2) system call: what `syscall(SYS_bpf, cmd, attr, size)`
// does under the shim (shim/hooks_bpf.cc). docs/bpf-syscall.md lists the
// commands and their errors.
#pragma once

namespace sockshim::bpfsys {

// Returns a new fd, 0, or a negative errno, as the kernel's __sys_bpf.
long sys_bpf(int cmd, void* uattr, unsigned size) noexcept;

// Lets a policy's "object" programs load (policy/object_file.h) through this
// emulation: called before the policy loads (shim/init.cc).
void install_object_loader() noexcept;

}  // namespace sockshim::bpfsys
