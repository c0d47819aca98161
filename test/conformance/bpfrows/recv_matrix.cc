// Receive-path scenarios of test/conformance/recv through the bytecode
// backend: recv_progs.bpf.o's parser and verdicts, configured per row through
// its conf map, on p1 in rx with c2 in redir. One transcript line per row:
// the attach and map calls' results, each write's result, every reader's
// bytes and end, the detach calls' results. Rows whose outcome would depend
// on how the receiver chunks the stream (a marker seen by a verdict without a
// parser) are left out: frames here are the parser's, or the verdict passes
// or moves everything alike.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "rows.h"
#include "test/support/loopback.h"
#include "transcript.h"

namespace bpfrows {
namespace {

// recv_progs.bpf.c's struct cfg and its enums.
enum { PARSE_WHOLE, PARSE_FIXED, PARSE_LENGTH_PREFIX, PARSE_NONE };
enum { VERDICT_PASS, VERDICT_DROP, VERDICT_REDIRECT };
struct Cfg {
  uint32_t parser, fixed, max;
  uint32_t verdict, ingress;
  uint32_t marker;
};

// A write, and the bytes the row's target reader has once it went through
// (0: do not wait; a dropped frame brings none). Waiting keeps every frame
// in an skb of its own: the kernel loses bytes of a frame split across
// writes after an skb that held more than one frame.
struct Write {
  std::string bytes;
  size_t target_after;
};

struct RecvRow {
  const char* name;
  Cfg cfg;  // parser PARSE_NONE: the skb verdict alone
  std::vector<Write> writes;
  const char* target;  // the reader the verdict delivers to: p1, c2 or p2
};

// A length-prefixed frame: 4-byte big-endian length, then the payload.
std::string frame(const std::string& payload) {
  const uint32_t n = htonl(static_cast<uint32_t>(payload.size()));
  return std::string(reinterpret_cast<const char*>(&n), 4) + payload;
}

uint32_t marker(const char* four) {
  uint32_t m;
  memcpy(&m, four, 4);
  return m;
}

std::vector<RecvRow> recv_rows() {
  const uint32_t drop = marker("DROP");
  const std::vector<Write> two = {{"abc", 3}, {"defg", 7}};
  const std::vector<Write> framed = {{frame("keep"), 8}, {frame("xDROPx"), 0}, {frame("more"), 16}};
  return {
      {"whole stream pass", {PARSE_WHOLE, 0, 0, VERDICT_PASS, 0, 0}, two, "p1"},
      {"whole stream drop", {PARSE_WHOLE, 0, 0, VERDICT_DROP, 0, 0}, {{"abc", 0}}, "p1"},
      {"whole stream redirect", {PARSE_WHOLE, 0, 0, VERDICT_REDIRECT, 0, 0}, two, "p2"},
      {"whole stream ingress redirect", {PARSE_WHOLE, 0, 0, VERDICT_REDIRECT, 1, 0}, two, "c2"},
      {"fixed 4 stream pass",
       {PARSE_FIXED, 4, 0, VERDICT_PASS, 0, 0},
       {{"abcd", 4}, {"efgh", 8}, {"ij", 0}, {"kl", 12}},
       "p1"},
      {"length prefix stream pass",
       {PARSE_LENGTH_PREFIX, 0, 0, VERDICT_PASS, 0, 0},
       {{frame("hello"), 9}, {frame("split").substr(0, 6), 0}, {frame("split").substr(6), 18}},
       "p1"},
      {"length prefix marker drop",
       {PARSE_LENGTH_PREFIX, 0, 0, VERDICT_PASS, 0, drop},
       framed,
       "p1"},
      {"length prefix marker drop redirect",
       {PARSE_LENGTH_PREFIX, 0, 0, VERDICT_REDIRECT, 0, drop},
       framed,
       "p2"},
      {"skb verdict pass", {PARSE_NONE, 0, 0, VERDICT_PASS, 0, 0}, two, "p1"},
      {"skb verdict drop", {PARSE_NONE, 0, 0, VERDICT_DROP, 0, 0}, {{"abc", 0}}, "p1"},
      {"skb verdict redirect", {PARSE_NONE, 0, 0, VERDICT_REDIRECT, 0, 0}, two, "p2"},
  };
}

std::string joined(const std::vector<long>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s;
}

void connect_pair(test_support::LoopbackPair& pair) {
  if (!pair.connect()) setup_failed("a loopback TCP pair");
  const int one = 1;
  for (int fd : {pair.c, pair.p}) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

std::string one(Ctx& c, const RecvRow& row) {
  auto prog = [&](const char* name) {
    return bpf_program__fd(bpf_object__find_program_by_name(c.obj, name));
  };
  const int rx = bpf_object__find_map_fd_by_name(c.obj, "rx");
  const int redir = bpf_object__find_map_fd_by_name(c.obj, "redir");
  const int conf = bpf_object__find_map_fd_by_name(c.obj, "conf");
  const bool skb = row.cfg.parser == PARSE_NONE;
  // (program, attach type) in the order they attach.
  std::vector<std::pair<int, bpf_attach_type>> progs;
  if (skb) {
    progs = {{prog("skb_verdict"), BPF_SK_SKB_VERDICT}};
  } else {
    progs = {{prog("parser"), BPF_SK_SKB_STREAM_PARSER},
             {prog("stream_verdict"), BPF_SK_SKB_STREAM_VERDICT}};
  }
  std::vector<long> results;
  for (auto [fd, type] : progs)
    results.push_back(bpf_prog_attach(fd, rx, type, 0) < 0 ? -errno : 0);
  std::string s = "attach=" + joined(results);
  int zero = 0;
  Cfg cfg = row.cfg;
  if (skb) cfg.parser = PARSE_WHOLE;
  s += " conf=" + std::to_string(bpf_map_update_elem(conf, &zero, &cfg, BPF_ANY));
  test_support::LoopbackPair a, b;
  connect_pair(a);
  connect_pair(b);
  s += " rx=" + std::to_string(bpf_map_update_elem(rx, &zero, &a.p, BPF_ANY));
  s += " redir=" + std::to_string(bpf_map_update_elem(redir, &zero, &b.c, BPF_ANY));
  Reader c1("c1", a.c), p1("p1", a.p), c2("c2", b.c), p2("p2", b.p);
  Reader* target = std::string(row.target) == "p1"   ? &p1
                   : std::string(row.target) == "c2" ? &c2
                                                     : &p2;
  results.clear();
  for (const auto& w : row.writes) {
    const ssize_t r = write(a.c, w.bytes.data(), w.bytes.size());
    results.push_back(r < 0 ? -errno : r);
    if (w.target_after) target->wait_bytes(w.target_after);
  }
  s += " writes=" + joined(results);
  for (int fd : {a.c, a.p, b.c, b.p}) shutdown(fd, SHUT_WR);
  for (Reader* r : {&c1, &p1, &c2, &p2}) {
    const Reader::Result got = r->result();
    s += std::string(" ") + r->name() + "=\"" + show(got.bytes) + "\":" + got.end;
  }
  s += " delete=" + std::to_string(bpf_map_delete_elem(rx, &zero));
  results.clear();
  for (auto [fd, type] : progs) results.push_back(bpf_prog_detach2(fd, rx, type) < 0 ? -errno : 0);
  return s + " detach=" + joined(results);
}

void recv_matrix(Ctx& c) {
  for (const RecvRow& row : recv_rows()) line(std::string(row.name) + ": " + one(c, row));
}

}  // namespace

const Row kRecvMatrix = {
    "recv_matrix", "recv", {"parser", "stream_verdict", "skb_verdict"}, false, recv_matrix};

}  // namespace bpfrows
