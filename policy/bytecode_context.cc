// The kernel contexts from what Program's runs receive. Byte order as the
// kernel's *_convert_ctx_access presents it (bpf/README.md): addresses in
// network order (SocketTuple holds them so), remote_port the network-order
// port in the upper half on little-endian hosts (htonl of the port),
// local_port in host order.
#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <netinet/in.h>

#include <cstring>

#include "policy/bytecode_run.h"

namespace sockshim::policy {
namespace {

template <typename Ctx>
void fill_socket(Ctx* c, const SocketTuple& sk) noexcept {
  c->family = sk.family;
  c->remote_ip4 = sk.remote_ip4;
  c->local_ip4 = sk.local_ip4;
  memcpy(c->remote_ip6, sk.remote_ip6.data(), 16);
  memcpy(c->local_ip6, sk.local_ip6.data(), 16);
  c->remote_port = htonl(sk.remote_port);
  c->local_port = sk.local_port;
}

// tcp_set_state's BPF_TCP_* for the ops that imply one (state_change's
// states are in args[], which core does not report).
uint32_t op_state(SockOp op) noexcept {
  switch (op) {
    case SockOp::tcp_connect:
      return BPF_TCP_SYN_SENT;
    case SockOp::active_established:
    case SockOp::passive_established:
      return BPF_TCP_ESTABLISHED;
    case SockOp::listen:
      return BPF_TCP_LISTEN;
    case SockOp::state_change:
      break;
  }
  return 0;
}

}  // namespace

void msg_window(const SkMsg& msg, uint64_t* data, uint64_t* data_end) noexcept {
  const auto base = reinterpret_cast<uint64_t>(msg.bytes().data());
  *data = base + msg.data_start();
  *data_end = base + msg.data_end();
}

void fill_sk_msg_md(sk_msg_md* md, const SkMsg& msg, const SocketTuple& sk) noexcept {
  fill_socket(md, sk);
  md->size = msg.size();
}

void fill_sk_buff(__sk_buff* skb, uint32_t len, const SocketTuple& sk) noexcept {
  fill_socket(skb, sk);
  skb->len = len;
  skb->pkt_type = 0;  // PACKET_HOST
  if (sk.family == AF_INET || sk.family == AF_INET6)
    skb->protocol = htons(sk.family == AF_INET ? ETH_P_IP : ETH_P_IPV6);
}

void fill_sock_ops(bpf_sock_ops* ops, SockOp op, const SocketTuple& sk) noexcept {
  fill_socket(ops, sk);
  ops->op = static_cast<uint32_t>(op);
  ops->is_fullsock = 1;
  ops->state = op_state(op);
}

}  // namespace sockshim::policy
