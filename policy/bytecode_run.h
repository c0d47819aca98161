// The state one bytecode run shares with its helpers, the helper table and
// the contexts. Internal to policy/.
#pragma once

#include <arpa/inet.h>
#include <linux/bpf.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

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
  const SocketTuple* tuple = nullptr;
  // What ctx->sk points at: filled when the program first reads it
  // (RunInput::complete). Its address tells helpers taking a socket that the
  // program handed back the current one; null for a stream parser.
  bpf_sock* sock = nullptr;
  uint64_t sk_token() const noexcept { return reinterpret_cast<uint64_t>(sock); }
};

// The helper functions (bytecode_helpers.cc).
const bpf::HelperTable& bytecode_helpers() noexcept;
// The sk_skb helpers that write the frame (bytecode_skb_helpers.cc).
uint64_t skb_store_bytes(bpf::Vm& vm, uint64_t skb, uint64_t off, uint64_t from, uint64_t len,
                         uint64_t flags);

// The contexts (bytecode_context.cc), filled as the kernel presents them.
void fill_sk_msg_md_all(sk_msg_md* md, const SkMsg& msg, const SocketTuple& sk) noexcept;
void fill_sk_buff(__sk_buff* skb, uint32_t len, const SocketTuple& sk) noexcept;
void fill_sock_ops(bpf_sock_ops* ops, SockOp op, const SocketTuple& sk) noexcept;
// The socket behind ctx->sk (bpf/context.h has the byte orders); `state` is a
// BPF_TCP_* value.
void fill_bpf_sock(bpf_sock* s, const SocketTuple& sk, uint32_t state) noexcept;

// The window of msg as data / data_end addresses.
inline void msg_window(const SkMsg& msg, uint64_t* data, uint64_t* data_end) noexcept {
  const auto base = reinterpret_cast<uint64_t>(msg.bytes().data());
  *data = base + msg.data_start();
  *data_end = base + msg.data_end();
}

// The bits of LoadedProgram::ctx_reads that [off, off + len) covers.
constexpr uint64_t ctx_words(size_t off, size_t len) noexcept {
  return ((uint64_t{2} << ((off + len - 1) / 4)) - 1) & ~((uint64_t{1} << (off / 4)) - 1);
}

// The fields of md with a bit in `words` (LoadedProgram::ctx_reads; ~0 for
// all), never data, data_end and sk (the VM's slots). Inline: it is on every
// message's path, and most programs read two or three fields.
inline void fill_sk_msg_md(sk_msg_md* md, const SkMsg& msg, const SocketTuple& sk,
                           uint64_t words) noexcept {
#define SOCKSHIM_HAS(f) (words & ctx_words(offsetof(sk_msg_md, f), sizeof md->f))
  if (words == ~uint64_t{0}) return fill_sk_msg_md_all(md, msg, sk);
  if (SOCKSHIM_HAS(family)) md->family = sk.family;
  if (SOCKSHIM_HAS(remote_ip4)) md->remote_ip4 = sk.remote_ip4;
  if (SOCKSHIM_HAS(local_ip4)) md->local_ip4 = sk.local_ip4;
  if (SOCKSHIM_HAS(remote_ip6)) memcpy(md->remote_ip6, sk.remote_ip6.data(), 16);
  if (SOCKSHIM_HAS(local_ip6)) memcpy(md->local_ip6, sk.local_ip6.data(), 16);
  if (SOCKSHIM_HAS(remote_port)) md->remote_port = htonl(sk.remote_port);
  if (SOCKSHIM_HAS(local_port)) md->local_port = sk.local_port;
  if (SOCKSHIM_HAS(size)) md->size = msg.size();
#undef SOCKSHIM_HAS
}

}  // namespace sockshim::policy
