// The sockops row: a sockops program on the cgroup puts every established
// socket into sock_hash under its own address and port; an sk_msg program on
// sock_hash sends each message out of the sender's peer, so it comes back to
// the sender (the peer's key is the sender's remote address and port).
#include "rows_common.bpf.h"

struct sock_key {
  __u32 ip4;   // network order
  __u32 port;  // host order
};

struct {
  __uint(type, BPF_MAP_TYPE_SOCKHASH);
  __uint(max_entries, 8);
  __type(key, struct sock_key);
  __type(value, __u64);
} sock_hash SEC(".maps");

SEC("sockops")
int sockops_insert(struct bpf_sock_ops* ops) {
  struct sock_key k = {ops->local_ip4, ops->local_port};
  switch (ops->op) {
    case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
    case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
      count(RUNS, 1);
      count(HELPER_RESULT, bpf_sock_hash_update(ops, &sock_hash, &k, BPF_NOEXIST));
      break;
    default:
      break;
  }
  return 1;
}

SEC("sk_msg")
int msg_to_peer(struct sk_msg_md* msg) {
  struct sock_key k = {msg->remote_ip4, __builtin_bswap32(msg->remote_port)};
  count(BYTES, msg->size);
  return bpf_msg_redirect_hash(msg, &sock_hash, &k, 0);
}

char _license[] SEC("license") = "GPL";
