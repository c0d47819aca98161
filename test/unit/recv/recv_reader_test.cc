// What the application's reads see on a socket the engine reads (§4.3):
// MSG_PEEK, MSG_WAITALL, MSG_DONTWAIT, SO_RCVTIMEO, FIONREAD, recvmmsg, readv,
// and signals interrupting a blocked reader or a blocked sender.
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/uio.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <thread>

#include "core/sock/blocked_waits.h"
#include "test/support/wait.h"
#include "test/unit/recv/recv_test_util.h"

using namespace recv_test;
using test_support::wait_blocked;

namespace {

void on_usr1(int) {}

// SIGUSR1 with a handler and without SA_RESTART, as a program that wants EINTR sets it.
void catch_usr1() {
  struct sigaction sa {};
  sa.sa_handler = on_usr1;
  sigemptyset(&sa.sa_mask);
  REQUIRE(sigaction(SIGUSR1, &sa, nullptr) == 0);
}

// FIONREAD, or -1 when it fails (usable inside eventually()).
int fionread(int fd) {
  int n = -1;
  return ioctl(fd, FIONREAD, &n) == 0 ? n : -1;
}

// Sends SIGUSR1 to tid until returned() holds (up to 2 s): a signal taken just
// before the thread enters its wait leaves it blocked, and the next ends it.
bool interrupt(pthread_t tid, const std::function<bool()>& returned) {
  for (int i = 0; i < 20; ++i) {
    pthread_kill(tid, SIGUSR1);
    if (eventually(returned, 100)) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("Reader: PEEK, FIONREAD, DONTWAIT and readv on an engine-read psock", "[recv][reader]") {
  load(skb_policy(R"("whole")", kPass));
  LoopbackPair a;
  REQUIRE(a.connect());
  insert("rx", 0, a.p);
  char buf[16];
  errno = 0;
  CHECK(::recv(a.p, buf, sizeof buf, MSG_DONTWAIT) == -1);
  CHECK(errno == EAGAIN);
  send_all(a.c, "hello world");
  REQUIRE(eventually([&] { return fionread(a.p) == 11; }));
  CHECK(::recv(a.p, buf, 5, MSG_PEEK) == 5);
  CHECK(std::string(buf, 5) == "hello");
  CHECK(fionread(a.p) == 11);
  char x[3], y[16];
  iovec iov[2] = {{x, sizeof x}, {y, sizeof y}};
  CHECK(::readv(a.p, iov, 2) == 11);
  CHECK(std::string(x, 3) + std::string(y, 8) == "hello world");
  CHECK(fionread(a.p) == 0);
}

TEST_CASE("Reader: FIONREAD counts the queue, not bytes the engine has not passed",
          "[recv][reader]") {
  load(skb_policy(R"({"fixed": 8})", kPass));
  LoopbackPair a;
  REQUIRE(a.connect());
  insert("rx", 0, a.p);
  send_all(a.c, "12345");  // a partial frame: held, not the reader's
  REQUIRE(eventually([&] { return rx_counts(a.p).held == 5; }));
  CHECK(fionread(a.p) == 0);
  send_all(a.c, "678");
  REQUIRE(eventually([&] { return fionread(a.p) == 8; }));
}

TEST_CASE("Reader: MSG_WAITALL waits across arrivals", "[recv][reader]") {
  load(skb_policy("", kPass));
  LoopbackPair a;
  REQUIRE(a.connect());
  insert("rx", 0, a.p);
  char buf[11];
  std::atomic<ssize_t> r{-2};
  std::thread reader([&] { r = ::recv(a.p, buf, sizeof buf, MSG_WAITALL); });
  send_all(a.c, "first");
  // The reader took "first" from the queue and waits for the rest. (CHECK:
  // the reader must get "second" and return before the join either way.)
  CHECK(eventually([&] {
    return rx_counts(a.p).passed == 5 && fionread(a.p) == 0 && sockshim::blocked_waits() >= 1;
  }));
  CHECK(r == -2);
  send_all(a.c, "second");
  reader.join();
  CHECK(r == 11);
  CHECK(std::string(buf, 11) == "firstsecond");
}

TEST_CASE("Reader: MSG_WAITALL also for an sk_msg ingress target", "[recv][reader]") {
  load(msg_policy(
      R"([{"do": [{"redirect": {"map": "redir", "key": 0, "flags": ["BPF_F_INGRESS"]}}]}])"));
  RedirectPairs pairs;
  auto& [a, b] = pairs;
  REQUIRE(pairs.connect());
  REQUIRE(pairs.insert("tx", End::c, End::c) == 0);
  char buf[6];
  std::atomic<ssize_t> r{-2};
  std::thread reader([&] { r = ::recv(b.c, buf, sizeof buf, MSG_WAITALL); });
  REQUIRE(::send(a.c, "abc", 3, 0) == 3);  // in b.c's queue when send returns
  // The reader took "abc" from the queue and waits for the rest.
  CHECK(eventually([&] { return fionread(b.c) == 0 && sockshim::blocked_waits() >= 1; }));
  CHECK(r == -2);
  REQUIRE(::send(a.c, "def", 3, 0) == 3);
  reader.join();
  CHECK(r == 6);
  CHECK(std::string(buf, 6) == "abcdef");
}

TEST_CASE("Reader: SO_RCVTIMEO ends a blocking read with EAGAIN", "[recv][reader]") {
  load(skb_policy(R"("whole")", kPass));
  LoopbackPair a;
  REQUIRE(a.connect());
  insert("rx", 0, a.p);
  timeval tv{0, 200000};
  REQUIRE(setsockopt(a.p, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0);
  char buf[8];
  auto t0 = std::chrono::steady_clock::now();
  errno = 0;
  CHECK(::recv(a.p, buf, sizeof buf, 0) == -1);
  CHECK(errno == EAGAIN);
  auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
          .count();
  CHECK(ms >= 180);
  CHECK(ms < 2000);
}

TEST_CASE("Reader: a partial frame times out with ETIMEDOUT under SO_RCVTIMEO", "[recv][reader]") {
  load(skb_policy(R"({"fixed": 10})", kPass));
  LoopbackPair a;
  REQUIRE(a.connect());
  timeval tv{0, 100000};
  REQUIRE(setsockopt(a.p, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0);
  insert("rx", 0, a.p);
  send_all(a.c, "abc");
  int err = 0;
  socklen_t len = sizeof err;
  REQUIRE(eventually(
      [&] { return getsockopt(a.p, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err != 0; }));
  CHECK(err == ETIMEDOUT);
}

TEST_CASE("Reader: recvmmsg on an engine-read psock", "[recv][reader]") {
  load(skb_policy("", kPass));
  LoopbackPair a;
  REQUIRE(a.connect());
  insert("rx", 0, a.p);
  send_all(a.c, "abcdef");
  REQUIRE(eventually([&] { return fionread(a.p) == 6; }));
  char b0[4], b1[4];
  iovec io0{b0, sizeof b0}, io1{b1, sizeof b1};
  mmsghdr v[2]{};
  v[0].msg_hdr.msg_iov = &io0;
  v[0].msg_hdr.msg_iovlen = 1;
  v[1].msg_hdr.msg_iov = &io1;
  v[1].msg_hdr.msg_iovlen = 1;
  CHECK(recvmmsg(a.p, v, 2, MSG_WAITFORONE, nullptr) == 2);
  CHECK(v[0].msg_len == 4);
  CHECK(v[1].msg_len == 2);
  CHECK(std::string(b0, 4) + std::string(b1, 2) == "abcdef");
  CHECK(recvmmsg(a.p, v, 2, MSG_DONTWAIT, nullptr) == -1);
  CHECK(errno == EAGAIN);
}

TEST_CASE("Reader: a signal interrupts a blocked reader with EINTR", "[recv][reader][signal]") {
  catch_usr1();
  load(skb_policy(R"("whole")", kPass));
  LoopbackPair a;
  REQUIRE(a.connect());
  insert("rx", 0, a.p);
  std::atomic<ssize_t> r{-2};
  std::atomic<int> err{0};
  std::atomic<pthread_t> tid{};
  std::thread reader([&] {
    tid = pthread_self();
    char buf[8];
    ssize_t n = ::recv(a.p, buf, sizeof buf, 0);
    err = errno;
    r = n;
  });
  CHECK(wait_blocked());
  CHECK(r == -2);
  const bool interrupted = interrupt(tid.load(), [&] { return r != -2; });
  if (!interrupted) ::shutdown(a.c, SHUT_WR);  // EOF ends the read before the join
  reader.join();
  REQUIRE(interrupted);
  CHECK(r == -1);
  CHECK(err == EINTR);
}

TEST_CASE("Sender: a signal interrupts a sender blocked on a full queue", "[recv][signal]") {
  catch_usr1();
  load(msg_policy(
      R"([{"do": [{"redirect": {"map": "redir", "key": 0, "flags": ["BPF_F_INGRESS"]}}]}])"));
  RedirectPairs pairs;
  auto& [a, b] = pairs;
  REQUIRE(pairs.connect());
  int small = 4096;
  REQUIRE(setsockopt(b.c, SOL_SOCKET, SO_RCVBUF, &small, sizeof small) == 0);
  REQUIRE(pairs.insert("tx", End::c, End::c) == 0);
  const std::string data(1 << 20, 'x');
  std::atomic<ssize_t> r{-2};
  std::atomic<pthread_t> tid{};
  std::thread sender([&] {
    tid = pthread_self();
    r = ::send(a.c, data.data(), data.size(), 0);
  });
  REQUIRE(eventually([&] { return fionread(b.c) > 0; }));
  CHECK(wait_blocked());
  CHECK(r == -2);  // blocked: the queue is full
  const bool interrupted = interrupt(tid.load(), [&] { return r != -2; });
  if (!interrupted) read_some(b.c, data.size());  // room lets the send end before the join
  sender.join();
  REQUIRE(interrupted);
  CHECK(r > 0);  // the bytes accepted so far
  CHECK(r < static_cast<ssize_t>(data.size()));
  CHECK(r == fionread(b.c));
}

TEST_CASE("Sender: a blocked sender wakes when the reader frees room", "[recv][signal]") {
  load(msg_policy(
      R"([{"do": [{"redirect": {"map": "redir", "key": 0, "flags": ["BPF_F_INGRESS"]}}]}])"));
  RedirectPairs pairs;
  auto& [a, b] = pairs;
  REQUIRE(pairs.connect());
  int small = 4096;
  REQUIRE(setsockopt(b.c, SOL_SOCKET, SO_RCVBUF, &small, sizeof small) == 0);
  REQUIRE(pairs.insert("tx", End::c, End::c) == 0);
  const std::string data = pattern(256 << 10);
  std::atomic<ssize_t> r{-2};
  std::thread sender([&] { r = ::send(a.c, data.data(), data.size(), 0); });
  std::string got = read_some(b.c, data.size(), 3000);
  sender.join();
  CHECK(r == static_cast<ssize_t>(data.size()));
  CHECK(got == data);
}
