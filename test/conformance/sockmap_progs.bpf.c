// Programs for the kernel side of the map conformance suite. Only their roles
// matter (which attach slots they fill, EBUSY rules); no traffic is sent.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("sk_msg")
int msg_pass(struct sk_msg_md* msg) { return SK_PASS; }

SEC("sk_msg")
int msg_pass2(struct sk_msg_md* msg) { return SK_PASS; }

SEC("sk_skb")
int skb_parser(struct __sk_buff* skb) { return skb->len; }

SEC("sk_skb")
int skb_pass(struct __sk_buff* skb) { return SK_PASS; }

SEC("sk_skb")
int skb_pass2(struct __sk_buff* skb) { return SK_PASS; }

char _license[] SEC("license") = "GPL";
