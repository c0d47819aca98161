// What a running program sees of its socket and event: the policy's view of the
// kernel's sk_msg_md, __sk_buff and bpf_sock_ops contexts. Plain data, no I/O.
#pragma once

#include <array>
#include <cstdint>

namespace sockshim::policy {

// Verdicts (include/uapi/linux/bpf.h enum sk_action).
inline constexpr int SK_DROP = 0;
inline constexpr int SK_PASS = 1;

// Redirect flags.
inline constexpr uint64_t BPF_F_INGRESS = 1;

// Map update flags.
inline constexpr uint64_t BPF_ANY = 0;
inline constexpr uint64_t BPF_NOEXIST = 1;
inline constexpr uint64_t BPF_EXIST = 2;

// The socket's identity as a program reads it. Byte orders are the policy's, not
// the kernel's: ip4 addresses in network order (as sk_msg_md has them and as
// sockhash keys store them), ports in host order (the kernel gives remote_port in
// network order; a policy writes 6379, so the context holds 6379).
struct SocketTuple {
  uint32_t family = 0;      // AF_INET, AF_INET6, AF_UNIX, ...
  uint32_t local_ip4 = 0;   // network order
  uint32_t remote_ip4 = 0;  // network order
  std::array<uint8_t, 16> local_ip6{};
  std::array<uint8_t, 16> remote_ip6{};
  uint16_t local_port = 0;   // host order
  uint16_t remote_port = 0;  // host order
  uint32_t type = 0;         // SOCK_STREAM, SOCK_DGRAM, ... (0: unknown)
  uint32_t protocol = 0;     // as passed to socket(); 0: the family's default
};

// sock_ops callbacks a policy may name; values are the kernel's BPF_SOCK_OPS_*_CB.
enum class SockOp : uint32_t {
  tcp_connect = 3,
  active_established = 4,
  passive_established = 5,
  state_change = 10,
  listen = 11,
};

// bpf_sock_map_update / bpf_sock_hash_update are allowed only in these ops
// (sock_map_op_okay); elsewhere they return -EOPNOTSUPP.
constexpr bool sock_map_op_okay(SockOp op) noexcept {
  return op == SockOp::active_established || op == SockOp::passive_established ||
         op == SockOp::listen;
}

}  // namespace sockshim::policy
