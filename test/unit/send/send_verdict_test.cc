// PASS, DROP and REDIRECT on every send call (KERNEL-SEMANTICS.md §3.2).
#include <errno.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/time.h>
#include <sys/uio.h>

#include <cstring>
#include <thread>

#include "test/unit/send/send_test_util.h"

using namespace send_test;

TEST_CASE("PASS: every send-side call runs the verdict and reaches the peer", "[send][pass]") {
  load(msg_policy(std::string(R"([{"do": [)") + kCount + R"(, "pass"]}])"));
  LoopbackPair pr;
  REQUIRE(pr.connect());
  insert("tx", 0, pr.c);

  CHECK(::send(pr.c, "ab", 2, 0) == 2);
  CHECK(::sendto(pr.c, "cd", 2, 0, nullptr, 0) == 2);
  CHECK(::write(pr.c, "ef", 2) == 2);
  iovec wv[2] = {{const_cast<char*>("g"), 1}, {const_cast<char*>("h"), 1}};
  CHECK(::writev(pr.c, wv, 2) == 2);
  iovec mv[3] = {
      {const_cast<char*>("i"), 1}, {const_cast<char*>("j"), 1}, {const_cast<char*>("k"), 1}};
  msghdr m{};
  m.msg_iov = mv;
  m.msg_iovlen = 3;
  CHECK(::sendmsg(pr.c, &m, 0) == 3);
  iovec v1{const_cast<char*>("l"), 1}, v2{const_cast<char*>("mn"), 2};
  mmsghdr mm[2]{};
  mm[0].msg_hdr.msg_iov = &v1;
  mm[0].msg_hdr.msg_iovlen = 1;
  mm[1].msg_hdr.msg_iov = &v2;
  mm[1].msg_hdr.msg_iovlen = 1;
  CHECK(::sendmmsg(pr.c, mm, 2, 0) == 2);
  CHECK(mm[1].msg_len == 2);
  CHECK(::send(pr.c, "", 0, 0) == 0);  // a zero-length send runs nothing

  CHECK(read_some(pr.p, 14) == "abcdefghijklmn");
  CHECK(storage("runs", pr.c) == 7);
  CHECK(storage("bytes", pr.c) == 14);
}

TEST_CASE("PASS: sendmsg with 1024 iovecs is one message", "[send][pass]") {
  load(msg_policy(std::string(R"([{"do": [)") + kCount + R"(, "pass"]}])"));
  LoopbackPair pr;
  REQUIRE(pr.connect());
  insert("tx", 0, pr.c);
  std::string data(1024, 0);
  std::vector<iovec> iov(1024);
  for (size_t i = 0; i < 1024; ++i) {
    data[i] = static_cast<char>('a' + i % 26);
    iov[i] = {&data[i], 1};
  }
  msghdr m{};
  m.msg_iov = iov.data();
  m.msg_iovlen = iov.size();
  CHECK(::sendmsg(pr.c, &m, 0) == 1024);
  CHECK((read_some(pr.p, 1024) == data));
  CHECK(storage("runs", pr.c) == 1);
}

TEST_CASE("PASS: a large send runs the verdict once per ring-full", "[send][pass]") {
  load(msg_policy(std::string(R"([{"do": [)") + kCount + R"(, "pass"]}])"));
  LoopbackPair pr;
  REQUIRE(pr.connect());
  insert("tx", 0, pr.c);
  std::string big(1 << 20, 'x'), got;
  std::thread reader([&] { got = read_some(pr.p, big.size(), 3000); });
  CHECK(::send(pr.c, big.data(), big.size(), 0) == static_cast<ssize_t>(big.size()));
  reader.join();
  CHECK(got.size() == big.size());
  CHECK(storage("runs", pr.c) == 2);  // as the kernel: 1 MiB, 2 runs
  std::string mid(200000, 'y');
  std::thread reader2([&] { got = read_some(pr.p, mid.size(), 3000); });
  CHECK(::send(pr.c, mid.data(), mid.size(), 0) == static_cast<ssize_t>(mid.size()));
  reader2.join();
  CHECK(storage("runs", pr.c) == 3);  // 200000 bytes, 1 run
}

TEST_CASE("DROP: EACCES, nothing sent, and every later send fails until a new psock",
          "[send][drop]") {
  load(msg_policy(R"([{"if": {"data": {"prefix": "BAD"}}, "do": ["drop"]}, {"do": ["pass"]}])"));
  LoopbackPair pr;
  REQUIRE(pr.connect());
  insert("tx", 0, pr.c);
  CHECK(::send(pr.c, "ok1", 3, 0) == 3);
  errno = 0;
  CHECK(::send(pr.c, "BAD", 3, 0) == -1);
  CHECK(errno == EACCES);
  errno = 0;
  CHECK(::send(pr.c, "ok2", 3, MSG_DONTWAIT) == -1);  // sticky, without a run
  CHECK(errno == EACCES);
  errno = 0;
  CHECK(::write(pr.c, "ok2", 3) == -1);
  CHECK(errno == EACCES);
  pollfd pf{pr.c, POLLOUT, 0};
  CHECK(::poll(&pf, 1, 0) == 1);  // POLLOUT stays set
  CHECK(read_some(pr.p, 100, 200) == "ok1");

  // Leaving the map drops the psock; re-inserting makes a new one.
  remove("tx", 0);
  insert("tx", 0, pr.c);
  CHECK(::send(pr.c, "ok3", 3, 0) == 3);
  CHECK(read_some(pr.p, 3) == "ok3");
}

TEST_CASE("DROP: any return other than pass is a drop (no rule holds, default drop)",
          "[send][drop]") {
  load(R"({"version": 1,
    "maps": {"tx": {"type": "sockmap", "max_entries": 1}},
    "programs": {"v": {"type": "sk_msg", "default": "drop",
                       "rules": [{"if": {"data": {"prefix": "GO"}}, "do": ["pass"]}]}},
    "attach": [{"program": "v", "map": "tx", "attach_type": "BPF_SK_MSG_VERDICT"}]})");
  LoopbackPair pr;
  REQUIRE(pr.connect());
  insert("tx", 0, pr.c);
  CHECK(::send(pr.c, "GO", 2, 0) == 2);
  CHECK(::send(pr.c, "no", 2, 0) == -1);
  CHECK(errno == EACCES);
  CHECK(read_some(pr.p, 100, 200) == "GO");
}

TEST_CASE("REDIRECT egress: the bytes leave through the target socket", "[send][redirect]") {
  load(msg_policy(R"([{"do": [{"redirect": {"map": "redir", "key": 0}}]}])"));
  RedirectPairs pairs;
  auto& [a, b] = pairs;
  REQUIRE(pairs.connect());
  REQUIRE(pairs.insert("tx", End::c, End::c) == 0);
  CHECK(::send(a.c, "hello", 5, 0) == 5);
  CHECK(read_some(b.p, 5) == "hello");
  CHECK(quiet(a.p));
  // A target that shut down its sending side: EPIPE.
  REQUIRE(::shutdown(b.c, SHUT_WR) == 0);
  errno = 0;
  CHECK(::send(a.c, "x", 1, MSG_NOSIGNAL) == -1);
  CHECK(errno == EPIPE);
}

TEST_CASE("REDIRECT ingress: the target's owner reads the bytes, nothing crosses TCP",
          "[send][redirect]") {
  load(msg_policy(
      R"([{"do": [{"redirect": {"map": "redir", "key": 0, "flags": ["BPF_F_INGRESS"]}}]}])"));
  RedirectPairs pairs;
  auto& [a, b] = pairs;
  REQUIRE(pairs.connect());
  REQUIRE(pairs.insert("tx", End::c, End::c) == 0);
  CHECK(::send(a.c, "hello", 5, 0) == 5);
  CHECK(::write(a.c, " world", 6) == 6);
  char buf[64];
  CHECK(::recv(b.c, buf, sizeof buf, 0) == 11);
  CHECK(std::string(buf, 11) == "hello world");
  CHECK(quiet(a.p));
  CHECK(quiet(b.p));
  CHECK(quiet(b.c));
}

TEST_CASE("REDIRECT to a missing key is a drop; redirect then pass sends on the source",
          "[send][redirect]") {
  SECTION("missing key") {
    load(msg_policy(R"([{"do": [{"redirect": {"map": "redir", "key": 3}}]}])"));
    LoopbackPair a;
    REQUIRE(a.connect());
    insert("tx", 0, a.c);
    errno = 0;
    CHECK(::send(a.c, "x", 1, 0) == -1);
    CHECK(errno == EACCES);
  }
  SECTION("failed redirect followed by pass") {
    load(msg_policy(R"([{"do": [{"redirect": {"map": "redir", "key": 3}}, "pass"]}])"));
    LoopbackPair a;
    REQUIRE(a.connect());
    insert("tx", 0, a.c);
    CHECK(::send(a.c, "xyz", 3, 0) == 3);
    CHECK(read_some(a.p, 3) == "xyz");
  }
  SECTION("flags other than BPF_F_INGRESS") {
    // The policy loader refuses unknown flags; a listener target is refused by the helper.
    load(msg_policy(R"([{"do": [{"redirect": {"map": "redir", "key": 0}}]}])"));
    LoopbackPair a;
    REQUIRE(a.connect());
    insert("tx", 0, a.c);
    int l = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(l, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
    REQUIRE(::listen(l, 1) == 0);
    insert("redir", 0, l);
    errno = 0;
    CHECK(::send(a.c, "x", 1, 0) == -1);
    CHECK(errno == EACCES);
    ::close(l);
  }
}

TEST_CASE("REDIRECT kept by apply_bytes to a target that closed: EPIPE", "[send][redirect]") {
  load(msg_policy(
      R"([{"do": [{"apply_bytes": 1000},
                  {"redirect": {"map": "redir", "key": 0, "flags": ["BPF_F_INGRESS"]}}]}])"));
  LoopbackPair a;
  REQUIRE(a.connect());
  auto* b = new LoopbackPair;
  REQUIRE(b->connect());
  insert("tx", 0, a.c);
  insert("redir", 0, b->c);
  CHECK(::send(a.c, "0123456789", 10, 0) == 10);
  delete b;  // closes the target: it leaves the map, its psock goes
  errno = 0;
  CHECK(::send(a.c, "0123456789", 10, MSG_NOSIGNAL) == -1);
  CHECK(errno == EPIPE);
  // Without MSG_NOSIGNAL the caller also gets SIGPIPE.
  signal(SIGPIPE, SIG_IGN);
  errno = 0;
  CHECK(::send(a.c, "0", 1, 0) == -1);
  CHECK(errno == EPIPE);
  signal(SIGPIPE, SIG_DFL);
}

TEST_CASE("Ingress backpressure: a full queue gives EAGAIN or blocks, never drops",
          "[send][redirect][backpressure]") {
  load(msg_policy(
      R"([{"do": [{"redirect": {"map": "redir", "key": 0, "flags": ["BPF_F_INGRESS"]}}]}])"));
  RedirectPairs pairs;
  auto& [a, b] = pairs;
  REQUIRE(pairs.connect());
  int rcvbuf = 4096;
  REQUIRE(setsockopt(b.c, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf) == 0);
  socklen_t len = sizeof rcvbuf;
  REQUIRE(getsockopt(b.c, SOL_SOCKET, SO_RCVBUF, &rcvbuf, &len) == 0);
  REQUIRE(pairs.insert("tx", End::c, End::c) == 0);

  std::string sent;
  char chunk[1000];
  for (int i = 0;; ++i) {
    memset(chunk, 'a' + i % 26, sizeof chunk);
    ssize_t r = ::send(a.c, chunk, sizeof chunk, MSG_DONTWAIT);
    if (r < 0) {
      CHECK(errno == EAGAIN);
      break;
    }
    sent.append(chunk, static_cast<size_t>(r));
    REQUIRE(i < 1000);
  }
  CHECK(sent.size() >= static_cast<size_t>(rcvbuf));
  CHECK(sent.size() <= static_cast<size_t>(rcvbuf) + sizeof chunk);
  int inq = -1;
  REQUIRE(ioctl(b.c, FIONREAD, &inq) == 0);
  CHECK(inq == static_cast<int>(sent.size()));
  CHECK((read_some(b.c, sent.size()) == sent));

  // A blocking sender waits for the reader.
  std::string big(200000, 0);
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7);
  ssize_t r = 0;
  std::thread writer([&] { r = ::send(a.c, big.data(), big.size(), 0); });
  std::string got = read_some(b.c, big.size(), 3000);
  writer.join();
  CHECK(r == static_cast<ssize_t>(big.size()));
  CHECK((got == big));
}

TEST_CASE("DROP with sticky_drop false applies to one message only", "[send][drop]") {
  load(R"({"version": 1,
    "maps": {"tx": {"type": "sockmap", "max_entries": 1}},
    "programs": {"v": {"type": "sk_msg", "sticky_drop": false,
                       "rules": [{"if": {"data": {"prefix": "BAD"}}, "do": ["drop"]},
                                 {"do": ["pass"]}]}},
    "attach": [{"program": "v", "map": "tx", "attach_type": "BPF_SK_MSG_VERDICT"}]})");
  LoopbackPair pr;
  REQUIRE(pr.connect());
  insert("tx", 0, pr.c);
  errno = 0;
  CHECK(::send(pr.c, "BAD", 3, 0) == -1);
  CHECK(errno == EACCES);
  CHECK(::send(pr.c, "ok", 2, 0) == 2);
  CHECK(read_some(pr.p, 2) == "ok");
}

namespace {

// Reads everything fd receives until it is quiet for 300 ms.
size_t drain_count(int fd) {
  size_t n = 0;
  char buf[65536];
  for (;;) {
    pollfd pf{fd, POLLIN, 0};
    if (::poll(&pf, 1, 300) <= 0) return n;
    ssize_t r = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (r <= 0) return n;
    n += static_cast<size_t>(r);
  }
}

void on_alarm(int) {}

}  // namespace

TEST_CASE("PASS on a full socket: partial counts for non-blocking and interrupted sends",
          "[send][pass][partial]") {
  load(msg_policy(R"([{"do": ["pass"]}])"));
  LoopbackPair pr;
  REQUIRE(pr.connect());
  insert("tx", 0, pr.c);
  std::string big(8 << 20, 'q');
  SECTION("non-blocking: what fit, then EAGAIN") {
    ssize_t r = ::send(pr.c, big.data(), big.size(), MSG_DONTWAIT);
    REQUIRE(r > 0);
    CHECK(r < static_cast<ssize_t>(big.size()));
    errno = 0;
    CHECK(::send(pr.c, big.data(), big.size(), MSG_DONTWAIT) == -1);
    CHECK(errno == EAGAIN);
    CHECK(drain_count(pr.p) == static_cast<size_t>(r));  // exactly what send() reported
  }
  SECTION("blocking, interrupted by a signal: what went out") {
    struct sigaction sa {};
    sa.sa_handler = on_alarm;  // no SA_RESTART
    struct sigaction old {};
    sigaction(SIGALRM, &sa, &old);
    itimerval it{};
    it.it_value.tv_usec = 200000;
    setitimer(ITIMER_REAL, &it, nullptr);
    ssize_t r = ::send(pr.c, big.data(), big.size(), 0);
    sigaction(SIGALRM, &old, nullptr);
    REQUIRE(r > 0);
    CHECK(r < static_cast<ssize_t>(big.size()));
    CHECK(drain_count(pr.p) == static_cast<size_t>(r));
  }
}

TEST_CASE("sk_msg runs only on TCP: a UDP socket in the map sends as usual", "[send][udp]") {
  load(msg_policy(R"([{"do": ["drop"]}])"));
  int a = ::socket(AF_INET, SOCK_DGRAM, 0), b = ::socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(b, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
  socklen_t len = sizeof sa;
  REQUIRE(getsockname(b, reinterpret_cast<sockaddr*>(&sa), &len) == 0);
  REQUIRE(::connect(a, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
  insert("tx", 0, a);
  CHECK(::sendto(a, "dgram", 5, 0, nullptr, 0) == 5);
  CHECK(read_some(b, 5) == "dgram");
  ::close(a);
  ::close(b);
}
