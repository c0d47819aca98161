// Reading a bpf() call's attr as the kernel's __sys_bpf does: a size shorter
// than union bpf_attr is zero-filled; bytes beyond what this emulation knows
// must be zero (bpf_check_uarg_tail_zero), and each command's fields after its
// last one must be zero too (CHECK_ATTR).
#pragma once

#include <linux/bpf.h>

#include <cstddef>
#include <cstdint>

namespace sockshim::bpfsys {

// bpf_check_uarg_tail_zero: 0; -E2BIG above a page or for a non-zero byte in
// [expected, actual); -EFAULT for a null uaddr with actual > 0.
int check_uarg_tail_zero(const void* uaddr, size_t expected, size_t actual) noexcept;

// The attr of bpf(cmd, uattr, size) into *out (zeroed, then the given bytes).
int copy_attr(const void* uattr, unsigned size, bpf_attr* out) noexcept;

// CHECK_ATTR: true when a byte of `a` from `end` (the end of the command's
// last field) on is not zero.
bool attr_tail_nonzero(const bpf_attr& a, size_t end) noexcept;

// The end of a field of union bpf_attr (offsetofend).
#define SOCKSHIM_ATTR_END(field) (offsetof(bpf_attr, field) + sizeof(bpf_attr::field))

// A user-space pointer carried in an attr.
template <typename T>
T* attr_ptr(uint64_t v) noexcept {
  return reinterpret_cast<T*>(static_cast<uintptr_t>(v));
}

}  // namespace sockshim::bpfsys
