// The eBPF instruction encoding: the kernel's uapi constants plus the ISA v4
// ones that older <linux/bpf.h> headers (Debian 12's 6.1) do not define yet.
#pragma once

#include <linux/bpf.h>

#include <cstdint>
#include <span>

#ifndef BPF_MEMSX
#define BPF_MEMSX 0x80  // sign-extending load (LDX class), ISA v4
#endif
#ifndef BPF_JCOND
#define BPF_JCOND 0xe0  // may_goto (JMP class); not supported, named for the message
#endif

namespace sockshim::bpf {

// A program as the loader hands it over: lddw takes two slots.
using InsnSpan = std::span<const bpf_insn>;

// Kernel limits the checker applies.
inline constexpr uint32_t kMaxInsns = 1'000'000;  // BPF_COMPLEXITY_LIMIT_INSNS
inline constexpr int kMaxCallFrames = 8;          // MAX_CALL_FRAMES
inline constexpr int kStackSize = 512;            // MAX_BPF_STACK, per frame here

inline constexpr uint8_t insn_class(uint8_t code) {
  return code & 0x07;
}
inline constexpr uint8_t insn_size(uint8_t code) {
  return code & 0x18;
}
inline constexpr uint8_t insn_mode(uint8_t code) {
  return code & 0xe0;
}
inline constexpr uint8_t insn_op(uint8_t code) {
  return code & 0xf0;
}
inline constexpr uint8_t insn_src(uint8_t code) {
  return code & 0x08;
}

// Bytes moved by a load/store of size field `size` (BPF_B/H/W/DW).
inline constexpr uint32_t size_bytes(uint8_t size) {
  return size == BPF_B ? 1 : size == BPF_H ? 2 : size == BPF_W ? 4 : 8;
}

}  // namespace sockshim::bpf
