// Reading a psock's ingress queue, FIONREAD, readiness (poll, select, epoll)
// and sendfile through the verdict (KERNEL-SEMANTICS.md §4.3, §4.4, §3.1, §7).
#include <errno.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/sendfile.h>

#include <cstring>
#include <thread>

#include "test/support/wait.h"
#include "test/unit/send/send_test_util.h"

using namespace send_test;

namespace {

const char* kIngress =
    R"([{"do": [{"redirect": {"map": "redir", "key": 0, "flags": ["BPF_F_INGRESS"]}}]}])";

}  // namespace

TEST_CASE("Ingress queue: PEEK, FIONREAD, poll, select and epoll see it", "[send][ingress]") {
  load(msg_policy(kIngress));
  RedirectPairs pairs;
  auto& [a, b] = pairs;
  REQUIRE(pairs.connect());
  REQUIRE(pairs.insert("tx", End::c, End::c) == 0);

  pollfd pf{b.c, POLLIN, 0};
  CHECK(::poll(&pf, 1, 0) == 0);
  int ep = epoll_create1(0);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = 42;
  REQUIRE(epoll_ctl(ep, EPOLL_CTL_ADD, b.c, &ev) == 0);
  epoll_event out[4];
  CHECK(epoll_wait(ep, out, 4, 0) == 0);

  CHECK(::send(a.c, "hello", 5, 0) == 5);
  int inq = -1;
  REQUIRE(ioctl(b.c, FIONREAD, &inq) == 0);
  CHECK(inq == 5);
  CHECK(::poll(&pf, 1, 0) == 1);
  CHECK((pf.revents & POLLIN));
  fd_set rs;
  FD_ZERO(&rs);
  FD_SET(b.c, &rs);
  timeval tv{0, 0};
  CHECK(::select(b.c + 1, &rs, nullptr, nullptr, &tv) == 1);
  CHECK(FD_ISSET(b.c, &rs));
  REQUIRE(epoll_wait(ep, out, 4, 0) == 1);  // one event, with the socket's data
  CHECK(out[0].data.u64 == 42);
  CHECK((out[0].events & EPOLLIN));

  char buf[16];
  CHECK(::recv(b.c, buf, 3, MSG_PEEK) == 3);
  REQUIRE(ioctl(b.c, FIONREAD, &inq) == 0);
  CHECK(inq == 5);
  CHECK(::read(b.c, buf, sizeof buf) == 5);
  CHECK(std::string(buf, 5) == "hello");
  REQUIRE(ioctl(b.c, FIONREAD, &inq) == 0);
  CHECK(inq == 0);
  CHECK(::poll(&pf, 1, 0) == 0);
  CHECK(epoll_wait(ep, out, 4, 0) == 0);
  errno = 0;
  CHECK(::recv(b.c, buf, sizeof buf, MSG_DONTWAIT) == -1);
  CHECK(errno == EAGAIN);
  ::close(ep);
}

TEST_CASE("Ingress queue: blocked readers wake when bytes are queued", "[send][ingress]") {
  load(msg_policy(kIngress));
  RedirectPairs pairs;
  auto& [a, b] = pairs;
  REQUIRE(pairs.connect());
  REQUIRE(pairs.insert("tx", End::c, End::c) == 0);
  // Sends once this thread is blocked; no Catch2 assertion from the sender.
  bool blocked = false;
  auto later = [&](const char* s) {
    return std::thread([&a, &blocked, s] {
      blocked = test_support::wait_blocked();
      ::send(a.c, s, strlen(s), 0);
    });
  };
  SECTION("recv") {
    std::thread t = later("wake");
    char buf[16];
    CHECK(::recv(b.c, buf, sizeof buf, 0) == 4);
    t.join();
    CHECK(blocked);
  }
  SECTION("poll") {
    std::thread t = later("wake");
    pollfd pf{b.c, POLLIN, 0};
    CHECK(::poll(&pf, 1, 3000) == 1);
    t.join();
    CHECK(blocked);
  }
  SECTION("epoll") {
    int ep = epoll_create1(0);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = b.c;
    REQUIRE(epoll_ctl(ep, EPOLL_CTL_ADD, b.c, &ev) == 0);
    std::thread t = later("wake");
    epoll_event out[2];
    CHECK(epoll_wait(ep, out, 2, 3000) == 1);
    CHECK(out[0].data.fd == b.c);
    t.join();
    CHECK(blocked);
    ::close(ep);
  }
}

namespace {

int temp_file(const std::string& content) {
  char path[] = "/tmp/sockshim-sendfile-XXXXXX";
  int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  unlink(path);
  REQUIRE(::write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size()));
  REQUIRE(lseek(fd, 0, SEEK_SET) == 0);
  return fd;
}

}  // namespace

TEST_CASE("sendfile: zero-copy when the program reads no data, else it sees the bytes",
          "[send][sendfile]") {
  SECTION("program without data conditions: real sendfile, one run per 64 KiB") {
    load(msg_policy(std::string(R"([{"do": [)") + kCount + R"(, "pass"]}])"));
    LoopbackPair pr;
    REQUIRE(pr.connect());
    insert("tx", 0, pr.c);
    std::string content(5000, 'f');
    int f = temp_file(content);
    off_t off = 0;
    CHECK(::sendfile(pr.c, f, &off, 5000) == 5000);
    CHECK(off == 5000);
    CHECK(read_some(pr.p, 5000).size() == 5000);
    CHECK(storage("runs", pr.c) == 1);
    CHECK(storage("bytes", pr.c) == 5000);
    ::close(f);
  }
  SECTION("program with a data condition: it sees the file's bytes") {
    load(
        msg_policy(R"([{"if": {"data": {"contains": "BAD"}}, "do": ["drop"]}, {"do": ["pass"]}])"));
    LoopbackPair pr;
    REQUIRE(pr.connect());
    insert("tx", 0, pr.c);
    int good = temp_file("all good here");
    CHECK(::sendfile(pr.c, good, nullptr, 100) == 13);
    CHECK(lseek(good, 0, SEEK_CUR) == 13);
    CHECK(read_some(pr.p, 13) == "all good here");
    int bad = temp_file("this is BAD");
    errno = 0;
    CHECK(::sendfile(pr.c, bad, nullptr, 100) == -1);
    CHECK(errno == EACCES);
    CHECK(lseek(bad, 0, SEEK_CUR) == 0);
    ::close(good);
    ::close(bad);
  }
  SECTION("sendfile redirected into the peer's queue") {
    load(msg_policy(kIngress));
    RedirectPairs pairs;
    auto& [a, b] = pairs;
    REQUIRE(pairs.connect());
    REQUIRE(pairs.insert("tx", End::c, End::c) == 0);
    int f = temp_file("file bytes");
    off_t off = 5;
    CHECK(::sendfile(a.c, f, &off, 5) == 5);
    CHECK(read_some(b.c, 5) == "bytes");
    CHECK(quiet(a.p));
    ::close(f);
  }
}
