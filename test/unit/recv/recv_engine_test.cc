// The receive engine: the stream parser's frame kinds, verdicts and their
// effects, bytes that predate insertion, backpressure and EOF ordering, and
// parser errors (KERNEL-SEMANTICS.md §4.1, §4.2).
#include <errno.h>
#include <poll.h>
#include <sys/ioctl.h>

#include <atomic>
#include <cstring>
#include <thread>

#include "test/support/wait.h"
#include "test/unit/recv/recv_test_util.h"

using namespace recv_test;

namespace {

// Counts each verdict run and the frame sizes it saw, then passes.
const char* kCountPass =
    R"([{"do": [{"storage": {"map": "runs", "create": true, "add": {"n": 1}}},
                {"storage": {"map": "bytes", "create": true, "add": {"n": "len"}}}, "pass"]}])";

}  // namespace

TEST_CASE("Stream parser: fixed frames are cut, the tail waits for the rest", "[recv][strp]") {
  load(skb_policy(R"({"fixed": 4})", kCountPass));
  LoopbackPair a;
  REQUIRE(a.connect());
  insert("rx", 0, a.p);
  send_all(a.c, "aaaabbbbcc");
  CHECK(read_some(a.p, 8) == "aaaabbbb");
  CHECK(quiet(a.p));
  CHECK(storage("runs", a.p) == 2);
  send_all(a.c, "cc");
  CHECK(read_some(a.p, 4) == "cccc");
  CHECK(storage("runs", a.p) == 3);
  CHECK(storage("bytes", a.p) == 12);
  RxCounts c = rx_counts(a.p);
  CHECK(c.in == 12);
  CHECK(c.passed == 12);
  CHECK(c.runs == 3);
  CHECK(c.balanced());
}

TEST_CASE("Stream parser: whole frames take what one read gives", "[recv][strp]") {
  load(skb_policy(R"("whole")", kCountPass));
  LoopbackPair a;
  REQUIRE(a.connect());
  insert("rx", 0, a.p);
  send_all(a.c, "hello");
  CHECK(read_some(a.p, 5) == "hello");
  CHECK(storage("runs", a.p) == 1);
  CHECK(rx_counts(a.p).balanced());
}

TEST_CASE("Stream parser: delimiter frames end after the delimiter", "[recv][strp]") {
  load(skb_policy(R"({"delimiter": "\n", "max": 64})", kCountPass));
  LoopbackPair a;
  REQUIRE(a.connect());
  insert("rx", 0, a.p);
  send_all(a.c, "one\ntwo\nthr");
  CHECK(read_some(a.p, 8) == "one\ntwo\n");
  CHECK(quiet(a.p));
  send_all(a.c, "ee\n");
  CHECK(read_some(a.p, 6) == "three\n");
  CHECK(storage("runs", a.p) == 3);
  RxCounts c = rx_counts(a.p);
  CHECK(c.held == 0);
  CHECK(c.balanced());
}

TEST_CASE("Stream parser: length_prefix frames, one dropped by its content", "[recv][strp]") {
  load(skb_policy(
      R"({"length_prefix": {"offset": 0, "size": 2, "endian": "big", "adjust": 2}, "max": 1024})",
      R"([{"if": {"data": {"at": 2, "u8": 88}}, "do": ["drop"]}, {"do": ["pass"]}])"));
  LoopbackPair a;
  REQUIRE(a.connect());
  insert("rx", 0, a.p);
  std::string frames = std::string("\0\3abc", 5) + std::string("\0\2XY", 4) +
                       std::string("\0\4defg", 6) + std::string("\0\5h", 3);
  send_all(a.c, frames);
  CHECK(read_some(a.p, 11) == std::string("\0\3abc\0\4defg", 11));
  CHECK(quiet(a.p));
  send_all(a.c, "ijkl");
  CHECK(read_some(a.p, 7) == std::string("\0\5hijkl", 7));
  RxCounts c = rx_counts(a.p);
  CHECK(c.dropped == 4);
  CHECK(c.passed == 18);
  CHECK(c.balanced());
}

TEST_CASE("Stream parser: a frame over max stops the parser: EAGAIN, SO_ERROR, POLLERR",
          "[recv][strp]") {
  load(skb_policy(R"({"delimiter": "\n", "max": 8})", kPass));
  LoopbackPair a;
  REQUIRE(a.connect());
  insert("rx", 0, a.p);
  send_all(a.c, "ok\n0123456789");
  CHECK(read_some(a.p, 3) == "ok\n");
  pollfd pf{a.p, POLLIN, 0};
  REQUIRE(eventually([&] { return ::poll(&pf, 1, 0) == 1 && (pf.revents & POLLERR); }));
  char buf[16];
  errno = 0;
  CHECK(::recv(a.p, buf, sizeof buf, 0) == -1);  // blocking, yet EAGAIN at once
  CHECK(errno == EAGAIN);
  int err = 0;
  socklen_t len = sizeof err;
  REQUIRE(getsockopt(a.p, SOL_SOCKET, SO_ERROR, &err, &len) == 0);
  CHECK(err == EMSGSIZE);
  REQUIRE(getsockopt(a.p, SOL_SOCKET, SO_ERROR, &err, &len) == 0);
  CHECK(err == 0);  // reported once
  ::poll(&pf, 1, 0);
  CHECK(!(pf.revents & POLLERR));
  // The parser stays stopped: later bytes are not delivered.
  send_all(a.c, "more\n");
  CHECK(::recv(a.p, buf, sizeof buf, MSG_DONTWAIT) == -1);
  CHECK(errno == EAGAIN);
  CHECK(rx_counts(a.p).balanced());
}

TEST_CASE("Stream parser: a length prefix shorter than its header is EBADMSG", "[recv][strp]") {
  load(skb_policy(R"({"length_prefix": {"offset": 0, "size": 1}})", kPass));
  LoopbackPair a;
  REQUIRE(a.connect());
  insert("rx", 0, a.p);
  send_all(a.c, std::string("\0abc", 4));
  int err = 0;
  socklen_t len = sizeof err;
  REQUIRE(eventually(
      [&] { return getsockopt(a.p, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err != 0; }));
  CHECK(err == EBADMSG);
}

TEST_CASE("Verdict alone: PASS, and bytes that predate insertion go through it", "[recv]") {
  load(skb_policy("", kCountPass));
  LoopbackPair a;
  REQUIRE(a.connect());
  send_before_insert(a, "early");
  insert("rx", 0, a.p);
  // Without a parser the first read runs the verdict on them within the call.
  char buf[8];
  CHECK(::recv(a.p, buf, sizeof buf, MSG_DONTWAIT) == 5);
  CHECK(std::string(buf, 5) == "early");
  CHECK(storage("runs", a.p) >= 1);
  send_all(a.c, "late");
  CHECK(read_some(a.p, 4) == "late");
  CHECK(eventually([&] { return rx_counts(a.p).passed == 9; }));
}

TEST_CASE("Bytes that predate insertion wait for the redirect target a later insert adds",
          "[recv]") {
  load(skb_policy("", kEgressTo0));
  RedirectPairs pairs;
  auto& [a, b] = pairs;
  REQUIRE(pairs.connect());
  send_before_insert(a, "early");
  REQUIRE(pairs.insert("rx", End::p, End::p) == 0);
  send_all(a.c, "late");
  CHECK(read_some(b.c, 9) == "earlylate");
}

TEST_CASE("Stream parser: bytes that predate insertion pass before the first read returns",
          "[recv][strp]") {
  load(skb_policy(R"("whole")", kPass));
  LoopbackPair a;
  REQUIRE(a.connect());
  send_before_insert(a, "early");
  insert("rx", 0, a.p);
  // No EAGAIN first (the kernel's late-insertion quirk, not reproduced): a
  // non-blocking read runs the engine on them and gets what passed.
  char buf[8];
  CHECK(::recv(a.p, buf, sizeof buf, MSG_DONTWAIT) == 5);
  CHECK(std::string(buf, 5) == "early");
}

TEST_CASE("Stream parser: a readiness query runs the engine on bytes that predate insertion",
          "[recv][strp]") {
  load(skb_policy(R"({"length_prefix": {"offset": 0, "size": 4, "endian": "big", "adjust": 4}})",
                  kPass));
  LoopbackPair a;
  REQUIRE(a.connect());
  const std::string one = std::string("\0\0\0\x03one", 7);
  send_before_insert(a, one + std::string("\0\0\0\x05tw", 6));
  insert("rx", 0, a.p);
  CHECK(rx_counts(a.p).in == 0);  // they wait for the first read or readiness query
  pollfd pf{a.p, POLLIN, 0};
  CHECK(::poll(&pf, 1, 0) == 1);  // the whole frame passed within the query
  CHECK(rx_counts(a.p).in == 13);
  char buf[16];
  CHECK(::recv(a.p, buf, sizeof buf, 0) == 7);
  CHECK(std::string(buf, 7) == one);
  // The partial frame is not readable: a blocking read waits for the rest.
  CHECK(::poll(&pf, 1, 0) == 0);
  bool blocked = false, sent = false;  // no Catch2 assertion from another thread
  std::thread rest([&] {
    blocked = test_support::wait_blocked();
    sent = write_all(a.c, "o!!");
  });
  CHECK(::recv(a.p, buf, sizeof buf, 0) == 9);
  rest.join();
  CHECK(blocked);
  CHECK(sent);
  CHECK(std::string(buf, 9) == std::string("\0\0\0\x05two!!", 9));
}

TEST_CASE("Stream parser: bytes that predate insertion and are dropped never make it readable",
          "[recv][strp]") {
  load(skb_policy(R"("whole")", R"([{"do": ["drop"]}])"));
  LoopbackPair a;
  REQUIRE(a.connect());
  send_before_insert(a, "early");
  insert("rx", 0, a.p);
  pollfd pf{a.p, POLLIN, 0};
  CHECK(::poll(&pf, 1, 0) == 0);  // the query ran the verdict: nothing passed
  CHECK(rx_counts(a.p).dropped == 5);
  char buf[8];
  CHECK(::recv(a.p, buf, sizeof buf, MSG_DONTWAIT) == -1);
  CHECK(errno == EAGAIN);
}

TEST_CASE("Verdict alone: DROP takes bytes that predate insertion too", "[recv]") {
  load(skb_policy("", R"([{"do": ["drop"]}])"));
  LoopbackPair a;
  REQUIRE(a.connect());
  send_before_insert(a, "early");
  insert("rx", 0, a.p);
  // They wait for the first read (tcp_data_ready), which runs the verdict.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CHECK(rx_counts(a.p).in == 0);
  char buf[8];
  CHECK(::recv(a.p, buf, sizeof buf, MSG_DONTWAIT) == -1);
  CHECK(errno == EAGAIN);
  CHECK(eventually([&] { return rx_counts(a.p).dropped == 5; }));
  int n = -1;
  REQUIRE(ioctl(a.p, FIONREAD, &n) == 0);
  CHECK(n == 0);
}

TEST_CASE("Redirect ingress: bytes land in the target's queue", "[recv][redirect]") {
  load(skb_policy(R"("whole")", kIngressTo0));
  RedirectPairs pairs;
  auto& [a, b] = pairs;
  REQUIRE(pairs.connect());
  REQUIRE(pairs.insert("rx", End::p, End::c) == 0);
  send_all(a.c, "to b");
  CHECK(read_some(b.c, 4) == "to b");
  CHECK(quiet(a.p));
  CHECK(eventually([&] { return rx_counts(a.p).redirected == 4; }));
  RxCounts c = rx_counts(a.p);
  CHECK(c.balanced());
}

TEST_CASE("Redirect egress: bytes leave through the target without the program sending",
          "[recv][redirect]") {
  load(skb_policy(R"("whole")", kEgressTo0));
  RedirectPairs pairs;
  auto& [a, b] = pairs;
  REQUIRE(pairs.connect());
  REQUIRE(pairs.insert("rx", End::p, End::p) == 0);
  send_all(a.c, "out of b.p");
  CHECK(read_some(b.c, 10) == "out of b.p");
  // The reader may have the bytes before the engine counts its send.
  CHECK(eventually([&] { return rx_counts(a.p).redirected == 10; }));
}

TEST_CASE("Redirect to an empty key drops", "[recv][redirect]") {
  load(skb_policy(R"("whole")", R"([{"do": [{"redirect": {"map": "redir", "key": 5}}]}])"));
  LoopbackPair a;
  REQUIRE(a.connect());
  insert("rx", 0, a.p);
  send_all(a.c, "gone");
  REQUIRE(eventually([&] { return rx_counts(a.p).dropped == 4; }));
  CHECK(quiet(a.p));
}

TEST_CASE("Backpressure: 8 MB through an egress redirect into a slow small reader",
          "[recv][backpressure]") {
  load(skb_policy(R"("whole")", kEgressTo0));
  RedirectPairs pairs;
  auto& [a, b] = pairs;
  REQUIRE(pairs.connect());
  // Small, yet above loopback's 64 KiB MSS, or TCP itself stalls on the window.
  int small = 131072;
  REQUIRE(setsockopt(b.c, SOL_SOCKET, SO_RCVBUF, &small, sizeof small) == 0);
  small = 65536;
  REQUIRE(setsockopt(b.p, SOL_SOCKET, SO_SNDBUF, &small, sizeof small) == 0);
  REQUIRE(pairs.insert("rx", End::p, End::p) == 0);
  const std::string data = pattern(8 << 20);
  bool written = false;
  std::thread writer([&] { written = write_all(a.c, data); });
  std::string got;
  got.reserve(data.size());
  char buf[16384];
  int reads = 0;
  while (got.size() < data.size()) {
    pollfd pf{b.c, POLLIN, 0};
    if (::poll(&pf, 1, 5000) <= 0) break;
    ssize_t r = ::recv(b.c, buf, sizeof buf, 0);
    if (r <= 0) break;
    got.append(buf, static_cast<size_t>(r));
    if (++reads % 64 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  writer.join();
  CHECK(written);
  CHECK(got.size() == data.size());
  CHECK(got == data);
  RxCounts c = rx_counts(a.p);
  CHECK(c.redirected == data.size());
  CHECK(c.dropped == 0);
  CHECK(c.balanced());
}

TEST_CASE("Backpressure: 8 MB through an ingress redirect into a small queue read slowly",
          "[recv][backpressure]") {
  load(skb_policy(R"({"fixed": 1000})", kIngressTo0));
  RedirectPairs pairs;
  auto& [a, b] = pairs;
  REQUIRE(pairs.connect());
  int small = 8192;
  REQUIRE(setsockopt(b.c, SOL_SOCKET, SO_RCVBUF, &small, sizeof small) == 0);
  REQUIRE(pairs.insert("rx", End::p, End::c) == 0);
  const std::string data = pattern(8'000'000);
  bool written = false;
  std::thread writer([&] { written = write_all(a.c, data); });
  std::string got;
  char buf[4096];
  int reads = 0;
  size_t max_queued = 0;
  while (got.size() < data.size()) {
    int q = 0;
    ioctl(b.c, FIONREAD, &q);
    max_queued = std::max(max_queued, static_cast<size_t>(q));
    ssize_t r = ::recv(b.c, buf, sizeof buf, 0);
    if (r <= 0) break;
    got.append(buf, static_cast<size_t>(r));
    if (++reads % 128 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  writer.join();
  CHECK(written);
  CHECK(got == data);
  int rcvbuf = 0;
  socklen_t len = sizeof rcvbuf;
  getsockopt(b.c, SOL_SOCKET, SO_RCVBUF, &rcvbuf, &len);
  CHECK(max_queued <= static_cast<size_t>(rcvbuf));  // bounded, nothing dropped
  RxCounts c = rx_counts(a.p);
  CHECK(c.dropped == 0);
  CHECK(c.redirected == data.size());
}

TEST_CASE("EOF reaches the source's reader only after its redirected bytes left", "[recv][eof]") {
  load(skb_policy(R"("whole")", kEgressTo0));
  RedirectPairs pairs;
  auto& [a, b] = pairs;
  REQUIRE(pairs.connect());
  REQUIRE(pairs.insert("rx", End::p, End::p) == 0);
  const std::string data = pattern(2 << 20);
  std::string got;
  std::thread reader([&] {
    char buf[65536];
    for (;;) {
      ssize_t r = ::recv(b.c, buf, sizeof buf, 0);
      if (r <= 0) break;
      got.append(buf, static_cast<size_t>(r));
      if (got.size() < (1 << 20)) std::this_thread::sleep_for(std::chrono::microseconds(300));
    }
  });
  send_all(a.c, data);
  ::shutdown(a.c, SHUT_WR);
  // A forwarder: on EOF from the source, shut the other side down.
  char buf[16];
  CHECK(::recv(a.p, buf, sizeof buf, 0) == 0);
  ::shutdown(b.p, SHUT_WR);
  reader.join();
  CHECK(got.size() == data.size());
  CHECK(got == data);
  pollfd pf{a.p, POLLIN | POLLRDHUP, 0};
  CHECK(::poll(&pf, 1, 0) == 1);
  CHECK((pf.revents & POLLRDHUP));
  CHECK(::recv(a.p, buf, sizeof buf, 0) == 0);  // and stays at EOF
}

TEST_CASE("EOF comes after the source's own queued bytes", "[recv][eof]") {
  load(skb_policy(R"("whole")", kPass));
  LoopbackPair a;
  REQUIRE(a.connect());
  insert("rx", 0, a.p);
  send_all(a.c, "last words");
  ::shutdown(a.c, SHUT_WR);
  REQUIRE(eventually([&] {
    pollfd pf{a.p, POLLIN, 0};
    return ::poll(&pf, 1, 0) == 1;
  }));
  char buf[64];
  CHECK(::recv(a.p, buf, sizeof buf, 0) == 10);
  CHECK(::recv(a.p, buf, sizeof buf, 0) == 0);
}
