// Programs a JSON policy names by "object" (test_bpf_object.py): each does
// what a rule program of bpf_object_json.json does, so the bytes at every
// reader must be the same under both policies.
#include <linux/bpf.h>

#include <bpf/bpf_helpers.h>

// Messages seen by route: the object's own map, not the policy's.
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, __u64);
} seen SEC(".maps");

// sk_msg: a message starting with 'D' is dropped, any other passes.
SEC("sk_msg")
int route(struct sk_msg_md* msg) {
  __u32 zero = 0;
  __u64* n = bpf_map_lookup_elem(&seen, &zero);
  if (n) __sync_fetch_and_add(n, 1);
  char *data = msg->data, *end = msg->data_end;
  if (data + 1 > end) return SK_PASS;
  return data[0] == 'D' ? SK_DROP : SK_PASS;
}

// Frames of a 1-byte length, then that many bytes.
SEC("sk_skb/stream_parser")
int frames(struct __sk_buff* skb) {
  __u8 len;
  if (bpf_skb_load_bytes(skb, 0, &len, 1)) return 0;
  return 1 + len;
}

// A frame whose payload starts with 'X' is dropped.
SEC("sk_skb/stream_verdict")
int verdict(struct __sk_buff* skb) {
  __u8 first;
  if (bpf_skb_load_bytes(skb, 1, &first, 1)) return SK_DROP;
  return first == 'X' ? SK_DROP : SK_PASS;
}

// For the type checks: a sockops program.
SEC("sockops")
int ops(struct bpf_sock_ops* skops) {
  return 1;
}

char _license[] SEC("license") = "GPL";
