// The programs of sockmap_example.c: a stream parser cutting 4-byte frames,
// a stream verdict that passes, drops or redirects a frame by its first byte
// and counts its verdicts in an ARRAY map, and a sockops program that puts
// every passively established socket into a sockmap.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
  __uint(type, BPF_MAP_TYPE_SOCKMAP);
  __uint(max_entries, 2);
  __type(key, __u32);
  __type(value, __u32);
} redir_map SEC(".maps");

// [0] passed, [1] dropped, [2] redirected
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 3);
  __type(key, __u32);
  __type(value, __u64);
} verdicts SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_SOCKMAP);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, __u64);
} ops_map SEC(".maps");

// sockops events seen, by op (HASH: key op, value count)
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 16);
  __type(key, __u32);
  __type(value, __u64);
} ops_seen SEC(".maps");

SEC("sk_skb/stream_parser")
int prog_parser(struct __sk_buff* skb) {
  return skb->len >= 4 ? 4 : 0;
}

SEC("sk_skb/stream_verdict")
int prog_verdict(struct __sk_buff* skb) {
  __u8 first = 0;
  if (bpf_skb_load_bytes(skb, 0, &first, 1)) return SK_DROP;
  __u32 k = first == 'D' ? 1 : first == 'R' ? 2 : 0;
  __u64* n = bpf_map_lookup_elem(&verdicts, &k);
  if (n) __sync_fetch_and_add(n, 1);
  if (first == 'D') return SK_DROP;
  if (first == 'R') return bpf_sk_redirect_map(skb, &redir_map, 0, BPF_F_INGRESS);
  return SK_PASS;
}

SEC("sockops")
int prog_sockops(struct bpf_sock_ops* skops) {
  __u32 op = skops->op;
  __u64 one = 1;
  __u64* n = bpf_map_lookup_elem(&ops_seen, &op);
  if (n)
    __sync_fetch_and_add(n, 1);
  else
    bpf_map_update_elem(&ops_seen, &op, &one, BPF_NOEXIST);
  if (op == BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB) {
    __u32 zero = 0;
    bpf_sock_map_update(skops, &ops_map, &zero, BPF_ANY);
  }
  return 1;
}

char _license[] SEC("license") = "GPL";
