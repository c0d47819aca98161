// The sk_skb helpers that change the frame (net/core/filter.c), over the
// frame core hands a verdict program writable (Program::run_skb).
#include <cerrno>
#include <climits>
#include <cstring>

#include "bpf/vm.h"
#include "policy/bytecode_run.h"

namespace sockshim::policy {

// bpf_skb_store_bytes: -EINVAL for unknown flags, -EFAULT for an offset past
// INT_MAX or bytes past the frame's end (bpf_try_make_writable fails), and
// here also for a frame core gave read only (a stream parser's). The
// checksum and hash flags have nothing to act on: the frame is a payload.
// A source the program may not read, or len 0, is what the verifier refuses
// (ARG_PTR_TO_MEM, ARG_CONST_SIZE): a fault.
uint64_t skb_store_bytes(bpf::Vm& vm, uint64_t skb, uint64_t off, uint64_t from, uint64_t len,
                         uint64_t flags) {
  const auto n = static_cast<uint32_t>(len);
  const uint8_t* src = vm.is_ctx(skb) ? vm.mem(from, n, false) : nullptr;
  if (!src) {
    vm.fault();
    return 0;
  }
  auto err = [](int e) { return static_cast<uint64_t>(static_cast<int64_t>(-e)); };
  if (flags & ~uint64_t{BPF_F_RECOMPUTE_CSUM | BPF_F_INVALIDATE_HASH}) return err(EINVAL);
  const auto o = static_cast<uint32_t>(off);
  const auto& run = *static_cast<const BytecodeRun*>(vm.user());
  if (o > INT_MAX || uint64_t{o} + n > run.skb_len) return err(EFAULT);
  uint8_t* dst = vm.mem(vm.input().ctx_ptrs[bpf::kSlotData] + o, n, true);
  if (!dst) return err(EFAULT);
  memmove(dst, src, n);
  return 0;
}

}  // namespace sockshim::policy
