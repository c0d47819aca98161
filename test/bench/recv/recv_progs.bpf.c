// The kernel side of the receive-path benchmark: bytes arriving on the socket
// at src[0] leave through the socket at dst[0] (egress redirect). The parser is
// attached only in the parser+verdict variant.
// linux/bpf.h first: the libbpf headers use its types.
#include <linux/bpf.h>

#include <bpf/bpf_helpers.h>

struct {
  __uint(type, BPF_MAP_TYPE_SOCKMAP);
  __uint(max_entries, 1);
  __type(key, int);
  __type(value, int);
} src SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_SOCKMAP);
  __uint(max_entries, 1);
  __type(key, int);
  __type(value, int);
} dst SEC(".maps");

SEC("sk_skb/stream_parser")
int parser(struct __sk_buff* skb) {
  return skb->len;
}

SEC("sk_skb/stream_verdict")
int verdict(struct __sk_buff* skb) {
  return bpf_sk_redirect_map(skb, &dst, 0, 0);
}

char _license[] SEC("license") = "GPL";
