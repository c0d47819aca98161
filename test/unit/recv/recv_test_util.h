// Receive-path test helpers: policies with a stream parser and verdict (or a
// verdict alone) on sockmap "rx", an empty sockmap "redir" for redirect
// targets, the engine's counters of a socket.
#pragma once

#include <sys/ioctl.h>

#include <string>

#include "core/psock/psock.h"
#include "core/rx/sk_psock_rx.h"
#include "core/sock/registry.h"
#include "test/support/wait.h"
#include "test/unit/send/send_test_util.h"

namespace recv_test {

using namespace send_test;
using test_support::eventually;

// frame: a stream parser's "frame" value (JSON), or "" for a verdict alone.
// rules: the verdict's rules (JSON array).
inline std::string skb_policy(const std::string& frame, const std::string& rules) {
  const bool parser = !frame.empty();
  std::string programs = std::string(R"("v": {"type": ")") +
                         (parser ? "sk_skb/stream_verdict" : "sk_skb/verdict") + R"(", "rules": )" +
                         rules + "}";
  std::string attach = std::string(R"({"program": "v", "map": "rx", "attach_type": ")") +
                       (parser ? "BPF_SK_SKB_STREAM_VERDICT" : "BPF_SK_SKB_VERDICT") + R"("})";
  if (parser) {
    programs += R"(, "p": {"type": "sk_skb/stream_parser", "frame": )" + frame + "}";
    attach += R"(, {"program": "p", "map": "rx", "attach_type": "BPF_SK_SKB_STREAM_PARSER"})";
  }
  return R"({"version": 1,
  "maps": {
    "rx": {"type": "sockmap", "max_entries": 8},
    "redir": {"type": "sockmap", "max_entries": 8},
    "runs": {"type": "sk_storage", "flags": ["BPF_F_NO_PREALLOC"], "value": {"n": "u64"}},
    "bytes": {"type": "sk_storage", "flags": ["BPF_F_NO_PREALLOC"], "value": {"n": "u64"}}},
  "programs": {)" +
         programs + R"(},
  "attach": [)" +
         attach + "]}";
}

inline const char* kPass = R"([{"do": ["pass"]}])";
inline const char* kIngressTo0 =
    R"([{"do": [{"redirect": {"map": "redir", "key": 0, "flags": ["BPF_F_INGRESS"]}}]}])";
inline const char* kEgressTo0 = R"([{"do": [{"redirect": {"map": "redir", "key": 0}}]}])";

struct RxCounts {
  uint64_t in = 0, passed = 0, dropped = 0, redirected = 0, runs = 0, held = 0;
  bool balanced() const { return in == passed + dropped + redirected + held; }
};

// fd's psock's receive counters (all zero without a psock).
inline RxCounts rx_counts(int fd) {
  RxCounts c;
  sockshim::SocketRef s = sockshim::registry::get(fd);
  sockshim::PsockRef p = s ? sockshim::psock_get(s.get()) : sockshim::PsockRef();
  if (!p) return c;
  auto& rx = p->stats.rx;
  c.in = rx.in.load();
  c.passed = rx.passed.load();
  c.dropped = rx.dropped.load();
  c.redirected = rx.redirected.load();
  c.runs = rx.runs.load();
  c.held = sockshim::sk_psock_rx_held(p.get());
  return c;
}

// Writes all of s to fd (blocking); false on an error. Without assertions, for
// writer threads: Catch2's are for the test's own thread only.
inline bool write_all(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t r = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (r <= 0) return false;
    off += static_cast<size_t>(r);
  }
  return true;
}

inline void send_all(int fd, const std::string& s) {
  REQUIRE(write_all(fd, s));
}

// Sends bytes on pr.c and waits until pr.p's kernel queue holds them all: the
// bytes that predate an insertion of pr.p.
inline void send_before_insert(const LoopbackPair& pr, const std::string& bytes) {
  send_all(pr.c, bytes);
  REQUIRE(eventually([&] {
    int n = 0;
    return ioctl(pr.p, FIONREAD, &n) == 0 && static_cast<size_t>(n) == bytes.size();
  }));
}

// A byte pattern that shows reordering, loss and duplication.
inline std::string pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131 + i / 4093) & 0xff);
  return s;
}

}  // namespace recv_test
