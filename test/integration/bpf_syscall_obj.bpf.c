// A libbpf object for the bpf() emulation test: BTF-defined maps, global data
// in .data, .bss and .rodata, and a socket filter that uses all three (libbpf
// loads it; it is never attached).
// <linux/bpf.h> first: bpf_helpers.h uses its types.
#include <linux/bpf.h>

#include <bpf/bpf_helpers.h>

struct {
  __uint(type, BPF_MAP_TYPE_SOCKHASH);
  __uint(max_entries, 8);
  __type(key, __u32);
  __type(value, __u64);
} sock_hash SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 16);
  __type(key, __u32);
  __type(value, __u64);
} counts SEC(".maps");

int counter = 42;                // .data
__u64 seen;                      // .bss
const volatile __u32 limit = 7;  // .rodata

SEC("socket")
int keep_all(struct __sk_buff* skb) {
  seen += counter + limit;
  return 0;
}

char _license[] SEC("license") = "GPL";
