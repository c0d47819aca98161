// Faults around the receive engine: a target that closes mid-stream, a source
// reset, the application closing or removing a psock while the engine works
// on it, fork while the engine runs.
#include <errno.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/wait.h>

#include <atomic>
#include <thread>

#include "test/support/loopback.h"
#include "test/unit/recv/recv_test_util.h"

using namespace recv_test;

TEST_CASE("Fault: an egress target that closes mid-stream: bytes dropped, no hang",
          "[recv][fault]") {
  load(skb_policy(R"("whole")", kEgressTo0));
  RedirectPairs pairs;
  auto& [a, b] = pairs;
  REQUIRE(pairs.connect());
  REQUIRE(pairs.insert("rx", End::p, End::p) == 0);
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    const std::string chunk = pattern(65536);
    while (!stop) {
      if (::send(a.c, chunk.data(), chunk.size(), MSG_NOSIGNAL) < 0) break;
    }
  });
  CHECK(read_some(b.c, 100000).size() == 100000);
  ::close(b.p);  // the target goes while the engine sends through it
  b.p = -1;
  REQUIRE(eventually([&] { return rx_counts(a.p).dropped > 0; }));
  stop = true;
  ::shutdown(a.c, SHUT_WR);
  writer.join();
  char buf[16];
  CHECK(::recv(a.p, buf, sizeof buf, 0) == 0);  // the source still reaches EOF
  CHECK(rx_counts(a.p).balanced());
}

TEST_CASE("Fault: a source reset reaches its reader as ECONNRESET, then EOF", "[recv][fault]") {
  load(skb_policy(R"("whole")", kPass));
  LoopbackPair a;
  REQUIRE(a.connect());
  insert("rx", 0, a.p);
  send_all(a.c, "bye");
  linger lg{1, 0};
  REQUIRE(setsockopt(a.c, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) == 0);
  REQUIRE(eventually([&] {
    int n = 0;
    return ioctl(a.p, FIONREAD, &n) == 0 && n == 3;
  }));
  ::close(a.c);
  a.c = -1;
  pollfd pf{a.p, POLLIN, 0};
  REQUIRE(eventually([&] { return ::poll(&pf, 1, 0) == 1 && (pf.revents & POLLERR); }));
  char buf[16];
  CHECK(::recv(a.p, buf, sizeof buf, 0) == 3);  // queued bytes first
  errno = 0;
  CHECK(::recv(a.p, buf, sizeof buf, 0) == -1);
  CHECK(errno == ECONNRESET);
  CHECK(::recv(a.p, buf, sizeof buf, 0) == 0);
}

TEST_CASE("Fault: closing a psock the engine works on sends the FIN at once", "[recv][fault]") {
  load(skb_policy(R"("whole")", kPass));
  LoopbackPair a;
  REQUIRE(a.connect());
  insert("rx", 0, a.p);
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    const std::string chunk = pattern(4096);
    while (!stop)
      if (::send(a.c, chunk.data(), chunk.size(), MSG_NOSIGNAL) < 0) break;
  });
  REQUIRE(eventually([&] { return rx_counts(a.p).in > 0; }));  // the engine is at work
  ::close(a.p);                                                // the engine's dup must go with it
  a.p = -1;
  stop = true;
  writer.join();
  pollfd pf{a.c, POLLIN | POLLRDHUP, 0};
  bool closed = eventually(
      [&] {
        char buf[65536];
        while (::recv(a.c, buf, sizeof buf, MSG_DONTWAIT) > 0) {
        }
        return ::poll(&pf, 1, 0) == 1 && (pf.revents & (POLLRDHUP | POLLHUP | POLLERR));
      },
      1000);
  CHECK(closed);
  CHECK(eventually([] { return sockshim::psock_count() == 0; }, 1000));
}

TEST_CASE("Fault: removing a psock from its map gives the socket back to its reader",
          "[recv][fault]") {
  load(skb_policy(R"("whole")", kPass));
  LoopbackPair a;
  REQUIRE(a.connect());
  insert("rx", 0, a.p);
  send_all(a.c, "via engine");
  CHECK(read_some(a.p, 10) == "via engine");
  remove("rx", 0);
  send_all(a.c, "native");
  CHECK(read_some(a.p, 6) == "native");
  // The engine's dup went: closing the last fd closes the socket.
  ::close(a.p);
  a.p = -1;
  char buf[8];
  pollfd pf{a.c, POLLIN, 0};
  REQUIRE(::poll(&pf, 1, 1000) == 1);
  CHECK(::recv(a.c, buf, sizeof buf, 0) == 0);
}

TEST_CASE("Fork: the child takes over an inherited psock its parent closed", "[recv][fork]") {
  load(skb_policy(R"("whole")", R"([{"if": {"data": {"prefix": "x"}}, "do": ["drop"]},
                                    {"do": ["pass"]}])"));
  LoopbackPair a;
  REQUIRE(a.connect());
  insert("rx", 0, a.p);
  send_all(a.c, "before");
  CHECK(read_some(a.p, 6) == "before");
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    // The child: its engine starts on its first read.
    alarm(10);
    char buf[64];
    std::string got;
    while (got.size() < 5) {
      ssize_t r = ::recv(a.p, buf, sizeof buf, 0);
      if (r <= 0) _exit(2);
      got.append(buf, static_cast<size_t>(r));
    }
    _exit(got == "hello" ? 0 : 3);
  }
  ::close(a.p);  // the parent's copy and its engine go
  a.p = -1;
  send_all(a.c, "xdropped");
  // The child's engine took it in (one read, one verdict) before the next
  // bytes come: the kernel holds nothing unread at the child's end.
  REQUIRE(eventually([&] { return test_support::peer_rx_queue(a.c) == 0; }, 10000));
  send_all(a.c, "hello");
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("Fork: a child that never reads leaves the parent's engine alone", "[recv][fork]") {
  load(skb_policy(R"("whole")", kPass));
  LoopbackPair a;
  REQUIRE(a.connect());
  insert("rx", 0, a.p);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    // Socket calls in the child must not hang on locks the parent's threads held.
    int s = ::socket(AF_INET, SOCK_STREAM, 0);
    ::close(s);
    _exit(0);
  }
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  CHECK(WEXITSTATUS(status) == 0);
  send_all(a.c, "still mine");
  CHECK(read_some(a.p, 10) == "still mine");
}
