// The sk_skb rows: a stream parser and verdicts attached to sock_map, where
// p1 (the receiver) sits at 0 and the redirect target c2 at 1.
#include "rows_common.bpf.h"

struct {
  __uint(type, BPF_MAP_TYPE_SOCKMAP);
  __uint(max_entries, 2);
  __type(key, int);
  __type(value, int);
} sock_map SEC(".maps");

// Frames of a one-byte length prefix: that many payload bytes follow.
SEC("sk_skb/stream_parser")
int skb_parser(struct __sk_buff* skb) {
  __u8 n;
  if (bpf_skb_load_bytes(skb, 0, &n, 1)) return 0;
  return 1 + n;
}

// Drops frames whose first payload byte is 'x', passes the others. (Through
// bpf_skb_load_bytes: a frame need not start at skb->data.)
SEC("sk_skb/stream_verdict")
int skb_stream_pass(struct __sk_buff* skb) {
  __u8 first;
  count(RUNS, 1);
  count(BYTES, skb->len);
  if (bpf_skb_load_bytes(skb, 1, &first, 1)) return SK_PASS;
  return first == 'x' ? SK_DROP : SK_PASS;
}

// Sends every frame out of sock_map[1].
SEC("sk_skb/stream_verdict")
int skb_stream_redir(struct __sk_buff* skb) {
  count(RUNS, 1);
  count(BYTES, skb->len);
  return bpf_sk_redirect_map(skb, &sock_map, 1, 0);
}

// No parser: one run per chunk the socket received; drops chunks starting
// with 'x'. libbpf 1.1 does not know "sk_skb/verdict"; "sk_skb" loads an
// SK_SKB program the loader attaches as BPF_SK_SKB_VERDICT.
SEC("sk_skb")
int skb_verdict_pass(struct __sk_buff* skb) {
  __u8 first;
  count(RUNS, 1);
  count(BYTES, skb->len);
  if (bpf_skb_load_bytes(skb, 0, &first, 1)) return SK_PASS;
  return first == 'x' ? SK_DROP : SK_PASS;
}

// Puts every chunk into the receive queue of sock_map[1].
SEC("sk_skb")
int skb_verdict_redir_ingress(struct __sk_buff* skb) {
  count(RUNS, 1);
  count(BYTES, skb->len);
  return bpf_sk_redirect_map(skb, &sock_map, 1, BPF_F_INGRESS);
}

char _license[] SEC("license") = "GPL";
