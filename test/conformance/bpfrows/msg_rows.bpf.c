// The sk_msg rows: one program per behaviour, attached as BPF_SK_MSG_VERDICT
// to sock_map, where c1 (the sender) sits at 0 and the redirect target c2 at 1.
#include "rows_common.bpf.h"

struct {
  __uint(type, BPF_MAP_TYPE_SOCKMAP);
  __uint(max_entries, 2);
  __type(key, int);
  __type(value, int);
} sock_map SEC(".maps");

static __always_inline void seen(struct sk_msg_md* msg) {
  count(RUNS, 1);
  count(BYTES, msg->size);
}

SEC("sk_msg")
int msg_pass(struct sk_msg_md* msg) {
  seen(msg);
  return SK_PASS;
}

// Drops what starts with 'D'.
SEC("sk_msg")
int msg_drop(struct sk_msg_md* msg) {
  char* data = (char*)(long)msg->data;
  char* data_end = (char*)(long)msg->data_end;
  seen(msg);
  if (data + 1 > data_end) return SK_PASS;
  return data[0] == 'D' ? SK_DROP : SK_PASS;
}

SEC("sk_msg")
int msg_redir_egress(struct sk_msg_md* msg) {
  seen(msg);
  return bpf_msg_redirect_map(msg, &sock_map, 1, 0);
}

SEC("sk_msg")
int msg_redir_ingress(struct sk_msg_md* msg) {
  seen(msg);
  return bpf_msg_redirect_map(msg, &sock_map, 1, BPF_F_INGRESS);
}

// A verdict per 4 bytes: the program runs again for each further 4.
SEC("sk_msg")
int msg_apply(struct sk_msg_md* msg) {
  seen(msg);
  note(HELPER_RESULT, bpf_msg_apply_bytes(msg, 4));
  return SK_PASS;
}

// Holds the bytes until 8 are there, then passes them as one message.
SEC("sk_msg")
int msg_cork(struct sk_msg_md* msg) {
  seen(msg);
  if (msg->size < 8) note(HELPER_RESULT, bpf_msg_cork_bytes(msg, 8));
  return SK_PASS;
}

// Prefixes every message with "<<", written through the new data pointers.
SEC("sk_msg")
int msg_push(struct sk_msg_md* msg) {
  seen(msg);
  long r = bpf_msg_push_data(msg, 0, 2, 0);
  note(HELPER_RESULT, r);
  if (r) return SK_DROP;
  char* data = (char*)(long)msg->data;
  char* data_end = (char*)(long)msg->data_end;
  if (data + 2 > data_end) return SK_DROP;
  data[0] = '<';
  data[1] = '<';
  return SK_PASS;
}

// Removes bytes 1 and 2 of every message.
SEC("sk_msg")
int msg_pop(struct sk_msg_md* msg) {
  seen(msg);
  long r = bpf_msg_pop_data(msg, 1, 2, 0);
  note(HELPER_RESULT, r);
  return r ? SK_DROP : SK_PASS;
}

// Looks at bytes [2, 4) only and drops the message when they are "XX"; a
// message too short for the window fails the pull (its result noted) and passes.
SEC("sk_msg")
int msg_pull(struct sk_msg_md* msg) {
  seen(msg);
  long r = bpf_msg_pull_data(msg, 2, 4, 0);
  note(HELPER_RESULT, r);
  if (r) return SK_PASS;
  char* data = (char*)(long)msg->data;
  char* data_end = (char*)(long)msg->data_end;
  note(WINDOW, data_end - data);
  if (data + 2 > data_end) return SK_DROP;
  return data[0] == 'X' && data[1] == 'X' ? SK_DROP : SK_PASS;
}

char _license[] SEC("license") = "GPL";
