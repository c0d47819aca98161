#include "core/bpfsys/bpf_attr.h"

#include <errno.h>

#include <cstring>

namespace sockshim::bpfsys {

namespace {

// The kernel's PAGE_SIZE bound on a "silly large" attr.
constexpr size_t kMaxAttrSize = 4096;

}  // namespace

int check_uarg_tail_zero(const void* uaddr, size_t expected, size_t actual) noexcept {
  if (actual > kMaxAttrSize) return -E2BIG;
  if (!uaddr && actual) return -EFAULT;
  if (actual <= expected) return 0;
  const auto* p = static_cast<const unsigned char*>(uaddr);
  for (size_t i = expected; i < actual; ++i)
    if (p[i]) return -E2BIG;
  return 0;
}

int copy_attr(const void* uattr, unsigned size, bpf_attr* out) noexcept {
  if (int r = check_uarg_tail_zero(uattr, sizeof *out, size)) return r;
  std::memset(out, 0, sizeof *out);
  if (size) std::memcpy(out, uattr, size < sizeof *out ? size : sizeof *out);
  return 0;
}

bool attr_tail_nonzero(const bpf_attr& a, size_t end) noexcept {
  const auto* p = reinterpret_cast<const unsigned char*>(&a);
  for (size_t i = end; i < sizeof a; ++i)
    if (p[i]) return true;
  return false;
}

}  // namespace sockshim::bpfsys
