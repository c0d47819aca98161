// The kernel side of the receive-path conformance rows: one stream parser and
// one verdict body (built as a stream verdict and as an skb verdict) whose
// behaviour comes from a config map, doing what each row's JSON policy does:
// frames whole, of a fixed length or length-prefixed (over max: -EMSGSIZE);
// drop frames containing a 4-byte marker; then pass, drop or redirect to
// redir[0] (egress, or ingress with BPF_F_INGRESS).
// linux/bpf.h first: the libbpf headers use its types.
#include <linux/bpf.h>

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define EMSGSIZE 90

enum { PARSE_WHOLE, PARSE_FIXED, PARSE_LENGTH_PREFIX };
enum { VERDICT_PASS, VERDICT_DROP, VERDICT_REDIRECT };

struct cfg {
  __u32 parser, fixed, max;
  __u32 verdict, ingress;
  __u32 marker;  // 0: none; else drop frames containing these 4 bytes
};

struct {
  __uint(type, BPF_MAP_TYPE_SOCKMAP);
  __uint(max_entries, 2);
  __type(key, int);
  __type(value, int);
} rx SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_SOCKMAP);
  __uint(max_entries, 2);
  __type(key, int);
  __type(value, int);
} redir SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, int);
  __type(value, struct cfg);
} conf SEC(".maps");

static __always_inline struct cfg* config(void) {
  int zero = 0;
  return bpf_map_lookup_elem(&conf, &zero);
}

SEC("sk_skb/stream_parser")
int parser(struct __sk_buff* skb) {
  struct cfg* c = config();
  if (!c) return skb->len;
  if (c->parser == PARSE_FIXED) return c->fixed;
  if (c->parser == PARSE_LENGTH_PREFIX) {
    __u32 be;
    if (bpf_skb_load_bytes(skb, 0, &be, sizeof be)) return 0;  // header incomplete
    __u64 len = (__u64)bpf_ntohl(be) + 4;
    if (c->max && len > c->max) return -EMSGSIZE;
    return len;
  }
  return skb->len;
}

// Frames in these rows are short; the bound keeps the verifier's loop finite.
static __always_inline int contains(struct __sk_buff* skb, __u32 marker) {
  for (__u32 i = 0; i < 252; i++) {
    __u32 w;
    if (i + 4 > skb->len || bpf_skb_load_bytes(skb, i, &w, sizeof w)) return 0;
    if (w == marker) return 1;
  }
  return 0;
}

static __always_inline int verdict(struct __sk_buff* skb) {
  struct cfg* c = config();
  if (!c) return SK_PASS;
  if (c->marker && contains(skb, c->marker)) return SK_DROP;
  if (c->verdict == VERDICT_DROP) return SK_DROP;
  if (c->verdict == VERDICT_REDIRECT)
    return bpf_sk_redirect_map(skb, &redir, 0, c->ingress ? BPF_F_INGRESS : 0);
  return SK_PASS;
}

SEC("sk_skb/stream_verdict")
int stream_verdict(struct __sk_buff* skb) {
  return verdict(skb);
}

// libbpf 1.1 does not know "sk_skb/verdict"; the kernel takes any SK_SKB
// program as BPF_SK_SKB_VERDICT.
SEC("sk_skb")
int skb_verdict(struct __sk_buff* skb) {
  return verdict(skb);
}

char _license[] SEC("license") = "GPL";
