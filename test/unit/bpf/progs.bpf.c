// Real programs for the VM tests, compiled with clang -target bpf at build
// time and loaded from the object by elf_program.cc. Written in the style of
// the kernel's sockmap selftests; no libbpf headers needed.
#include <linux/bpf.h>

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int(*name)[val]
#define __type(name, val) typeof(val)* name

static void* (*bpf_map_lookup_elem)(void* map, const void* key) = (void*)BPF_FUNC_map_lookup_elem;
static long (*bpf_msg_redirect_map)(struct sk_msg_md* msg, void* map, __u32 key,
                                    __u64 flags) = (void*)BPF_FUNC_msg_redirect_map;
static long (*bpf_sock_map_update)(struct bpf_sock_ops* ops, void* map, void* key,
                                   __u64 flags) = (void*)BPF_FUNC_sock_map_update;

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 4);
  __type(key, __u32);
  __type(value, __u64);
} counters SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_SOCKMAP);
  __uint(max_entries, 8);
  __type(key, __u32);
  __type(value, __u32);
} sock_map SEC(".maps");

__u64 messages = 0;

// A bpf-to-bpf call (noinline keeps it a real call into .text).
static __attribute__((noinline)) __u32 bucket(__u32 port) { return port == 6379 ? 1 : port & 3; }

// Counts bytes per bucket of the local port, drops messages starting with
// "FLUS", redirects messages starting with "RDR" to sock_map[1].
SEC("sk_msg")
int msg_prog(struct sk_msg_md* msg) {
  void* data = (void*)(long)msg->data;
  void* data_end = (void*)(long)msg->data_end;
  __u32 k = bucket(msg->local_port);
  __u64* c = bpf_map_lookup_elem(&counters, &k);
  if (c) __sync_fetch_and_add(c, msg->size);
  messages += 1;
  if (data + 4 > data_end) return SK_PASS;
  if (*(__u32*)data == 0x53554c46) return SK_DROP;  // "FLUS", little-endian
  if (((char*)data)[0] == 'R' && ((char*)data)[1] == 'D' && ((char*)data)[2] == 'R')
    return bpf_msg_redirect_map(msg, &sock_map, 1, 0);
  return SK_PASS;
}

// Verdict on the first byte of the packet; the __u32 data/data_end fields.
SEC("sk_skb/stream_verdict")
int skb_prog(struct __sk_buff* skb) {
  __u8* data = (__u8*)(long)skb->data;
  __u8* data_end = (__u8*)(long)skb->data_end;
  skb->priority = 7;
  if (data + 1 > data_end) return SK_DROP;
  return data[0] == 'x' ? SK_DROP : SK_PASS;
}

// Inserts established sockets on port 8080 into sock_map at the remote port:
// remote_port is network order in the upper half, local_port host order.
SEC("sockops")
int ops_prog(struct bpf_sock_ops* ops) {
  if (ops->op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB) return 0;
  if (ops->local_port != 8080) return 0;
  __u32 key = __builtin_bswap32(ops->remote_port);
  ops->reply = key;
  return (int)bpf_sock_map_update(ops, &sock_map, &key, BPF_ANY) == 0;
}

char _license[] SEC("license") = "GPL";
