#include "rows.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <thread>

#include "test/support/loopback.h"
#include "transcript.h"

namespace bpfrows {
namespace {

// The counters array of rows_common.bpf.h.
enum { RUNS, BYTES, HELPER_RESULT, WINDOW, NR_COUNTERS };

int prog_fd(Ctx& c, const char* name) {
  bpf_program* p = bpf_object__find_program_by_name(c.obj, name);
  return p ? bpf_program__fd(p) : -1;
}

int map_fd(Ctx& c, const char* name) {
  return bpf_object__find_map_fd_by_name(c.obj, name);
}

std::string type_name(bpf_attach_type t) {
  const char* s = libbpf_bpf_attach_type_str(t);
  return s ? s : std::to_string(t);
}

int attach(Ctx& c, const char* prog, const char* target, int target_fd, bpf_attach_type t) {
  return call("bpf_prog_attach(" + std::string(prog) + ", " + target + ", " + type_name(t) + ")",
              bpf_prog_attach(prog_fd(c, prog), target_fd, t, 0));
}

int attach_map(Ctx& c, const char* prog, const char* map, bpf_attach_type t) {
  return attach(c, prog, map, map_fd(c, map), t);
}

int detach_map(Ctx& c, const char* prog, const char* map, bpf_attach_type t) {
  return call("bpf_prog_detach2(" + std::string(prog) + ", " + map + ", " + type_name(t) + ")",
              bpf_prog_detach2(prog_fd(c, prog), map_fd(c, map), t));
}

int update(Ctx& c, const char* map, int key, const char* sock, int fd, uint64_t flags = BPF_ANY) {
  return call("bpf_map_update_elem(" + std::string(map) + ", " + std::to_string(key) + ", " + sock +
                  ", " + std::to_string(flags) + ")",
              bpf_map_update_elem(map_fd(c, map), &key, &fd, flags));
}

int64_t counter(Ctx& c, int idx) {
  int64_t v = 0;
  if (bpf_map_lookup_elem(map_fd(c, "counters"), &idx, &v)) return INT64_MIN;
  return v;
}

// The program's counters, read back after the traffic.
void counters(Ctx& c) {
  static const char* const names[NR_COUNTERS] = {"runs", "bytes", "helper", "window"};
  std::string s = "counters:";
  for (int i = 0; i < NR_COUNTERS; ++i) {
    const int64_t v = counter(c, i);
    s += std::string(" ") + names[i] + "=" + (v == INT64_MIN ? "lookup failed" : std::to_string(v));
  }
  line(s);
}

// Waits (bounded) until the program ran n times: the sk_skb and sockops
// programs run after the call that made them run has returned.
void wait_runs(Ctx& c, int64_t n) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (counter(c, RUNS) < n && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
}

// Two loopback TCP pairs, c1<->p1 (the traffic) and c2<->p2 (the redirect
// target's), with a reader on each end once started.
struct Net {
  test_support::LoopbackPair a, b;
  std::unique_ptr<Reader> c1, p1, c2, p2;

  explicit Net(bool both = true) {
    connect(a);
    if (both) connect(b);
  }
  static void connect(test_support::LoopbackPair& pair) {
    if (!pair.connect()) setup_failed("a loopback TCP pair");
    const int one = 1;
    for (int fd : {pair.c, pair.p}) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  void start() {
    c1 = std::make_unique<Reader>("c1", a.c);
    p1 = std::make_unique<Reader>("p1", a.p);
    if (b.c >= 0) {
      c2 = std::make_unique<Reader>("c2", b.c);
      p2 = std::make_unique<Reader>("p2", b.p);
    }
  }
  // Every end shuts its writing side; then each reader's bytes and end.
  void finish() {
    for (int fd : {a.c, a.p, b.c, b.p})
      if (fd >= 0) shutdown(fd, SHUT_WR);
    for (auto* r : {&c1, &p1, &c2, &p2})
      if (*r) (*r)->report();
  }
};

// sk_msg: c1 at sock_map[0] with the program, c2 at sock_map[1].
void msg_row(Ctx& c, const char* prog, const std::vector<std::string>& sends) {
  attach_map(c, prog, "sock_map", BPF_SK_MSG_VERDICT);
  Net net;
  update(c, "sock_map", 0, "c1", net.a.c);
  update(c, "sock_map", 1, "c2", net.b.c);
  net.start();
  for (const auto& s : sends) send_bytes("c1", net.a.c, s);
  counters(c);
  net.finish();
}

void msg_pass(Ctx& c) {
  msg_row(c, "msg_pass", {"hello", "world!"});
}
void msg_drop(Ctx& c) {
  msg_row(c, "msg_drop", {"keep1", "Drop", "keep2"});
}
void msg_redir_egress(Ctx& c) {
  msg_row(c, "msg_redir_egress", {"abc", "defg"});
}
void msg_redir_ingress(Ctx& c) {
  msg_row(c, "msg_redir_ingress", {"abc", "defg"});
}
void msg_apply(Ctx& c) {
  msg_row(c, "msg_apply", {"0123456789", "abcdef"});
}
void msg_cork(Ctx& c) {
  msg_row(c, "msg_cork", {"abc", "def", "gh", "ijklmnopq"});
}
void msg_push(Ctx& c) {
  msg_row(c, "msg_push", {"hello", "ab"});
}
void msg_pop(Ctx& c) {
  msg_row(c, "msg_pop", {"hello", "abc", "ab"});
}
void msg_pull(Ctx& c) {
  msg_row(c, "msg_pull", {"abYYcd", "abc", "abXXcd", "abYYcd"});
}

// sk_skb: p1 at sock_map[0] with the programs, c2 at sock_map[1]. Each write
// of c1 waits for the verdict runs it brings (runs_after), so that every
// write is a chunk of its own for a verdict without a parser.
struct SkbWrite {
  std::string bytes;
  int64_t runs_after;  // 0: do not wait
};

void skb_row(Ctx& c, const char* parser, const char* verdict, bpf_attach_type vtype,
             const std::vector<SkbWrite>& writes, const char* target, size_t target_bytes) {
  if (parser) attach_map(c, parser, "sock_map", BPF_SK_SKB_STREAM_PARSER);
  attach_map(c, verdict, "sock_map", vtype);
  Net net;
  update(c, "sock_map", 0, "p1", net.a.p);
  update(c, "sock_map", 1, "c2", net.b.c);
  net.start();
  for (const auto& w : writes) {
    send_bytes("c1", net.a.c, w.bytes);
    if (w.runs_after) wait_runs(c, w.runs_after);
  }
  // The verdict's deliveries come after its runs; the readers' ends after them.
  Reader* r = std::string(target) == "p1"   ? net.p1.get()
              : std::string(target) == "p2" ? net.p2.get()
                                            : net.c2.get();
  r->wait_bytes(target_bytes);
  counters(c);  // before the ends shut down: the kernel runs a verdict on a FIN too
  net.finish();
}

// Frames with a one-byte length prefix (octal escapes: a hex one would take
// the payload's letters for digits).
void skb_parser_pass(Ctx& c) {
  skb_row(c, "skb_parser", "skb_stream_pass", BPF_SK_SKB_STREAM_VERDICT,
          {{"\003abc", 1}, {"\003xyz", 2}, {"\005he", 0}, {"llo", 3}}, "p1", 10);
}
void skb_parser_redir(Ctx& c) {
  skb_row(c, "skb_parser", "skb_stream_redir", BPF_SK_SKB_STREAM_VERDICT,
          {{"\003abc", 1}, {"\002de", 2}, {"\004fg", 0}, {"hi", 3}}, "p2", 12);
}
void skb_verdict_pass(Ctx& c) {
  skb_row(c, nullptr, "skb_verdict_pass", BPF_SK_SKB_VERDICT, {{"abc", 1}, {"xyz", 2}, {"def", 3}},
          "p1", 6);
}
void skb_verdict_redir_ingress(Ctx& c) {
  skb_row(c, nullptr, "skb_verdict_redir_ingress", BPF_SK_SKB_VERDICT, {{"abc", 1}, {"defg", 2}},
          "c2", 7);
}

// The kernel's attach and update rules on a sockmap, each call's result.
void sockmap_rules(Ctx& c) {
  attach_map(c, "skb_stream_pass", "sock_map", BPF_SK_SKB_STREAM_VERDICT);
  attach_map(c, "skb_verdict_pass", "sock_map", BPF_SK_SKB_VERDICT);  // one verdict or the other
  attach_map(c, "skb_parser", "sock_map", BPF_SK_MSG_VERDICT);        // not an sk_msg program
  attach(c, "skb_parser", "counters", map_fd(c, "counters"), BPF_SK_SKB_STREAM_PARSER);
  detach_map(c, "skb_verdict_pass", "sock_map", BPF_SK_SKB_VERDICT);
  detach_map(c, "skb_stream_pass", "sock_map", BPF_SK_SKB_STREAM_VERDICT);
  detach_map(c, "skb_stream_pass", "sock_map", BPF_SK_SKB_STREAM_VERDICT);
  attach_map(c, "skb_verdict_pass", "sock_map", BPF_SK_SKB_VERDICT);
  Net net(false);
  const int unconnected = socket(AF_INET, SOCK_STREAM, 0);
  update(c, "sock_map", 0, "an unconnected TCP socket", unconnected);
  update(c, "sock_map", 2, "p1", net.a.p);
  update(c, "sock_map", 0, "p1", net.a.p, BPF_NOEXIST);
  update(c, "sock_map", 0, "p1", net.a.p, BPF_NOEXIST);
  update(c, "sock_map", 1, "c1", net.a.c, BPF_EXIST);
  int key = 0, value = -1;
  call("bpf_map_lookup_elem(sock_map, 0)",
       bpf_map_lookup_elem(map_fd(c, "sock_map"), &key, &value));
  key = 1;
  call("bpf_map_delete_elem(sock_map, 1)", bpf_map_delete_elem(map_fd(c, "sock_map"), &key));
  key = 0;
  call("bpf_map_delete_elem(sock_map, 0)", bpf_map_delete_elem(map_fd(c, "sock_map"), &key));
  close(unconnected);
  net.start();
  send_bytes("c1", net.a.c, "after delete");
  net.p1->wait_bytes(12);
  net.finish();
}

// sockops: the program inserts the established sockets; the sk_msg program
// on sock_hash sends each message out of the sender's peer.
struct SockKey {
  uint32_t ip4, port;  // network order, host order
};

int lookup_own(Ctx& c, const char* name, int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len)) setup_failed("getsockname");
  SockKey k{a.sin_addr.s_addr, ntohs(a.sin_port)};
  uint64_t cookie = 0;
  return call(std::string("bpf_map_lookup_elem(sock_hash, address of ") + name + ")",
              bpf_map_lookup_elem(map_fd(c, "sock_hash"), &k, &cookie));
}

void sockops_redir(Ctx& c) {
  attach(c, "sockops_insert", "the cgroup", c.cgroup, BPF_CGROUP_SOCK_OPS);
  attach(c, "sockops_insert", "sock_hash", map_fd(c, "sock_hash"), BPF_SK_MSG_VERDICT);
  attach_map(c, "msg_to_peer", "sock_hash", BPF_SK_MSG_VERDICT);
  Net net(false);
  wait_runs(c, 2);
  lookup_own(c, "c1", net.a.c);
  lookup_own(c, "p1", net.a.p);
  net.start();
  send_bytes("c1", net.a.c, "ping");
  send_bytes("p1", net.a.p, "pong!");
  counters(c);
  net.finish();
  call("bpf_prog_detach2(sockops_insert, the cgroup, cgroup_sock_ops)",
       bpf_prog_detach2(prog_fd(c, "sockops_insert"), c.cgroup, BPF_CGROUP_SOCK_OPS));
}

void sockops_link(Ctx& c) {
  bpf_link* link = bpf_program__attach_cgroup(
      bpf_object__find_program_by_name(c.obj, "sockops_insert"), c.cgroup);
  call("bpf_program__attach_cgroup(sockops_insert, the cgroup)", link ? 0 : -1);
  Net net(false);
  wait_runs(c, 2);
  lookup_own(c, "c1", net.a.c);
  lookup_own(c, "p1", net.a.p);
  if (link) call("bpf_link__destroy", bpf_link__destroy(link));
  Net::connect(net.b);  // after the link is gone: not inserted
  lookup_own(c, "c2", net.b.c);
  lookup_own(c, "p2", net.b.p);
  net.start();
  send_bytes("c1", net.a.c, "plain");
  net.p1->wait_bytes(5);
  counters(c);
  net.finish();
}

}  // namespace

const std::vector<Row>& rows() {
  static const std::vector<Row> all = {
      {"msg_pass", "msg", {"msg_pass"}, false, msg_pass},
      {"msg_drop", "msg", {"msg_drop"}, false, msg_drop},
      {"msg_redir_egress", "msg", {"msg_redir_egress"}, false, msg_redir_egress},
      {"msg_redir_ingress", "msg", {"msg_redir_ingress"}, false, msg_redir_ingress},
      {"msg_apply", "msg", {"msg_apply"}, false, msg_apply},
      {"msg_cork", "msg", {"msg_cork"}, false, msg_cork},
      {"msg_push", "msg", {"msg_push"}, false, msg_push},
      {"msg_pop", "msg", {"msg_pop"}, false, msg_pop},
      {"msg_pull", "msg", {"msg_pull"}, false, msg_pull},
      {"skb_parser_pass", "skb", {"skb_parser", "skb_stream_pass"}, false, skb_parser_pass},
      {"skb_parser_redir", "skb", {"skb_parser", "skb_stream_redir"}, false, skb_parser_redir},
      {"skb_verdict_pass", "skb", {"skb_verdict_pass"}, false, skb_verdict_pass},
      {"skb_verdict_redir_ingress",
       "skb",
       {"skb_verdict_redir_ingress"},
       false,
       skb_verdict_redir_ingress},
      {"sockmap_rules",
       "skb",
       {"skb_parser", "skb_stream_pass", "skb_verdict_pass"},
       false,
       sockmap_rules},
      {"sockops_redir", "sockops", {"sockops_insert", "msg_to_peer"}, true, sockops_redir},
      {"sockops_link", "sockops", {"sockops_insert"}, true, sockops_link},
      kSendMatrix,
      kRecvMatrix,
  };
  return all;
}

}  // namespace bpfrows
