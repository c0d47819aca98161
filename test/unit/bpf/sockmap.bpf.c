// Sockmap programs for the bytecode backend run through core on real
// loopback sockets (sockmap_test.cc), in the style of the kernel's sockmap
// selftests: one small program per behaviour. Map names are the test
// policy's, which the test resolves them to.
#include <linux/bpf.h>

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int(*name)[val]
#define __type(name, val) typeof(val)* name

static long (*bpf_msg_redirect_map)(struct sk_msg_md* msg, void* map, __u32 key,
                                    __u64 flags) = (void*)BPF_FUNC_msg_redirect_map;
static long (*bpf_msg_redirect_hash)(struct sk_msg_md* msg, void* map, void* key,
                                     __u64 flags) = (void*)BPF_FUNC_msg_redirect_hash;
static long (*bpf_sk_redirect_map)(struct __sk_buff* skb, void* map, __u32 key,
                                   __u64 flags) = (void*)BPF_FUNC_sk_redirect_map;
static long (*bpf_msg_apply_bytes)(struct sk_msg_md* msg, __u32 n) = (void*)BPF_FUNC_msg_apply_bytes;
static long (*bpf_msg_cork_bytes)(struct sk_msg_md* msg, __u32 n) = (void*)BPF_FUNC_msg_cork_bytes;
static long (*bpf_msg_pull_data)(struct sk_msg_md* msg, __u32 start, __u32 end,
                                 __u64 flags) = (void*)BPF_FUNC_msg_pull_data;
static long (*bpf_msg_push_data)(struct sk_msg_md* msg, __u32 start, __u32 len,
                                 __u64 flags) = (void*)BPF_FUNC_msg_push_data;
static long (*bpf_msg_pop_data)(struct sk_msg_md* msg, __u32 start, __u32 len,
                                __u64 flags) = (void*)BPF_FUNC_msg_pop_data;
static long (*bpf_skb_load_bytes)(const void* skb, __u32 off, void* to,
                                  __u32 len) = (void*)BPF_FUNC_skb_load_bytes;
static long (*bpf_sock_hash_update)(struct bpf_sock_ops* ops, void* map, void* key,
                                    __u64 flags) = (void*)BPF_FUNC_sock_hash_update;
static void* (*bpf_sk_storage_get)(void* map, void* sk, void* value,
                                   __u64 flags) = (void*)BPF_FUNC_sk_storage_get;
static long (*bpf_skb_store_bytes)(struct __sk_buff* skb, __u32 off, const void* from, __u32 len,
                                   __u64 flags) = (void*)BPF_FUNC_skb_store_bytes;
static __u64 (*bpf_get_socket_cookie)(void* ctx) = (void*)BPF_FUNC_get_socket_cookie;
static long (*bpf_sock_ops_cb_flags_set)(struct bpf_sock_ops* ops,
                                         int flags) = (void*)BPF_FUNC_sock_ops_cb_flags_set;
static long (*bpf_trace_printk)(const char* fmt, __u32 fmt_size, ...) = (void*)BPF_FUNC_trace_printk;

// The maps of the test policy (their definitions there win; these only name
// them for the relocations).
struct {
  __uint(type, BPF_MAP_TYPE_SOCKMAP);
  __uint(max_entries, 4);
  __type(key, __u32);
  __type(value, __u64);
} redir SEC(".maps");

struct sock_key {
  __u32 ip4;   // network order
  __u32 port;  // host order
};

struct {
  __uint(type, BPF_MAP_TYPE_SOCKHASH);
  __uint(max_entries, 16);
  __type(key, struct sock_key);
  __type(value, __u64);
} hash SEC(".maps");

struct counts {
  __u64 runs;
  __u64 bytes;
  __u64 cookie;
};

struct {
  __uint(type, BPF_MAP_TYPE_SK_STORAGE);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, int);
  __type(value, struct counts);
} counts SEC(".maps");

__u64 runs = 0;  // every run of every program, in .bss

// Counts runs and bytes in the socket's storage, then passes.
SEC("sk_msg/pass")
int msg_pass(struct sk_msg_md* msg) {
  struct counts* c = bpf_sk_storage_get(&counts, msg->sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
  runs++;
  if (!c) return SK_DROP;
  c->runs++;
  c->bytes += msg->size;
  return SK_PASS;
}

// Drops what starts with 'D'.
SEC("sk_msg/drop")
int msg_drop(struct sk_msg_md* msg) {
  char* data = (char*)(long)msg->data;
  char* data_end = (char*)(long)msg->data_end;
  if (data + 1 > data_end) return SK_PASS;
  return data[0] == 'D' ? SK_DROP : SK_PASS;
}

SEC("sk_msg/redir_egress")
int msg_redir_egress(struct sk_msg_md* msg) {
  return bpf_msg_redirect_map(msg, &redir, 0, 0);
}

SEC("sk_msg/redir_ingress")
int msg_redir_ingress(struct sk_msg_md* msg) {
  return bpf_msg_redirect_map(msg, &redir, 0, BPF_F_INGRESS);
}

// A verdict for 4 bytes at a time: a run per 4 bytes.
SEC("sk_msg/apply")
int msg_apply(struct sk_msg_md* msg) {
  runs++;
  bpf_msg_apply_bytes(msg, 4);
  return SK_PASS;
}

// Holds bytes until 8 are there.
SEC("sk_msg/cork")
int msg_cork(struct sk_msg_md* msg) {
  if (msg->size < 8) bpf_msg_cork_bytes(msg, 8);
  return SK_PASS;
}

// Prefixes every message with "<<" written through the new data pointers.
SEC("sk_msg/push")
int msg_push(struct sk_msg_md* msg) {
  if (bpf_msg_push_data(msg, 0, 2, 0)) return SK_DROP;
  char* data = (char*)(long)msg->data;
  char* data_end = (char*)(long)msg->data_end;
  if (data + 2 > data_end) return SK_DROP;
  data[0] = '<';
  data[1] = '<';
  return SK_PASS;
}

// Removes bytes 1 and 2.
SEC("sk_msg/pop")
int msg_pop(struct sk_msg_md* msg) {
  return bpf_msg_pop_data(msg, 1, 2, 0) ? SK_DROP : SK_PASS;
}

// Looks at bytes [2, 4) only: drops when they are "XX"; a pull past the end
// fails with -EINVAL and the message passes.
SEC("sk_msg/pull")
int msg_pull(struct sk_msg_md* msg) {
  if (bpf_msg_pull_data(msg, 2, 4, 0)) return SK_PASS;
  char* data = (char*)(long)msg->data;
  char* data_end = (char*)(long)msg->data_end;
  if (data + 2 != data_end) return SK_DROP;  // the window is exactly [2, 4)
  return data[0] == 'X' && data[1] == 'X' ? SK_DROP : SK_PASS;
}

// Logs a line, then reads past data_end: a fault.
SEC("sk_msg/fault")
int msg_fault(struct sk_msg_md* msg) {
  const char fmt[] = "msg of %u bytes\n";
  bpf_trace_printk(fmt, sizeof fmt, msg->size);
  return *(__u32*)(long)msg->data_end == 0 ? SK_PASS : SK_PASS + 1;
}

// Redirects to the socket whose own key is this one's peer: egress, so the
// bytes come back to the sender.
SEC("sk_msg/redir_hash")
int msg_redir_hash(struct sk_msg_md* msg) {
  struct sock_key k = {msg->remote_ip4, __builtin_bswap32(msg->remote_port)};
  return bpf_msg_redirect_hash(msg, &hash, &k, 0);
}

// Frames of a one-byte length prefix: that many bytes follow.
SEC("sk_skb/stream_parser")
int skb_parser(struct __sk_buff* skb) {
  __u8 n;
  if (bpf_skb_load_bytes(skb, 0, &n, 1)) return 0;
  return 1 + n;
}

// Drops frames whose first payload byte is 'x', redirects the others out of
// redir[0].
SEC("sk_skb/stream_verdict")
int skb_stream_verdict(struct __sk_buff* skb) {
  __u8* data = (__u8*)(long)skb->data;
  __u8* data_end = (__u8*)(long)skb->data_end;
  runs++;
  if (data + 2 > data_end) return SK_DROP;
  if (data[1] == 'x') return SK_DROP;
  return bpf_sk_redirect_map(skb, &redir, 0, 0);
}

// Passes to the reader unless the chunk starts with 'x'.
SEC("sk_skb/verdict")
int skb_verdict(struct __sk_buff* skb) {
  __u8* data = (__u8*)(long)skb->data;
  __u8* data_end = (__u8*)(long)skb->data_end;
  if (data + 1 > data_end) return SK_DROP;
  return data[0] == 'x' ? SK_DROP : SK_PASS;
}

// Rewrites each chunk for the reader when ctx->sk agrees with the context
// (its ports, in their byte orders): the first byte upper-cased in place, the
// last one replaced by '!' with bpf_skb_store_bytes. Drops it otherwise.
SEC("sk_skb/rewrite")
int skb_rewrite(struct __sk_buff* skb) {
  __u8* data = (__u8*)(long)skb->data;
  __u8* data_end = (__u8*)(long)skb->data_end;
  struct bpf_sock* sk = skb->sk;
  char bang = '!';
  if (!sk || data + 1 > data_end) return SK_DROP;
  if (sk->src_port != skb->local_port || sk->dst_port != skb->remote_port >> 16) return SK_DROP;
  if (sk->family != skb->family || sk->dst_ip4 != skb->remote_ip4) return SK_DROP;
  if (data[0] >= 'a' && data[0] <= 'z') data[0] -= 'a' - 'A';
  if (bpf_skb_store_bytes(skb, skb->len - 1, &bang, 1, 0)) return SK_DROP;
  return SK_PASS;
}

// Puts every established socket into `hash` under its own address and port;
// notes its cookie, and what cb_flags_set says of a flag it does not know, in
// its storage.
SEC("sockops")
int sockops_insert(struct bpf_sock_ops* ops) {
  struct sock_key k = {ops->local_ip4, ops->local_port};
  struct counts* c = bpf_sk_storage_get(&counts, ops->sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
  if (c) {
    c->cookie = bpf_get_socket_cookie(ops);
    c->bytes = bpf_sock_ops_cb_flags_set(ops, BPF_SOCK_OPS_STATE_CB_FLAG | 0x1000);
  }
  switch (ops->op) {
    case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
    case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
      ops->reply = bpf_sock_hash_update(ops, &hash, &k, BPF_NOEXIST);
      break;
    default:
      break;
  }
  return 1;
}
