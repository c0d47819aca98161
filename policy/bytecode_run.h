// The state one bytecode run shares with its helpers, the helper table and
// the contexts. Internal to policy/.
#pragma once

#include <linux/bpf.h>

#include <cstdint>

#include "bpf/program.h"
#include "policy/program.h"

namespace sockshim::policy {

// Map references reach the helpers as this tag plus the Helpers map index: a
// value no pointer or small integer a program computes can equal by accident
// (the tag makes it a non-canonical address), and Vm::uses_map still checks
// that the program referenced the map.
inline constexpr uint64_t kMapHandleTag = 0x5353'4d41'0000'0000;  // "SSMA"

// What one run's helpers act on (Vm::user()).
struct BytecodeRun {
  const Program* prog = nullptr;
  Helpers* helpers = nullptr;  // null for a stream parser (Program::parse has none)
  SkMsg* msg = nullptr;        // sk_msg
  sk_msg_md* md = nullptr;
  uint32_t skb_len = 0;         // sk_skb
  bpf_sock_ops* ops = nullptr;  // sockops
  bool redirected = false;      // the last redirect helper returned SK_PASS
  // What ctx->sk loads: the address of this struct, so helpers know the
  // current socket when a program hands it back. Not a region: a program
  // that reads through it faults (no struct bpf_sock here).
  uint64_t sk_token() const noexcept { return reinterpret_cast<uint64_t>(this); }
};

// The helper functions (bytecode_helpers.cc).
const bpf::HelperTable& bytecode_helpers() noexcept;

// The contexts (bytecode_context.cc), filled as the kernel presents them.
// fill_sk_msg_md sets every field but data, data_end and sk (the VM's slots).
void fill_sk_msg_md(sk_msg_md* md, const SkMsg& msg, const SocketTuple& sk) noexcept;
void fill_sk_buff(__sk_buff* skb, uint32_t len, const SocketTuple& sk) noexcept;
void fill_sock_ops(bpf_sock_ops* ops, SockOp op, const SocketTuple& sk) noexcept;
// The window of msg as data / data_end addresses.
void msg_window(const SkMsg& msg, uint64_t* data, uint64_t* data_end) noexcept;

}  // namespace sockshim::policy
