// The kernel contexts from what Program's runs receive. Byte order as the
// kernel's *_convert_ctx_access presents it (bpf/README.md): addresses in
// network order (SocketTuple holds them so), remote_port the network-order
// port in the upper half on little-endian hosts (htonl of the port),
// local_port in host order.
#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstddef>
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

void fill_sk_msg_md_all(sk_msg_md* md, const SkMsg& msg, const SocketTuple& sk) noexcept {
  fill_socket(md, sk);
  md->size = msg.size();
}

// bpf_sock_convert_ctx_access: src is the local end, dst the remote one;
// protocol as the kernel's sk_protocol (TCP or UDP for an inet socket opened
// with protocol 0); no bound device, mark, priority or rx queue (-1).
void fill_bpf_sock(bpf_sock* s, const SocketTuple& sk, uint32_t state) noexcept {
  memset(s, 0, sizeof *s);
  s->family = sk.family;
  s->type = sk.type;
  s->protocol = sk.protocol;
  if (!s->protocol && (sk.family == AF_INET || sk.family == AF_INET6))
    s->protocol = sk.type == SOCK_STREAM ? IPPROTO_TCP : sk.type == SOCK_DGRAM ? IPPROTO_UDP : 0;
  s->src_ip4 = sk.local_ip4;
  memcpy(s->src_ip6, sk.local_ip6.data(), 16);
  s->src_port = sk.local_port;
  s->dst_port = htons(sk.remote_port);
  s->dst_ip4 = sk.remote_ip4;
  memcpy(s->dst_ip6, sk.remote_ip6.data(), 16);
  s->state = state;
  s->rx_queue_mapping = -1;
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
