// The kernel side of the send-path conformance matrix: one sk_msg program
// whose helpers and verdict come from a config map, doing in order what the
// JSON policy of each row does (apply, cork, pull, push, pop, then drop,
// redirect or pass), as test_sockmap's bpf_prog4/6/10 do with sock_bytes.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct cfg {
  __u32 apply, cork, pull_start, pull_end, push_start, push_len, pop_start, pop_len;
  __u32 drop, redirect, ingress;
};

struct {
  __uint(type, BPF_MAP_TYPE_SOCKMAP);
  __uint(max_entries, 2);
  __type(key, int);
  __type(value, int);
} txmap SEC(".maps");

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

SEC("sk_msg")
int msg_prog(struct sk_msg_md *msg) {
  int zero = 0;
  struct cfg *c = bpf_map_lookup_elem(&conf, &zero);
  if (!c) return SK_PASS;
  if (c->apply) bpf_msg_apply_bytes(msg, c->apply);
  if (c->cork) bpf_msg_cork_bytes(msg, c->cork);
  if (c->pull_end) bpf_msg_pull_data(msg, c->pull_start, c->pull_end, 0);
  if (c->push_len) bpf_msg_push_data(msg, c->push_start, c->push_len, 0);
  if (c->pop_len) bpf_msg_pop_data(msg, c->pop_start, c->pop_len, 0);
  if (c->drop) return SK_DROP;
  if (c->redirect) return bpf_msg_redirect_map(msg, &redir, 0, c->ingress ? BPF_F_INGRESS : 0);
  return SK_PASS;
}

char _license[] SEC("license") = "GPL";
