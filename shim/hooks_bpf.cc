// bpf(2): glibc has no wrapper, so libbpf and every other loader call
// syscall(SYS_bpf, cmd, attr, size); the syscall() hook (hooks_fd.cc) sends
// that number here and core emulates it (core/bpfsys/).
#include "shim/hooks_bpf.h"

#include "core/bpfsys/sys_bpf.h"
#include "shim/hook.h"

namespace sockshim::shim {

long bpf_hook(long cmd, long attr, long size) noexcept {
  // The kernel's prototype: int cmd, union bpf_attr *attr, unsigned int size.
  return libc_result(bpfsys::sys_bpf(static_cast<int>(cmd), reinterpret_cast<void*>(attr),
                                     static_cast<unsigned>(size)));
}

}  // namespace sockshim::shim
